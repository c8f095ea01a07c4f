package delivery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
)

// checkEvent reports whether ev looks like a JSON object: its first
// non-space byte is '{'. Sinks copy events verbatim and do not re-validate
// them (the ingest already did); this catches an empty or foreign slice
// that would otherwise corrupt a batch body or an NDJSON file.
func checkEvent(ev []byte) bool {
	for _, c := range ev {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}

// notObject is the permanent error for event i of a batch that is not a
// JSON object.
func notObject(sink string, i int, ev []byte) *Error {
	return &Error{
		Sink:      sink,
		Op:        fmt.Sprintf("event %d", i),
		Permanent: true,
		Event:     i + 1,
		Err:       fmt.Errorf("not a JSON object (starts %q)", excerptN(ev, 16)),
	}
}

func excerptN(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// appendNDJSON appends events to dst as NDJSON: one event per line, each
// followed by '\n'. Events are copied byte for byte, except that an event
// holding a line break (JSON pretty-printed by its client; a line break can
// only be whitespace between tokens in valid JSON) is compacted first so it
// stays on one line. An event that is not a JSON object, or that must be
// compacted and is not valid JSON, is a permanent *Error naming its index.
func appendNDJSON(dst []byte, events [][]byte, sink string) ([]byte, error) {
	for i, ev := range events {
		if !checkEvent(ev) {
			return dst, notObject(sink, i, ev)
		}
		if bytes.IndexByte(ev, '\n') < 0 && bytes.IndexByte(ev, '\r') < 0 {
			dst = append(dst, ev...)
		} else {
			buf := bytes.NewBuffer(dst)
			if err := json.Compact(buf, ev); err != nil {
				return dst, &Error{Sink: sink, Op: fmt.Sprintf("event %d", i), Permanent: true, Event: i + 1,
					Err: fmt.Errorf("not valid JSON: %w", err)}
			}
			dst = buf.Bytes()
		}
		dst = append(dst, '\n')
	}
	return dst, nil
}

// bufPool holds scratch buffers for building request bodies and NDJSON
// chunks. A buffer is owned by one Deliver call from Get to Put and never
// referenced after Put. Buffers that grew past maxPooledBuf are dropped
// rather than pinned in the pool.
var bufPool = sync.Pool{New: func() any { return new(scratch) }}

type scratch struct{ b []byte }

const maxPooledBuf = 4 << 20

func getScratch() *scratch { return bufPool.Get().(*scratch) }

func putScratch(s *scratch) {
	if cap(s.b) > maxPooledBuf {
		return
	}
	s.b = s.b[:0]
	bufPool.Put(s)
}
