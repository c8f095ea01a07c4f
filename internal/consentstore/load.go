package consentstore

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// LoadFile reads a file of consent records into a new [Memory]; see [Load]
// for the formats. Errors name the file and, for a bad record, its line.
func LoadFile(path string) (*Memory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("consentstore: %w", err)
	}
	defer f.Close()
	return Load(f, path)
}

// Load reads consent records in the wire format of the consent-record
// contract into a new [Memory]. It accepts
//   - a JSON array of records,
//   - a single JSON object (one record), or
//   - NDJSON: one record per line; blank lines are skipped.
//
// A record may be partial: an update as [Import] reads it (its "source"
// is ignored here). Category entries may be bare booleans; entries
// without a timestamp are decisions taken at the time of the load, as
// [Import] and [Store.Update] take them. Each record is merged in with
// [Memory.Put], in order, so a later line with the same id updates an
// earlier one (last writer wins by timestamp).
// name identifies the input in errors, which read
// "consentstore: load NAME:LINE: ...". An empty input is an empty store.
func Load(r io.Reader, name string) (*Memory, error) {
	m := NewMemory()
	l := loader{m: m, name: name, br: bufio.NewReaderSize(r, 64<<10), now: time.Now().UnixMilli()}
	if err := l.load(); err != nil {
		return nil, err
	}
	return m, nil
}

// loader reads one input. line counts the lines consumed so far.
type loader struct {
	m    *Memory
	name string
	br   *bufio.Reader
	line int
	now  int64 // the timestamp of entries without one
}

func (l *loader) errorf(line int, format string, args ...any) error {
	return fmt.Errorf("consentstore: load %s:%d: %w", l.name, line, fmt.Errorf(format, args...))
}

func (l *loader) wrap(line int, err error) error {
	return fmt.Errorf("consentstore: load %s:%d: %w", l.name, line, err)
}

// readLine returns the next line without its newline, and io.EOF after the
// last one.
func (l *loader) readLine() ([]byte, error) {
	b, err := l.br.ReadBytes('\n')
	if len(b) == 0 && err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("consentstore: load %s: %w", l.name, err)
	}
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("consentstore: load %s: %w", l.name, err)
	}
	l.line++
	return b, nil
}

func (l *loader) load() error {
	// The first non-blank line decides: NDJSON when it is a JSON value on
	// its own (a one-line array is the array format), a whole document (a
	// pretty-printed object or array) otherwise.
	var head []byte
	for {
		b, err := l.readLine()
		if err == io.EOF {
			return nil // empty input
		}
		if err != nil {
			return err
		}
		if l.line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
		}
		head = append(head, b...)
		if len(bytes.TrimSpace(b)) > 0 {
			break
		}
	}
	trimmed := bytes.TrimSpace(head)
	if trimmed[0] != '[' && json.Valid(trimmed) {
		return l.ndjson(trimmed)
	}
	rest, err := io.ReadAll(l.br)
	if err != nil {
		return fmt.Errorf("consentstore: load %s: %w", l.name, err)
	}
	return l.document(append(head, rest...))
}

// ndjson reads one record per line, first being the first non-blank line
// (line l.line).
func (l *loader) ndjson(first []byte) error {
	if err := l.put(l.line, first); err != nil {
		return err
	}
	for {
		b, err := l.readLine()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		if !json.Valid(b) {
			var v any
			return l.wrap(l.line, jsonError(json.Unmarshal(b, &v)))
		}
		if err := l.put(l.line, b); err != nil {
			return err
		}
	}
}

// document reads a whole input that is one JSON value: an array of records
// or one record.
func (l *loader) document(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	start := skipSpace(data, 0)
	tok, err := dec.Token()
	if err != nil {
		return l.syntax(data, dec, err)
	}
	switch tok {
	case json.Delim('{'):
		var raw json.RawMessage
		dec = json.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&raw); err != nil {
			return l.syntax(data, dec, err)
		}
		if err := l.trailing(data, dec); err != nil {
			return err
		}
		return l.put(lineAt(data, start), raw)
	case json.Delim('['):
		for dec.More() {
			at := skipSep(data, int(dec.InputOffset()))
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return l.syntax(data, dec, err)
			}
			if err := l.put(lineAt(data, at), raw); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // ']'
			return l.syntax(data, dec, err)
		}
		return l.trailing(data, dec)
	}
	return l.errorf(lineAt(data, start), "want a JSON array of records, a JSON object or NDJSON (one record per line)")
}

// trailing fails when anything but white space follows the document.
func (l *loader) trailing(data []byte, dec *json.Decoder) error {
	at := skipSpace(data, int(dec.InputOffset()))
	if at < len(data) {
		return l.errorf(lineAt(data, at), "unexpected %q after the end of the JSON document (NDJSON wants one record per line)", data[at])
	}
	return nil
}

// syntax turns a decoding error into one that names the line it is on.
func (l *loader) syntax(data []byte, dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return l.wrap(lineAt(data, int(se.Offset)-1), se)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return l.wrap(lineAt(data, len(data)), errors.New("unexpected end of JSON input"))
	}
	return l.wrap(lineAt(data, int(dec.InputOffset())), err)
}

// put decodes one record and merges it into the store.
func (l *loader) put(line int, raw []byte) error {
	rec, err := parseRecord(raw)
	if err == nil && rec.ID == "" {
		err = errNoID
	}
	if err != nil {
		return l.wrap(line, err)
	}
	for i := range rec.Categories {
		if rec.Categories[i].Timestamp == 0 {
			rec.Categories[i].Timestamp = l.now
		}
	}
	for i := range rec.Purposes {
		if rec.Purposes[i].Timestamp == 0 {
			rec.Purposes[i].Timestamp = l.now
		}
	}
	if _, err := l.m.Put(&rec); err != nil {
		return l.wrap(line, err)
	}
	return nil
}

// jsonError shortens encoding/json's messages where they only add noise.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Errorf("field %s: want %s, got JSON %s", te.Field, te.Type, te.Value)
	}
	return err
}

// skipSpace returns the offset of the first byte at or after i that is not
// JSON white space.
func skipSpace(data []byte, i int) int { return skip(data, i, false) }

// skipSep is skipSpace that also skips the commas between array elements.
func skipSep(data []byte, i int) int { return skip(data, i, true) }

func skip(data []byte, i int, commas bool) int {
	for ; i < len(data); i++ {
		switch c := data[i]; {
		case c == ' ', c == '\t', c == '\r', c == '\n':
		case c == ',' && commas:
		default:
			return i
		}
	}
	return i
}

// lineAt returns the 1-based line of byte offset i.
func lineAt(data []byte, i int) int {
	i = max(0, min(i, len(data)))
	return 1 + bytes.Count(data[:i], []byte("\n"))
}
