package hostcall_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/insertfn/insertfn/sdk/hostcall"
)

// fakeStore is a consent.Store that records the ids it is asked for.
type fakeStore struct {
	recs  map[string]*consent.Record
	err   error
	asked []string
}

func (s *fakeStore) Get(_ context.Context, id string) (*consent.Record, error) {
	s.asked = append(s.asked, strings.Clone(id))
	if s.err != nil {
		return nil, s.err
	}
	if r, ok := s.recs[id]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("looking %s up: %w", id, consent.ErrNotFound)
}

func newStore(recs ...*consent.Record) *fakeStore {
	s := &fakeStore{recs: map[string]*consent.Record{}}
	for _, r := range recs {
		r.Normalize()
		for _, id := range r.IDs() {
			s.recs[id] = r
		}
	}
	return s
}

func newCall(event string, store consent.Store, settings string, limits hostcall.Limits) *hostcall.Call {
	var c hostcall.Call
	var sb []byte
	if settings != "" {
		sb = []byte(settings)
	}
	c.Reset(context.Background(), []byte(event), store, sb, limits)
	return &c
}

// sentinelBuf returns a buffer of n bytes filled with 0xA5.
func sentinelBuf(n int) []byte { return bytes.Repeat([]byte{0xA5}, n) }

func untouched(b []byte) bool {
	for _, c := range b {
		if c != 0xA5 {
			return false
		}
	}
	return true
}

// bufferRule checks the buffer rule on one host function: a buffer one byte
// short gets nothing and the full length; a buffer of exactly that length
// gets the value; a larger one gets the value and nothing past it. It
// returns the value.
func bufferRule(t *testing.T, name string, call func(buf []byte) int) []byte {
	t.Helper()
	n := call(nil)
	if n == 0 {
		t.Fatalf("%s: empty value, the buffer rule cannot be checked", name)
	}
	for _, short := range []int{0, 1, n / 2, n - 1} {
		buf := sentinelBuf(short)
		if got := call(buf); got != n {
			t.Errorf("%s: buffer of %d returned %d, want the full length %d", name, short, got, n)
		}
		if !untouched(buf) {
			t.Errorf("%s: a buffer of %d (< %d) was written to", name, short, n)
		}
	}
	exact := sentinelBuf(n)
	if got := call(exact); got != n {
		t.Fatalf("%s: buffer of %d returned %d", name, n, got)
	}
	big := sentinelBuf(n + 10)
	if got := call(big); got != n {
		t.Fatalf("%s: buffer of %d returned %d", name, n+10, got)
	}
	if !bytes.Equal(big[:n], exact) || !untouched(big[n:]) {
		t.Errorf("%s: a larger buffer got %q", name, big)
	}
	return exact
}

func storedU1() *consent.Record {
	return &consent.Record{ID: "u1", Aliases: []string{"a-linked"},
		Categories: []consent.Category{{Name: "Advertising", Consented: true, Timestamp: 100}, {Name: "Analytics", Consented: false, Timestamp: 200}},
		Purposes:   []consent.Purpose{{Regulation: "gdpr", Name: "ads", Consented: true, Timestamp: 300}},
	}
}

func storedA1() *consent.Record {
	return &consent.Record{ID: "a1", Categories: []consent.Category{{Name: "Advertising", Consented: false, Timestamp: 50}}}
}

const consentEvent = `{"type":"track","userId":"u1","anonymousId":"a1","properties":{"name":"Order Completed","long":"` +
	`0123456789012345678901234567890123456789"},"context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":false}}}}`

func TestCallBufferRule(t *testing.T) {
	c := newCall(consentEvent, newStore(storedU1()), `{"mode":"strict","nested":{"a":[1,2,3]}}`, hostcall.Limits{})

	v := bufferRule(t, "event_get", func(buf []byte) int {
		k, n := c.EventGet("properties.long", buf)
		if k != abi.KindString {
			t.Errorf("event_get kind %d", k)
		}
		return n
	})
	if string(v) != "0123456789012345678901234567890123456789" {
		t.Errorf("event_get = %q", v)
	}
	v = bufferRule(t, "event_get object", func(buf []byte) int {
		k, n := c.EventGet("properties", buf)
		if k != abi.KindJSON {
			t.Errorf("event_get kind %d", k)
		}
		return n
	})
	if !strings.HasPrefix(string(v), `{"name":"Order Completed"`) {
		t.Errorf("event_get object = %q", v)
	}
	if v = bufferRule(t, "event_read", c.EventRead); string(v) != consentEvent {
		t.Errorf("event_read = %q", v)
	}
	v = bufferRule(t, "settings_get", func(buf []byte) int {
		k, n := c.SettingsGet("nested.a", buf)
		if k != abi.KindJSON {
			t.Errorf("settings_get kind %d", k)
		}
		return n
	})
	if string(v) != "[1,2,3]" {
		t.Errorf("settings_get = %q", v)
	}
	v = bufferRule(t, "consent_lookup", func(buf []byte) int {
		st, n := c.ConsentLookup("", buf)
		if st != abi.ConsentFound {
			t.Errorf("consent_lookup status %s", st)
		}
		return n
	})
	if got := decodeAll(t, v); len(got) != 3 {
		t.Errorf("consent_lookup entries %v", got)
	}
	v = bufferRule(t, "consent_compare", func(buf []byte) int {
		st, n := c.ConsentCompare("", buf)
		if st != abi.ConsentDiffers {
			t.Errorf("consent_compare status %s", st)
		}
		return n
	})
	if got := decodeAll(t, v); !slices.Equal(got, []ent{{fE | fSC, "Advertising", "", 100}}) {
		t.Errorf("consent_compare entries %v", got)
	}
}

func TestCallEventGetKinds(t *testing.T) {
	c := newCall(`{"s":"a\"b\u00e9","n":-1.50,"t":true,"f":false,"z":null,"o":{"k":1},"a":[]}`, nil, "", hostcall.Limits{})
	cases := []struct {
		path string
		kind abi.Kind
		val  string
	}{
		{"s", abi.KindString, "a\"bé"},
		{"n", abi.KindNumber, "-1.50"},
		{"t", abi.KindTrue, ""},
		{"f", abi.KindFalse, ""},
		{"z", abi.KindNull, ""},
		{"o", abi.KindJSON, `{"k":1}`},
		{"a", abi.KindJSON, `[]`},
		{"missing", abi.KindMissing, ""},
		{"o.k", abi.KindNumber, "1"},
		{"a.0", abi.KindMissing, ""},
	}
	for _, cs := range cases {
		buf := sentinelBuf(64)
		k, n := c.EventGet(cs.path, buf)
		if k != cs.kind || n != len(cs.val) || string(buf[:n]) != cs.val || !untouched(buf[n:]) {
			t.Errorf("EventGet(%s) = %d, %q, want %d, %q", cs.path, k, buf[:n], cs.kind, cs.val)
		}
	}
}

func TestCallEventChanges(t *testing.T) {
	ev := []byte(`{"type":"track","userId":"u1"}`)
	orig := append([]byte(nil), ev...)
	var c hostcall.Call
	c.Reset(context.Background(), ev, nil, nil, hostcall.Limits{MaxEventBytes: 64})
	if st := c.EventSet("properties.ok", []byte("true")); st != abi.StatusOK {
		t.Fatalf("EventSet = %d", st)
	}
	if st := c.EventSet("properties.bad", []byte("{")); st != abi.StatusInvalidJSON {
		t.Errorf("EventSet invalid JSON = %d", st)
	}
	if st := c.EventSet("", []byte("1")); st != abi.StatusInvalidPath {
		t.Errorf("EventSet empty path = %d", st)
	}
	if st := c.EventDelete("userId"); st != abi.StatusOK {
		t.Errorf("EventDelete = %d", st)
	}
	if st := c.EventDelete(""); st != abi.StatusInvalidPath {
		t.Errorf("EventDelete empty path = %d", st)
	}
	if st := c.EventWrite([]byte(`[1]`)); st != abi.StatusInvalidJSON {
		t.Errorf("EventWrite array = %d", st)
	}
	if !bytes.Equal(ev, orig) {
		t.Error("the caller's event was written to")
	}
	if got := string(c.Doc.Bytes()); got != `{"type":"track","properties":{"ok":true}}` {
		t.Errorf("event = %s", got)
	}
	if c.Err() != nil {
		t.Fatalf("Err = %v", c.Err())
	}

	// Too large: recorded, the event as it was.
	before := string(c.Doc.Bytes())
	c.EventSet("properties.big", []byte(`"`+strings.Repeat("x", 64)+`"`))
	if !errors.Is(c.Err(), hostcall.ErrTooLarge) || string(c.Doc.Bytes()) != before {
		t.Errorf("too large set: Err %v, event %s", c.Err(), c.Doc.Bytes())
	}
	var w hostcall.Call
	w.Reset(context.Background(), ev, nil, nil, hostcall.Limits{MaxEventBytes: 40})
	if st := w.EventWrite([]byte(`{"type":"identify","userId":"` + strings.Repeat("u", 40) + `"}`)); st != abi.StatusOK || !errors.Is(w.Err(), hostcall.ErrTooLarge) {
		t.Errorf("too large write: %d, Err %v", st, w.Err())
	}
	if string(w.Doc.Bytes()) != string(orig) {
		t.Errorf("a refused write changed the event: %s", w.Doc.Bytes())
	}
}

func TestConsentLookupByExplicitID(t *testing.T) {
	s := newStore(storedU1(), storedA1())
	c := newCall(consentEvent, s, "", hostcall.Limits{})
	buf := make([]byte, 1024)

	st, n := c.ConsentLookup("a1", buf)
	got := decodeAll(t, buf[:n])
	if st != abi.ConsentFound || !slices.Equal(got, []ent{{fS, "Advertising", "", 50}}) {
		t.Errorf("lookup a1 = %s %v", st, got)
	}
	// By an alias.
	st, n = c.ConsentLookup("a-linked", buf)
	if got := decodeAll(t, buf[:n]); st != abi.ConsentFound || len(got) != 3 {
		t.Errorf("lookup by alias = %s %v", st, got)
	}
	st, n = c.ConsentLookup("nobody", buf)
	if st != abi.ConsentNoRecord || n != 0 {
		t.Errorf("lookup nobody = %s, %d", st, n)
	}
	if !slices.Equal(s.asked, []string{"a1", "a-linked", "nobody"}) {
		t.Errorf("store asked for %q", s.asked)
	}
	if len(c.Logs()) != 0 {
		t.Errorf("a missing record was logged: %v", c.Logs())
	}
}

func TestConsentLookupByEventIDs(t *testing.T) {
	cases := []struct {
		name   string
		event  string
		recs   []*consent.Record
		status abi.ConsentStatus
		asked  []string
		first  string // the first entry's name and timestamp tell the records apart
		ts     int64
	}{
		{"userId first", `{"userId":"u1","anonymousId":"a1"}`, []*consent.Record{storedU1(), storedA1()},
			abi.ConsentFound, []string{"u1"}, "Advertising", 100},
		{"anonymousId when userId has no record", `{"userId":"u-none","anonymousId":"a1"}`, []*consent.Record{storedU1(), storedA1()},
			abi.ConsentFound, []string{"u-none", "a1"}, "Advertising", 50},
		{"anonymousId only", `{"anonymousId":"a1"}`, []*consent.Record{storedA1()},
			abi.ConsentFound, []string{"a1"}, "Advertising", 50},
		{"numeric userId", `{"userId":42}`, []*consent.Record{{ID: "42", Categories: []consent.Category{{Name: "N", Timestamp: 7}}}},
			abi.ConsentFound, []string{"42"}, "N", 7},
		{"neither has a record", `{"userId":"u-none","anonymousId":"a-none"}`, []*consent.Record{storedU1()},
			abi.ConsentNoRecord, []string{"u-none", "a-none"}, "", 0},
		{"userId without record, no anonymousId", `{"userId":"u-none"}`, []*consent.Record{storedA1()},
			abi.ConsentNoRecord, []string{"u-none"}, "", 0},
		{"no ids", `{"type":"track"}`, []*consent.Record{storedU1()},
			abi.ConsentNoID, nil, "", 0},
		{"empty ids", `{"userId":"","anonymousId":""}`, []*consent.Record{storedU1()},
			abi.ConsentNoID, nil, "", 0},
		{"ids of the wrong type", `{"userId":true,"anonymousId":{"id":"a1"}}`, []*consent.Record{storedA1()},
			abi.ConsentNoID, nil, "", 0},
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			s := newStore(cs.recs...)
			c := newCall(cs.event, s, "", hostcall.Limits{})
			buf := make([]byte, 1024)
			st, n := c.ConsentLookup("", buf)
			if st != cs.status {
				t.Errorf("status %s, want %s", st, cs.status)
			}
			if !slices.Equal(s.asked, cs.asked) {
				t.Errorf("store asked for %q, want %q", s.asked, cs.asked)
			}
			got := decodeAll(t, buf[:n])
			if cs.first == "" {
				if n != 0 {
					t.Errorf("%d bytes with status %s", n, st)
				}
				return
			}
			if len(got) == 0 || got[0].Name != cs.first || got[0].TS != cs.ts {
				t.Errorf("entries %v, want first %s@%d", got, cs.first, cs.ts)
			}
		})
	}
}

func TestConsentLookupNilStore(t *testing.T) {
	c := newCall(`{"userId":"u1"}`, nil, "", hostcall.Limits{})
	if st, n := c.ConsentLookup("", nil); st != abi.ConsentNoRecord || n != 0 {
		t.Errorf("nil store: %s, %d", st, n)
	}
}

func TestConsentStoreError(t *testing.T) {
	s := newStore(storedU1())
	s.err = errors.New("redis: connection refused")
	c := newCall(consentEvent, s, "", hostcall.Limits{})
	buf := sentinelBuf(64)
	if st, n := c.ConsentLookup("", buf); st != abi.ConsentUnavailable || n != 0 || !untouched(buf) {
		t.Errorf("lookup with a failing store: %s, %d", st, n)
	}
	logs := c.Logs()
	if len(logs) != 1 || logs[0].Level != abi.LevelError || !strings.Contains(logs[0].Message, "redis: connection refused") {
		t.Fatalf("logs = %+v, want one error line with the store's error", logs)
	}
	if st, n := c.ConsentCompare("u1", buf); st != abi.ConsentUnavailable || n != 0 {
		t.Errorf("compare with a failing store: %s, %d", st, n)
	}
	if len(c.Logs()) != 1 {
		t.Errorf("logs = %+v, want still one error line", c.Logs())
	}
	// A store's failure is the host's, not a log limit broken by the guest.
	if c.Err() != nil {
		t.Errorf("Err = %v", c.Err())
	}
	// The first failing id ends the lookup: no fallback to anonymousId.
	if !slices.Equal(s.asked, []string{"u1", "u1"}) {
		t.Errorf("store asked for %q", s.asked)
	}
}

func TestConsentCompareStatuses(t *testing.T) {
	s := newStore(storedU1())
	buf := make([]byte, 256)
	cases := []struct {
		name, event, id string
		status          abi.ConsentStatus
	}{
		{"differs", consentEvent, "", abi.ConsentDiffers},
		{"explicit id", consentEvent, "u1", abi.ConsentDiffers},
		{"same", `{"userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}}}`, "", abi.ConsentSame},
		{"no event consent", `{"userId":"u1"}`, "", abi.ConsentNoEventConsent},
		{"no event consent beats no id", `{"type":"track"}`, "", abi.ConsentNoEventConsent},
		{"no id", `{"context":{"consent":{}}}`, "", abi.ConsentNoID},
		{"no record", `{"userId":"u9","context":{"consent":{}}}`, "", abi.ConsentNoRecord},
		{"no record, explicit id", consentEvent, "nobody", abi.ConsentNoRecord},
	}
	for _, cs := range cases {
		c := newCall(cs.event, s, "", hostcall.Limits{})
		st, n := c.ConsentCompare(cs.id, buf)
		if st != cs.status {
			t.Errorf("%s: status %s, want %s", cs.name, st, cs.status)
		}
		if (st != abi.ConsentDiffers) != (n == 0) {
			t.Errorf("%s: status %s with %d bytes", cs.name, st, n)
		}
	}
}

func TestSettingsGet(t *testing.T) {
	settings := `{"drop": true, "mode":"strict","n":3,"list":[1,2]}`
	c := newCall(`{}`, nil, settings, hostcall.Limits{})
	buf := make([]byte, 256)
	k, n := c.SettingsGet("", buf)
	if k != abi.KindJSON || string(buf[:n]) != settings {
		t.Errorf(`SettingsGet("") = %d %q, want the whole object as given`, k, buf[:n])
	}
	for _, cs := range []struct {
		path string
		kind abi.Kind
		val  string
	}{
		{"drop", abi.KindTrue, ""}, {"mode", abi.KindString, "strict"}, {"n", abi.KindNumber, "3"},
		{"list", abi.KindJSON, "[1,2]"}, {"missing", abi.KindMissing, ""},
	} {
		k, n := c.SettingsGet(cs.path, buf)
		if k != cs.kind || string(buf[:n]) != cs.val {
			t.Errorf("SettingsGet(%s) = %d %q, want %d %q", cs.path, k, buf[:n], cs.kind, cs.val)
		}
	}
	// No settings: an empty object.
	c = newCall(`{}`, nil, "", hostcall.Limits{})
	if k, n := c.SettingsGet("", buf); k != abi.KindJSON || string(buf[:n]) != "{}" {
		t.Errorf(`no settings: SettingsGet("") = %d %q`, k, buf[:n])
	}
	if k, n := c.SettingsGet("x", buf); k != abi.KindMissing || n != 0 {
		t.Errorf(`no settings: SettingsGet("x") = %d %d`, k, n)
	}
}

// Each line counts its bytes plus one, as if it ended with a newline.
func TestLogLimit(t *testing.T) {
	c := newCall(`{}`, nil, "", hostcall.Limits{MaxLogBytes: 10})
	c.Log(abi.LevelInfo, "12345") // 6
	c.Log(abi.LevelWarn, "")      // 7
	if c.Err() != nil {
		t.Fatalf("Err = %v within the limit", c.Err())
	}
	c.Log(abi.LevelDebug, "67890ABCDE") // only "67" fits (7 + 2 + 1 = 10)
	if !errors.Is(c.Err(), hostcall.ErrLogLimit) {
		t.Fatalf("Err = %v, want ErrLogLimit", c.Err())
	}
	c.Log(abi.LevelError, "more") // past the limit: nothing more is kept
	want := []hostcall.LogLine{{Level: abi.LevelInfo, Message: "12345"}, {Level: abi.LevelWarn, Message: ""}, {Level: abi.LevelDebug, Message: "67"}}
	if !slices.Equal(c.Logs(), want) {
		t.Errorf("logs = %+v, want %+v", c.Logs(), want)
	}
	total := 0
	for _, l := range c.Logs() {
		total += len(l.Message) + 1
	}
	if total > 10 {
		t.Errorf("%d log bytes kept, limit 10", total)
	}

	// Exactly at the limit is fine.
	c = newCall(`{}`, nil, "", hostcall.Limits{MaxLogBytes: 10})
	c.Log(abi.LevelInfo, "012345678")
	if c.Err() != nil || len(c.Logs()) != 1 {
		t.Errorf("exactly at the limit: Err %v, logs %v", c.Err(), c.Logs())
	}
	c.Log(abi.LevelInfo, "x")
	if !errors.Is(c.Err(), hostcall.ErrLogLimit) {
		t.Errorf("one byte past the limit: Err %v", c.Err())
	}

	// No limit.
	c = newCall(`{}`, nil, "", hostcall.Limits{})
	c.Log(abi.LevelInfo, strings.Repeat("x", 1<<20))
	if c.Err() != nil || len(c.Logs()[0].Message) != 1<<20 {
		t.Errorf("no limit: Err %v", c.Err())
	}
}

// The host keeps its own copy of a log line: the guest's memory is reused.
func TestLogCopiesMessage(t *testing.T) {
	c := newCall(`{}`, nil, "", hostcall.Limits{})
	msg := []byte("hello")
	c.Log(abi.LevelInfo, string(msg)) // a copy here; the runtime passes a view
	b := []byte("guest memory")
	s := unsafeString(b)
	c.Log(abi.LevelInfo, s)
	copy(b, "XXXXXXXXXXXX")
	if c.Logs()[1].Message != "guest memory" {
		t.Errorf("log line = %q: the host kept a view into guest memory", c.Logs()[1].Message)
	}
}

func TestSetReason(t *testing.T) {
	c := newCall(`{}`, nil, "", hostcall.Limits{})
	c.SetReason("first")
	c.SetReason("second")
	if string(c.Reason()) != "second" {
		t.Errorf("Reason = %q, want the last one", c.Reason())
	}
	long := strings.Repeat("r", abi.MaxReasonLen) + "TAIL"
	c.SetReason(long)
	if string(c.Reason()) != long[:abi.MaxReasonLen] {
		t.Errorf("Reason has %d bytes, want %d", len(c.Reason()), abi.MaxReasonLen)
	}
	// The reason is the host's copy.
	b := []byte("view")
	c.SetReason(unsafeString(b))
	copy(b, "XXXX")
	if string(c.Reason()) != "view" {
		t.Errorf("Reason = %q: the host kept a view", c.Reason())
	}
	c.SetReason("")
	if len(c.Reason()) != 0 {
		t.Errorf("Reason = %q after an empty one", c.Reason())
	}
}

func TestCallReset(t *testing.T) {
	s := newStore(storedU1())
	c := newCall(consentEvent, s, `{"a":1}`, hostcall.Limits{MaxLogBytes: 4, MaxEventBytes: 1 << 10})
	c.Log(abi.LevelInfo, "too long")
	c.SetReason("why")
	c.EventSet("x", []byte("1"))
	if c.Err() == nil || len(c.Logs()) == 0 || len(c.Reason()) == 0 || !c.Doc.Modified() {
		t.Fatal("bad start")
	}
	c.Reset(context.Background(), []byte(`{"type":"page"}`), nil, nil, hostcall.Limits{})
	if c.Err() != nil || len(c.Logs()) != 0 || len(c.Reason()) != 0 || c.Doc.Modified() || c.Doc.Type() != abi.EventPage {
		t.Errorf("Reset kept state: Err %v, logs %v, reason %q", c.Err(), c.Logs(), c.Reason())
	}
	buf := make([]byte, 16)
	if k, n := c.SettingsGet("", buf); k != abi.KindJSON || string(buf[:n]) != "{}" {
		t.Errorf("Reset kept the settings: %q", buf[:n])
	}
	if st, _ := c.ConsentLookup("u1", buf); st != abi.ConsentNoRecord {
		t.Errorf("Reset kept the store: %s", st)
	}
}

// unsafeString is a view of b, as the runtime passes guest memory.
func unsafeString(b []byte) string { return unsafe.String(&b[0], len(b)) }

// Empty log lines cost the host a LogLine each, so they count against
// MaxLogBytes too: else a guest that logs "" in a loop would grow the
// host's log slice without bound until its timeout.
func TestEmptyLogLinesAreBounded(t *testing.T) {
	c := newCall(`{}`, nil, "", hostcall.Limits{MaxLogBytes: 100})
	for range 10000 {
		c.Log(abi.LevelInfo, "")
	}
	if n := len(c.Logs()); n > 100 || !errors.Is(c.Err(), hostcall.ErrLogLimit) {
		t.Errorf("%d empty log lines kept under a 100-byte limit (Err %v)", n, c.Err())
	}
}

// The host's own log line about a failing store is not the guest's doing:
// it must not use up the guest's log budget and make its next line break
// the log limit.
func TestStoreErrorLineDoesNotUseGuestLogBudget(t *testing.T) {
	s := newStore()
	s.err = errors.New(strings.Repeat("e", 200))
	c := newCall(`{"userId":"u1"}`, s, "", hostcall.Limits{MaxLogBytes: 100})
	if st, _ := c.ConsentLookup("", nil); st != abi.ConsentUnavailable {
		t.Fatalf("status %s", st)
	}
	c.Log(abi.LevelInfo, "guest line")
	if c.Err() != nil || len(c.Logs()) != 2 || c.Logs()[1].Message != "guest line" {
		t.Errorf("Err %v, logs %+v", c.Err(), c.Logs())
	}
}

// A line cut at the log limit is cut between characters, not inside one.
func TestLogLimitCutsBetweenCharacters(t *testing.T) {
	c := newCall(`{}`, nil, "", hostcall.Limits{MaxLogBytes: 5})
	c.Log(abi.LevelInfo, "aé€z") // 1 + 2 + 3 + 1 bytes: "€" does not fit whole
	if !errors.Is(c.Err(), hostcall.ErrLogLimit) || len(c.Logs()) != 1 || c.Logs()[0].Message != "aé" {
		t.Errorf("Err %v, logs %+q, want [aé]", c.Err(), c.Logs())
	}
}

// However often a function asks a failing store, the host logs the failure
// once per event: the function cannot grow the host's memory through it.
func TestStoreFailureLoggedOncePerEvent(t *testing.T) {
	s := newStore(storedU1())
	s.err = errors.New("redis: connection refused")
	c := newCall(consentEvent, s, "", hostcall.Limits{})
	buf := make([]byte, 64)
	for range 1000 {
		c.ConsentLookup("u1", buf)
	}
	if len(c.Logs()) != 1 {
		t.Errorf("%d log lines after 1000 failed lookups, want 1", len(c.Logs()))
	}
}

// asOfStore is a consent.AsOfStore that records the time it is asked for.
type asOfStore struct {
	*fakeStore
	at []int64
}

func (s *asOfStore) GetAsOf(ctx context.Context, id string, at int64) (*consent.Record, error) {
	s.at = append(s.at, at)
	return s.Get(ctx, id)
}

// TestConsentLookupAsOfReceipt: with a store that answers as of a time,
// the lookup asks for the consent as of the event's receivedAt (read from
// the end of the event where the ingest writes it, or by a lookup), and
// as of nothing when the event has none.
func TestConsentLookupAsOfReceipt(t *testing.T) {
	rec := &consent.Record{ID: "u1", Categories: []consent.Category{{Name: "A", Consented: true, Timestamp: 1}}}
	for _, c := range []struct {
		event string
		at    []int64
	}{
		{`{"type":"track","userId":"u1","receivedAt":"2024-05-01T12:00:00.000Z"}`, []int64{1714564800000}},
		{`{"type":"track","receivedAt":"2024-05-01T12:00:00.5+00:00","userId":"u1"}`, []int64{1714564800500}},
		{`{"type":"track","userId":"u1"}`, nil},
		{`{"type":"track","userId":"u1","receivedAt":"yesterday"}`, nil},
	} {
		s := &asOfStore{fakeStore: newStore(rec)}
		call := newCall(c.event, s, "", hostcall.Limits{})
		if st, _ := call.ConsentLookup("", nil); st != abi.ConsentFound {
			t.Fatalf("%s: lookup status %v", c.event, st)
		}
		if !slices.Equal(s.at, c.at) {
			t.Errorf("%s: asked as of %v, want %v", c.event, s.at, c.at)
		}
		if c.at == nil && len(s.asked) != 1 {
			t.Errorf("%s: the plain lookup was not made (asked %v)", c.event, s.asked)
		}
	}
	// The as-of lookup allocates nothing of its own.
	s := &asOfStore{fakeStore: newStore(rec), at: make([]int64, 0, 1024)}
	s.asked = make([]string, 0, 1024)
	event := []byte(`{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"A":true}}},"receivedAt":"2024-05-01T12:00:00.000Z"}`)
	var call hostcall.Call
	if n := testing.AllocsPerRun(100, func() {
		s.at, s.asked = s.at[:0], s.asked[:0]
		call.Reset(context.Background(), event, s, nil, hostcall.Limits{})
		call.ConsentLookup("", nil)
	}); n > 1 { // strings.Clone of the id in fakeStore
		t.Errorf("%v allocations per lookup", n)
	}
}
