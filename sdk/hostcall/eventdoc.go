package hostcall

import (
	"errors"
	"unsafe"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/insertfn/insertfn/sdk/segment"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// ErrTooLarge is returned by changes that would make the event larger than
// the Doc's limit. The event is left as it was.
var ErrTooLarge = errors.New("event exceeds the size limit after modification")

// Doc is one event as the host holds it while a function runs. The zero
// value is an empty Doc; call Reset before use. A Doc is not safe for
// concurrent use.
type Doc struct {
	buf      []byte
	maxBytes int
	modified bool

	have        uint8 // which of the fields below are read (have* bits)
	typ         abi.EventType
	userID      string
	anonymousID string
	consent     gjson.Result // context.consent, Exists() false when absent
	receivedAt  int64        // ms since the epoch; 0: none or unreadable
}

// Reset makes d hold event, with changes limited to maxBytes (0: no limit).
func (d *Doc) Reset(event []byte, maxBytes int) {
	d.forget()
	d.buf, d.maxBytes, d.modified = event, maxBytes, false
}

// forget drops the fields read from the event (they are views into it),
// clearing only those that were read: a Reset costs a few stores, not the
// zeroing of the whole Doc.
func (d *Doc) forget() {
	if d.have&^haveType != 0 {
		d.userID, d.anonymousID, d.consent = "", "", gjson.Result{}
	}
	d.have = 0
}

// Bytes returns the current event.
func (d *Doc) Bytes() []byte { return d.buf }

// Modified reports whether the event was changed since Reset.
func (d *Doc) Modified() bool { return d.modified }

func (d *Doc) str() string {
	if len(d.buf) == 0 {
		return ""
	}
	return unsafe.String(&d.buf[0], len(d.buf))
}

// The fields the host itself needs are read lazily, each with one gjson
// lookup that stops at the field: "type" for every event (read without a
// lookup when it comes first, as the ingest writes it: see
// segment.LeadingMembers), the ids and context.consent only when a consent
// helper asks (the ingest writes them before the event's other members).
const (
	haveType uint8 = 1 << iota
	haveUserID
	haveAnonymousID
	haveConsent
	haveReceivedAt
)

func (d *Doc) scanType() {
	if d.have&haveType == 0 {
		d.have |= haveType
		// The ingest writes the type first (segment.LeadingMembers):
		// read it there without a lookup when it is.
		if t, ok := segment.LeadingType(d.buf); ok {
			d.typ = t
			return
		}
		d.typ = segment.ParseType(gjson.Get(d.str(), segment.MemberType).Str)
	}
}

func (d *Doc) scanUserID() {
	if d.have&haveUserID == 0 {
		d.have |= haveUserID
		d.userID = idString(gjson.Get(d.str(), segment.MemberUserID))
	}
}

func (d *Doc) scanAnonymousID() {
	if d.have&haveAnonymousID == 0 {
		d.have |= haveAnonymousID
		d.anonymousID = idString(gjson.Get(d.str(), segment.MemberAnonymousID))
	}
}

// ReceivedAt returns when the server received the event (its receivedAt),
// in milliseconds since the Unix epoch; ok is false when the event has
// none it can read. The ingest writes receivedAt last
// (segment.TrailingReceivedAt), where it is read without a scan.
func (d *Doc) ReceivedAt() (ms int64, ok bool) {
	if d.have&haveReceivedAt == 0 {
		d.have |= haveReceivedAt
		d.receivedAt = 0
		v, found := segment.TrailingReceivedAt(d.buf)
		if !found {
			v = gjson.Get(d.str(), segment.MemberReceivedAt).Str
		}
		if t, ok := segment.ParseTimeMillis(v); ok {
			d.receivedAt = t
		} else if t, form := segment.ParseTime(v); form != segment.TimeInvalid {
			d.receivedAt = t.UnixMilli()
		}
	}
	return d.receivedAt, d.receivedAt != 0
}

func (d *Doc) scanConsent() {
	if d.have&haveConsent == 0 {
		d.have |= haveConsent
		d.consent = gjson.Get(d.str(), segment.MemberContext+"."+segment.MemberConsent)
		if d.consent.Type == gjson.Null { // "consent": null is no consent object
			d.consent = gjson.Result{}
		}
	}
}

// idString returns an id field as a string. Segment accepts numbers as
// ids: a number is the id consent.NumberID gives it (JavaScript's
// String(n)), as the ingest stores it and the consent store keys it, so
// that 123.0 finds the record of "123". A number no id denotes exactly
// (the ingest refuses those) is read as written.
func idString(v gjson.Result) string {
	switch v.Type {
	case gjson.String:
		return v.Str
	case gjson.Number:
		if id, err := consent.NumberID(v.Raw); err == nil {
			return id
		}
		return v.Raw
	}
	return ""
}

// Type returns the event's type.
func (d *Doc) Type() abi.EventType { d.scanType(); return d.typ }

// UserID returns the event's userId ("" when absent).
func (d *Doc) UserID() string { d.scanUserID(); return d.userID }

// AnonymousID returns the event's anonymousId ("" when absent).
func (d *Doc) AnonymousID() string { d.scanAnonymousID(); return d.anonymousID }

// Get reads a field by gjson path.
//
// Paths come from guests: only plain paths are read (see [ReadablePath]);
// any other path reads as missing.
func (d *Doc) Get(path string) gjson.Result {
	if !ReadablePath(path) {
		return gjson.Result{}
	}
	return gjson.Get(d.str(), path)
}

// MaxPathLen is the longest path a guest may read or write.
const MaxPathLen = 1024

// MaxDepth is the deepest nesting of objects and arrays a guest's JSON may
// have: gjson validates recursively, and a deeper value could exhaust the
// host's stack.
const MaxDepth = 256

// ReadablePath reports whether a guest may read by path: keys, array
// indexes, wildcards and '#' queries, with '\' escapes, at most MaxPathLen
// bytes. gjson modifiers ('@'), pipes ('|'), multipaths ('[' or '{' opening
// a component) and literals ('!') are refused: nested, they make the host's
// work grow exponentially with the path's length.
func ReadablePath(path string) bool {
	if len(path) > MaxPathLen {
		return false
	}
	start := true // at the start of a component
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case c == '\\':
			i++
			start = false
			continue
		case c == '@' || c == '|' || c == '!':
			return false
		case start && (c == '[' || c == '{'):
			return false
		}
		start = c == '.'
	}
	return true
}

// validJSON reports whether b is valid JSON that nests at most MaxDepth
// deep and is at most limit bytes (0: no size limit). The depth is checked
// first, without recursion, so that gjson's recursive validation is safe.
func validJSON(b []byte, limit int) (valid, tooLarge bool) {
	if limit > 0 && len(b) > limit {
		return false, true
	}
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > MaxDepth {
				return false, false
			}
		case '}', ']':
			depth--
		}
	}
	return gjson.ValidBytes(b), false
}

// Set sets a field by sjson path to raw JSON. It returns a negative status for
// invalid JSON or an invalid path, and ErrTooLarge when the result would
// exceed the limit.
func (d *Doc) Set(path string, raw []byte) (abi.Status, error) {
	valid, tooLarge := validJSON(raw, d.maxBytes)
	if tooLarge {
		return abi.StatusOK, ErrTooLarge
	}
	if !valid {
		return abi.StatusInvalidJSON, nil
	}
	if !settablePath(path) {
		return abi.StatusInvalidPath, nil
	}
	if arrayIndexTooLarge(path, d.maxBytes) {
		return abi.StatusOK, ErrTooLarge
	}
	out, err := sjson.SetRawBytes(d.buf, path, raw) // sjson returns a new buffer: the input is never written
	if err != nil {
		return abi.StatusInvalidPath, nil
	}
	return d.commit(out)
}

// Delete removes a field by sjson path; deleting a missing field is fine.
func (d *Doc) Delete(path string) abi.Status {
	if !settablePath(path) {
		return abi.StatusInvalidPath
	}
	if !gjson.Get(d.str(), path).Exists() {
		return abi.StatusOK
	}
	out, err := sjson.DeleteBytes(d.buf, path)
	if err != nil {
		return abi.StatusInvalidPath
	}
	// Deleting never grows the event: no size check, even when the event
	// was over the limit to begin with.
	d.forget()
	d.buf, d.modified = out, true
	return abi.StatusOK
}

// Replace replaces the whole event with a JSON object.
func (d *Doc) Replace(event []byte) (abi.Status, error) {
	valid, tooLarge := validJSON(event, d.maxBytes)
	if tooLarge {
		return abi.StatusOK, ErrTooLarge
	}
	if !valid || !gjson.ParseBytes(event).IsObject() {
		return abi.StatusInvalidJSON, nil
	}
	return d.commit(append([]byte(nil), event...))
}

// settablePath reports whether path is an sjson path: dot-separated names
// and array indexes, with '\' escapes. gjson's query syntax (wildcards,
// '#', '|', '@' modifiers, '(' queries) reads but cannot be written, and
// sjson would quietly do nothing or write to the wrong field.
func settablePath(path string) bool {
	if path == "" || len(path) > MaxPathLen {
		return false
	}
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '\\':
			i++ // the next character is literal
		case '*', '?', '#', '|', '@', '(', ')':
			return false
		}
	}
	return true
}

// arrayIndexTooLarge reports whether a path names an array index so large
// that sjson would pad the array past the size limit: every missing element
// becomes a null, so a path like "x.50000000" would cost the host gigabytes
// before the limit is checked.
func arrayIndexTooLarge(path string, maxBytes int) bool {
	limit := maxBytes
	if limit <= 0 {
		limit = 1 << 20
	}
	budget := limit / len("null,") // nulls sjson may add, over all components
	n, digits := 0, false
	for i := 0; i <= len(path); i++ {
		if i == len(path) || path[i] == '.' {
			if digits {
				if budget -= n; budget < 0 {
					return true
				}
			}
			n, digits = 0, false
			continue
		}
		c := path[i]
		if c < '0' || c > '9' {
			n, digits = 0, false
			for i < len(path) && path[i] != '.' { // skip the rest of a name
				if path[i] == '\\' {
					i++
				}
				i++
			}
			i--
			continue
		}
		digits = true
		if n <= limit { // stop growing once it is over: no overflow
			n = n*10 + int(c-'0')
		}
	}
	return false
}

func (d *Doc) commit(out []byte) (abi.Status, error) {
	if d.maxBytes > 0 && len(out) > d.maxBytes {
		return abi.StatusOK, ErrTooLarge
	}
	d.forget()
	d.buf, d.modified = out, true
	return abi.StatusOK, nil
}

// AppendValue appends the guest-facing bytes of a gjson result to dst and
// returns its kind: strings unescaped, numbers as text, objects and arrays
// raw, nothing for true, false, null and missing.
func AppendValue(dst []byte, r gjson.Result) ([]byte, abi.Kind) {
	return append(dst, valueBytes(r)...), valueKind(r)
}

// valueKind is the ABI kind of a gjson result.
func valueKind(r gjson.Result) abi.Kind {
	switch r.Type {
	case gjson.Null:
		if !r.Exists() {
			return abi.KindMissing
		}
		return abi.KindNull
	case gjson.False:
		return abi.KindFalse
	case gjson.True:
		return abi.KindTrue
	case gjson.Number:
		return abi.KindNumber
	case gjson.String:
		return abi.KindString
	}
	return abi.KindJSON
}

// valueBytes is what the guest gets for a gjson result: a string
// unescaped, a number as its text, an object or array raw, nothing for the
// rest. Unless the string had escapes, it is a view into the document.
func valueBytes(r gjson.Result) string {
	switch r.Type {
	case gjson.String:
		return r.Str
	case gjson.Number, gjson.JSON:
		return r.Raw
	}
	return ""
}
