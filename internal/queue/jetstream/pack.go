package jetstream

import (
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Packs. A message of a topic's stream holds one item or several:
//
//   - A plain message (no hdrPack header) is one item, its data the
//     item's: what Append and Replay publish. Its item's Seq is the
//     message's stream sequence << 16 and its Attempts 0.
//   - A pack (the header hdrPack: "1") holds a framed list of items,
//     each an entry of three uvarints, the item's Seq, its Attempts and
//     its length, then its data. An entry of Seq 0 is numbered from the
//     message: stream sequence << 16 | its index (a pack holds at most
//     maxPack items), so that Seq is unique in the topic and ascends in
//     the order of the appends; an entry of another Seq is an item that
//     keeps the number it had in an earlier message (a Retry's copy, a
//     remainder a closing host gave back).
//
// Move publishes each topic's outputs as one pack (several when they
// exceed maxPack items or the servers' largest message): the pipeline's
// hand-off of a request's events to a destination is one message, not
// one per event. Retry publishes the item alone as a pack of one, with
// its Attempts and, when it is retried for later, the time before which
// it is not handed out (hdrNotBefore, Unix nanoseconds: a host that gets
// it before then gives it back with that delay).
//
// A pack of n > 1 items is published on the subject <items subject>.<n>,
// so that Stats counts items from the stream's subjects (see readStats).
const (
	hdrPack      = "Insertfn-Pack"
	hdrNotBefore = "Insertfn-Not-Before"

	// packVersion is the value of hdrPack.
	packVersion = "1"
	// maxPack is the most items a pack holds (its index is the low 16
	// bits of an item's Seq).
	maxPack = 1<<16 - 1
	// seqShift numbers an item of a message: stream sequence << seqShift
	// | index.
	seqShift = 16
)

// entry is an item of a pack to publish.
type entry struct {
	seq      uint64 // 0: numbered from the message
	attempts int
	data     []byte
}

// appendEntry appends the frame of one item to b.
func appendEntry(b []byte, e entry) []byte {
	b = binary.AppendUvarint(b, e.seq)
	b = binary.AppendUvarint(b, uint64(max(e.attempts, 0)))
	b = binary.AppendUvarint(b, uint64(len(e.data)))
	return append(b, e.data...)
}

// entryLen is the length of an entry's frame.
func entryLen(e entry) int {
	var b [3 * binary.MaxVarintLen64]byte
	n := len(binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint(b[:0], e.seq), uint64(max(e.attempts, 0))), uint64(len(e.data))))
	return n + len(e.data)
}

// packMsg returns the message of a pack of entries on the items subject
// of t (the subject names the count when it is more than one).
func packMsg(t *topic, entries []entry) *nats.Msg {
	size := 0
	for _, e := range entries {
		size += entryLen(e)
	}
	body := make([]byte, 0, size)
	for _, e := range entries {
		body = appendEntry(body, e)
	}
	subject := t.subject
	if len(entries) > 1 {
		subject += "." + strconv.Itoa(len(entries))
	}
	return &nats.Msg{Subject: subject, Data: body, Header: nats.Header{hdrPack: {packVersion}}}
}

// errBadPack: a pack that does not decode (it is then taken as one plain
// item, so that nothing is lost).
var errBadPack = errors.New("queue: malformed pack")

// unpack returns the items of a message of stream sequence sseq: each
// one's Seq, Attempts and data (slices of data); and the time before
// which it is not to be handed out (zero: none).
func unpack(h nats.Header, data []byte, sseq uint64) ([]unpacked, time.Time, error) {
	base := sseq << seqShift
	if h.Get(hdrPack) == "" {
		return []unpacked{{seq: base, data: data}}, time.Time{}, nil
	}
	var notBefore time.Time
	if s := h.Get(hdrNotBefore); s != "" {
		if ns, err := strconv.ParseInt(s, 10, 64); err == nil {
			notBefore = time.Unix(0, ns)
		}
	}
	var out []unpacked
	for b := data; len(b) > 0; {
		seq, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, notBefore, errBadPack
		}
		b = b[n:]
		attempts, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, notBefore, errBadPack
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, notBefore, errBadPack
		}
		b = b[n:]
		if seq == 0 {
			if len(out) >= maxPack {
				return nil, notBefore, errBadPack
			}
			seq = base | uint64(len(out))
		}
		out = append(out, unpacked{seq: seq, attempts: int(min(attempts, 1<<31-1)), data: b[:size:size]})
		b = b[size:]
	}
	if len(out) == 0 {
		return nil, notBefore, errBadPack
	}
	return out, notBefore, nil
}

// unpacked is an item of a message delivered.
type unpacked struct {
	seq      uint64
	attempts int
	data     []byte
}
