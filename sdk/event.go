package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
)

// Event is the event a handler works on. It lives on the host: every method
// is a host call, so read only the fields you need. An Event is valid only
// during the handler call it was given to.
type Event struct {
	host    eventHost // the wasm imports in WebAssembly (static calls), a Host natively
	typ     abi.EventType
	scratch []byte
}

// buffer returns a scratch buffer of at least n bytes.
func (e *Event) buffer(n int) []byte {
	if cap(e.scratch) < n {
		e.scratch = make([]byte, max(n, 512))
	}
	return e.scratch[:cap(e.scratch)]
}

// Each read below applies the buffer rule: one host call with the scratch
// buffer, and a second one with a buffer of the announced size only when the
// value did not fit.

// get reads a value by path from the event, or from the settings.
func (e *Event) get(settings bool, path string) (abi.Kind, []byte) {
	buf := e.buffer(0)
	k, n := e.hostGet(settings, path, buf)
	if n > len(buf) {
		buf = e.buffer(n)
		if k, n = e.hostGet(settings, path, buf); n > len(buf) {
			return k, nil
		}
	}
	return k, buf[:n]
}

func (e *Event) hostGet(settings bool, path string, buf []byte) (abi.Kind, int) {
	if settings {
		return e.host.SettingsGet(path, buf)
	}
	return e.host.EventGet(path, buf)
}

func (e *Event) eventRead() []byte {
	buf := e.buffer(0)
	n := e.host.EventRead(buf)
	if n > len(buf) {
		buf = e.buffer(n)
		if n = e.host.EventRead(buf); n > len(buf) {
			return nil
		}
	}
	return buf[:n]
}

// Type returns the event's type ("track", "identify", ...).
func (e *Event) Type() string {
	if s := e.typ.String(); s != "" {
		return s
	}
	return e.Get("type").String()
}

// Name returns the event's name: "event" for a track, "name" for a page or
// screen, "" otherwise.
func (e *Event) Name() string {
	switch e.typ {
	case abi.EventTrack:
		return e.Get("event").String()
	case abi.EventPage, abi.EventScreen:
		return e.Get("name").String()
	}
	return ""
}

// UserID returns the event's userId, "" when it has none. A number is the
// id the consent store keys it by ([consent.NumberID]: 123.0 is "123").
func (e *Event) UserID() string { return idValue(e.Get("userId")) }

// AnonymousID returns the event's anonymousId, "" when it has none, a
// number as [Event.UserID] reads one.
func (e *Event) AnonymousID() string { return idValue(e.Get("anonymousId")) }

// idValue returns an id field as the string it stands for.
func idValue(v Value) string {
	if v.Kind == abi.KindNumber {
		if id, err := consent.NumberID(v.raw); err == nil {
			return id
		}
	}
	return v.String()
}

// MessageID returns the event's messageId.
func (e *Event) MessageID() string { return e.Get("messageId").String() }

// Get reads a field by gjson path ("properties.total", "context.ip",
// "context.consent.categoryPreferences.Advertising").
func (e *Event) Get(path string) Value {
	kind, b := e.get(false, path)
	return Value{Kind: kind, raw: string(b)}
}

// Set sets a field by sjson path ("properties.consent_checked",
// "context.consent.categoryPreferences.Advertising"). value is encoded as
// JSON; a [RawJSON] value is used as is.
func (e *Event) Set(path string, value any) error {
	raw, err := encodeJSON(value)
	if err != nil {
		return fmt.Errorf("sdk: set %s: %w", path, err)
	}
	return statusError("set "+path, e.host.EventSet(path, raw))
}

// Delete removes a field by sjson path; a missing field is not an error.
func (e *Event) Delete(path string) error {
	return statusError("delete "+path, e.host.EventDelete(path))
}

// Bytes returns a copy of the whole event as JSON. Prefer Get for single
// fields: it does not copy the event into the guest.
func (e *Event) Bytes() []byte {
	return append([]byte(nil), e.eventRead()...)
}

// Replace replaces the whole event with a JSON object.
func (e *Event) Replace(event []byte) error {
	return statusError("replace event", e.host.EventWrite(event))
}

// ConsentPreferences returns the event's context.consent.categoryPreferences
// (or the singular categoryPreference) as booleans, nil when the event
// carries none. It reads them as the host does: a category is consented
// when its value is true or an object with "consented": true, and a
// category repeated in the object only if every copy is.
func (e *Event) ConsentPreferences() map[string]bool {
	v := e.Get("context.consent.categoryPreferences")
	if !v.Exists() {
		v = e.Get("context.consent.categoryPreference")
	}
	if v.Kind != abi.KindJSON {
		return nil
	}
	m := make(map[string]bool)
	if !eachMember([]byte(v.raw), func(k string, r json.RawMessage) bool {
		yes := consentedJSON(r)
		if prev, seen := m[k]; seen {
			yes = yes && prev
		}
		m[k] = yes
		return true
	}) {
		return nil
	}
	return m
}

// consentedJSON reads one category's value as the host does: true, or an
// object whose first member named exactly "consented" is true.
func consentedJSON(r json.RawMessage) bool {
	if string(r) == "true" {
		return true
	}
	consented := false
	eachMember(r, func(k string, v json.RawMessage) bool {
		if k != "consented" {
			return true
		}
		consented = string(v) == "true"
		return false
	})
	return consented
}

// eachMember calls f with each member of the JSON object obj, in order and
// repeated keys included, until f returns false. It reports false when obj
// is not an object or not valid JSON up to where f stopped.
func eachMember(obj []byte, f func(key string, value json.RawMessage) bool) bool {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		k, _ := t.(string)
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return false
		}
		if !f(k, v) {
			return true
		}
	}
	return true
}

// Settings returns the function's settings.
func (e *Event) Settings() Settings { return Settings{e: e} }

// Log writes a line to the event's logs.
func (e *Event) Log(level abi.Level, msg string) { e.host.Log(level, msg) }

// Logf writes a formatted info line to the event's logs.
func (e *Event) Logf(format string, args ...any) {
	e.host.Log(abi.LevelInfo, fmt.Sprintf(format, args...))
}

// Settings are the function's settings, a JSON object from its manifest.
type Settings struct{ e *Event }

// Get reads a setting by gjson path.
func (s Settings) Get(path string) Value {
	kind, b := s.e.get(true, path)
	return Value{Kind: kind, raw: string(b)}
}

// String returns a setting as a string ("" when missing).
func (s Settings) String(path string) string { return s.Get(path).String() }

// Bool returns a boolean setting, or def when it is missing.
func (s Settings) Bool(path string, def bool) bool {
	v := s.Get(path)
	if !v.Exists() {
		return def
	}
	return v.Bool()
}

// Raw returns all settings as JSON.
func (s Settings) Raw() []byte { return []byte(s.Get("").Raw()) }

// Value is one JSON value read from the event or the settings.
type Value struct {
	Kind abi.Kind
	raw  string // strings unescaped, numbers as text, objects and arrays as JSON
}

// Exists reports whether the field was there (null counts as there).
func (v Value) Exists() bool { return v.Kind != abi.KindMissing }

// String returns a string as is, a number or JSON as its text, a boolean as
// "true"/"false", and "" for null and missing.
func (v Value) String() string {
	switch v.Kind {
	case abi.KindTrue:
		return "true"
	case abi.KindFalse:
		return "false"
	}
	return v.raw
}

// Bool returns true for JSON true, the strings "true" and "1", and non-zero
// numbers.
func (v Value) Bool() bool {
	switch v.Kind {
	case abi.KindTrue:
		return true
	case abi.KindString:
		b, _ := strconv.ParseBool(v.raw)
		return b
	case abi.KindNumber:
		f, _ := strconv.ParseFloat(v.raw, 64)
		return f != 0
	}
	return false
}

// Float returns a number (or a numeric string) as float64, 0 otherwise.
func (v Value) Float() float64 {
	if v.Kind == abi.KindNumber || v.Kind == abi.KindString {
		f, _ := strconv.ParseFloat(v.raw, 64)
		return f
	}
	return 0
}

// Int returns a number (or a numeric string) as int64, truncated; 0 otherwise.
func (v Value) Int() int64 {
	if i, err := strconv.ParseInt(v.raw, 10, 64); err == nil {
		return i
	}
	f := v.Float()
	switch {
	case math.IsNaN(f):
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

// Raw returns the value as JSON text ("" when missing).
func (v Value) Raw() string {
	switch v.Kind {
	case abi.KindMissing:
		return ""
	case abi.KindNull:
		return "null"
	case abi.KindTrue:
		return "true"
	case abi.KindFalse:
		return "false"
	case abi.KindString:
		b, _ := json.Marshal(v.raw)
		return string(b)
	}
	return v.raw
}

// RawJSON is a value that [Event.Set] writes as is: it must be valid JSON.
type RawJSON []byte

func encodeJSON(v any) ([]byte, error) {
	switch x := v.(type) {
	case RawJSON:
		return x, nil
	case string:
		return json.Marshal(x)
	case bool:
		return strconv.AppendBool(nil, x), nil
	case int:
		return strconv.AppendInt(nil, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(nil, x, 10), nil
	case nil:
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

// ErrInvalidJSON is returned when the host refuses a value as JSON.
var ErrInvalidJSON = fmt.Errorf("sdk: not valid JSON")

// ErrInvalidPath is returned when the host refuses a path.
var ErrInvalidPath = fmt.Errorf("sdk: invalid path")

func statusError(op string, s abi.Status) error {
	switch s {
	case abi.StatusOK:
		return nil
	case abi.StatusInvalidJSON:
		return fmt.Errorf("%s: %w", op, ErrInvalidJSON)
	case abi.StatusInvalidPath:
		return fmt.Errorf("%s: %w", op, ErrInvalidPath)
	}
	return fmt.Errorf("%s: host status %d", op, s)
}
