package hostcall_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/hostcall"
	"github.com/insertfn/insertfn/sdk/segment"
	"github.com/tidwall/gjson"
)

// callerBytes returns the event as a caller would hand it over, with spare
// capacity (an in-place append would land there), and a copy of the whole
// backing array to check it against.
func callerBytes(event string) (ev, backing []byte) {
	ev = make([]byte, len(event), len(event)+256)
	copy(ev, event)
	for i := len(event); i < cap(ev); i++ {
		ev[:cap(ev)][i] = '#'
	}
	return ev, append([]byte(nil), ev[:cap(ev)]...)
}

func checkUntouched(t *testing.T, ev, backing []byte) {
	t.Helper()
	if !bytes.Equal(ev[:cap(ev)], backing) {
		t.Fatalf("the caller's event bytes were written to:\n got %q\nwant %q", ev[:cap(ev)], backing)
	}
}

func mustJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("event is not a JSON object: %s: %v", b, err)
	}
	return m
}

func eqJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if g := mustJSON(t, got); !reflect.DeepEqual(g, w) {
		t.Errorf("event = %s, want %s", got, want)
	}
}

const baseEvent = `{"type":"track","event":"Order Completed","userId":"u1","anonymousId":"a1","properties":{"total":12.5,"name":"x"}}`

func TestDocGet(t *testing.T) {
	var d hostcall.Doc
	d.Reset([]byte(baseEvent), 0)
	if got := d.Get("properties.total").Raw; got != "12.5" {
		t.Errorf("Get(properties.total) = %q", got)
	}
	if d.Get("properties.missing").Exists() {
		t.Error("a missing field exists")
	}
	if !bytes.Equal(d.Bytes(), []byte(baseEvent)) || d.Modified() {
		t.Error("a fresh Doc is not the caller's event, unmodified")
	}
}

func TestDocSetNeverWritesCallerBytes(t *testing.T) {
	ev, backing := callerBytes(baseEvent)
	var d hostcall.Doc
	d.Reset(ev, 0)

	if st, err := d.Set("properties.total", []byte(`13`)); st != abi.StatusOK || err != nil {
		t.Fatalf("Set = %d, %v", st, err)
	}
	checkUntouched(t, ev, backing)
	if !d.Modified() {
		t.Error("Modified() = false after a Set")
	}
	// Changes after the first work on the Doc's own buffer.
	for _, c := range []struct{ path, raw string }{
		{"properties.added", `{"deep":[1,2,3]}`},
		{"event", `"Renamed"`},
		{"context.consent.categoryPreferences.Ads", `true`},
	} {
		if st, err := d.Set(c.path, []byte(c.raw)); st != abi.StatusOK || err != nil {
			t.Fatalf("Set(%s) = %d, %v", c.path, st, err)
		}
	}
	if st := d.Delete("anonymousId"); st != abi.StatusOK {
		t.Fatalf("Delete = %d", st)
	}
	checkUntouched(t, ev, backing)
	eqJSON(t, d.Bytes(), `{"type":"track","event":"Renamed","userId":"u1",
		"properties":{"total":13,"name":"x","added":{"deep":[1,2,3]}},
		"context":{"consent":{"categoryPreferences":{"Ads":true}}}}`)
}

func TestDocDeleteNeverWritesCallerBytes(t *testing.T) {
	ev, backing := callerBytes(baseEvent)
	var d hostcall.Doc
	d.Reset(ev, 0)
	if st := d.Delete("properties.total"); st != abi.StatusOK {
		t.Fatalf("Delete = %d", st)
	}
	checkUntouched(t, ev, backing)
	if d.Get("properties.total").Exists() || !d.Modified() {
		t.Errorf("after Delete: %s, modified %v", d.Bytes(), d.Modified())
	}
}

func TestDocDeleteMissing(t *testing.T) {
	var d hostcall.Doc
	d.Reset([]byte(baseEvent), 0)
	if st := d.Delete("properties.nothing"); st != abi.StatusOK {
		t.Errorf("Delete of a missing field = %d, want StatusOK", st)
	}
	if d.Modified() || string(d.Bytes()) != baseEvent {
		t.Error("deleting a missing field changed the event")
	}
}

func TestDocReplace(t *testing.T) {
	ev, backing := callerBytes(baseEvent)
	var d hostcall.Doc
	d.Reset(ev, 0)
	repl := []byte(`{"type":"identify","userId":42}`)
	if st, err := d.Replace(repl); st != abi.StatusOK || err != nil {
		t.Fatalf("Replace = %d, %v", st, err)
	}
	checkUntouched(t, ev, backing)
	// The Doc keeps its own copy: the replacement's bytes may be reused by
	// the guest.
	copy(repl, `{"type":"XXXXXXXX"`)
	if got := string(d.Bytes()); got != `{"type":"identify","userId":42}` {
		t.Errorf("event = %s: the Doc kept a view of the replacement", got)
	}
	if d.Type() != abi.EventIdentify || d.UserID() != "42" || d.AnonymousID() != "" || !d.Modified() {
		t.Errorf("after Replace: type %d, userId %q, anonymousId %q, modified %v", d.Type(), d.UserID(), d.AnonymousID(), d.Modified())
	}
}

func TestDocInvalidInput(t *testing.T) {
	var d hostcall.Doc
	d.Reset([]byte(baseEvent), 0)
	sets := []struct {
		path, raw string
		want      abi.Status
	}{
		{"properties.x", `{bad`, abi.StatusInvalidJSON},
		{"properties.x", ``, abi.StatusInvalidJSON},
		{"properties.x", `tru`, abi.StatusInvalidJSON},
		{"properties.x", `"unterminated`, abi.StatusInvalidJSON},
		{"properties.x", `1 2`, abi.StatusInvalidJSON},
		{"", `1`, abi.StatusInvalidPath},
	}
	for _, c := range sets {
		st, err := d.Set(c.path, []byte(c.raw))
		if st != c.want || err != nil {
			t.Errorf("Set(%q, %q) = %d, %v, want %d", c.path, c.raw, st, err, c.want)
		}
	}
	if st := d.Delete(""); st != abi.StatusInvalidPath {
		t.Errorf("Delete(\"\") = %d, want StatusInvalidPath", st)
	}
	// A path sjson cannot delete by (gjson query syntax).
	if st := d.Delete("properties.*"); st != abi.StatusInvalidPath {
		t.Errorf("Delete(properties.*) = %d, want StatusInvalidPath", st)
	}
	for _, r := range []string{`[1,2]`, `"a string"`, `12`, `null`, `{"a":`, ``, `{} {}`} {
		if st, err := d.Replace([]byte(r)); st != abi.StatusInvalidJSON || err != nil {
			t.Errorf("Replace(%q) = %d, %v, want StatusInvalidJSON", r, st, err)
		}
	}
	if d.Modified() || string(d.Bytes()) != baseEvent {
		t.Errorf("refused changes changed the event: %s", d.Bytes())
	}
}

// A path in gjson's query syntax is not an sjson path. Set must refuse it
// (StatusInvalidPath) and leave the event alone, where sjson would report
// success and either set nothing or set the first field a wildcard matches.
func TestDocSetUnsupportedPath(t *testing.T) {
	for _, path := range []string{"properties.a?", "properties.#", "a|b", "@this", "properties.#(x)", "properties.*", "properties.na?e"} {
		var d hostcall.Doc
		d.Reset([]byte(baseEvent), 0)
		st, err := d.Set(path, []byte(`1`))
		if err != nil {
			t.Fatalf("Set(%q): %v", path, err)
		}
		if st != abi.StatusInvalidPath || string(d.Bytes()) != baseEvent || d.Modified() {
			t.Errorf("Set(%q) = %d, event %s, modified %v; want StatusInvalidPath and no change", path, st, d.Bytes(), d.Modified())
		}
	}
}

func TestDocSizeLimit(t *testing.T) {
	ev := []byte(baseEvent)
	limit := len(ev) + 10
	var d hostcall.Doc
	d.Reset(ev, limit)

	// Growing past the limit: ErrTooLarge, the event as it was.
	st, err := d.Set("properties.big", []byte(`"0123456789abcdef"`))
	if !errors.Is(err, hostcall.ErrTooLarge) {
		t.Fatalf("Set past the limit = %d, %v, want ErrTooLarge", st, err)
	}
	if string(d.Bytes()) != baseEvent || d.Modified() {
		t.Fatalf("a refused Set changed the event: %s (modified %v)", d.Bytes(), d.Modified())
	}

	// A change that fits, then one that does not: the first one stays.
	if st, err := d.Set("properties.n", []byte(`1`)); st != abi.StatusOK || err != nil {
		t.Fatalf("Set within the limit = %d, %v", st, err)
	}
	fitting := string(d.Bytes())
	if len(fitting) > limit {
		t.Fatalf("event of %d bytes over the limit of %d", len(fitting), limit)
	}
	if _, err := d.Set("properties.n", []byte(`123456789012345678901234567890`)); !errors.Is(err, hostcall.ErrTooLarge) {
		t.Fatalf("second Set past the limit: %v, want ErrTooLarge", err)
	}
	if string(d.Bytes()) != fitting || !d.Modified() {
		t.Fatalf("a refused Set changed the modified event: %s", d.Bytes())
	}
	if d.Get("properties.n").Raw != "1" {
		t.Error("the fitting change was lost")
	}

	// Exactly at the limit is fine.
	var e hostcall.Doc
	e.Reset([]byte(`{"a":1}`), len(`{"a":12345}`))
	if _, err := e.Set("a", []byte(`12345`)); err != nil {
		t.Errorf("Set to exactly the limit: %v", err)
	}
	if _, err := e.Set("a", []byte(`123456`)); !errors.Is(err, hostcall.ErrTooLarge) {
		t.Errorf("Set to one byte past the limit: %v", err)
	}

	// Replace past the limit.
	if _, err := d.Replace([]byte(`{"type":"track","padding":"` + string(bytes.Repeat([]byte("x"), limit)) + `"}`)); !errors.Is(err, hostcall.ErrTooLarge) {
		t.Errorf("Replace past the limit: %v, want ErrTooLarge", err)
	}
	if string(d.Bytes()) != fitting {
		t.Error("a refused Replace changed the event")
	}

	// No limit.
	var u hostcall.Doc
	u.Reset([]byte(`{}`), 0)
	if _, err := u.Set("big", []byte(`"`+string(bytes.Repeat([]byte("y"), 1<<20))+`"`)); err != nil {
		t.Errorf("Set without a limit: %v", err)
	}
}

// A Delete that leaves an event still over the size limit (an event may
// arrive over it) deletes all the same: it makes the event smaller.
func TestDocDeleteOnOversizedEvent(t *testing.T) {
	var d hostcall.Doc
	d.Reset([]byte(baseEvent), 20)
	if st := d.Delete("properties"); st != abi.StatusOK {
		t.Fatalf("Delete = %d", st)
	}
	if d.Get("properties").Exists() {
		t.Fatalf("Delete reported StatusOK on an event over the limit but deleted nothing: %s", d.Bytes())
	}
	if !d.Modified() {
		t.Error("Delete removed the field but Modified() = false")
	}
	// Deleting down to within the limit always works.
	var e hostcall.Doc
	e.Reset([]byte(baseEvent), 20)
	for _, p := range []string{"properties", "event", "userId", "anonymousId"} {
		e.Delete(p)
	}
	if got := string(e.Bytes()); got != `{"type":"track"}` {
		t.Errorf("event = %s", got)
	}
}

func TestDocIDsAndType(t *testing.T) {
	cases := []struct {
		event    string
		typ      abi.EventType
		uid, aid string
	}{
		{baseEvent, abi.EventTrack, "u1", "a1"},
		{`{"type":"identify","userId":123,"anonymousId":4.5e3}`, abi.EventIdentify, "123", "4500"},
		// A number is the id JavaScript's String(n) gives it, as the ingest
		// stores it and the consent store keys it.
		{`{"type":"identify","userId":123.0,"anonymousId":1.23e2}`, abi.EventIdentify, "123", "123"},
		{`{"type":"identify","userId":123e0,"anonymousId":1e21}`, abi.EventIdentify, "123", "1e+21"},
		{`{"type":"identify","userId":12345678901234567891}`, abi.EventIdentify, "12345678901234567891", ""}, // not exact: as written
		{`{"type":"page","userId":-7}`, abi.EventPage, "-7", ""},
		{`{"type":"screen","anonymousId":"a\"b"}`, abi.EventScreen, "", `a"b`},
		{`{"type":"group","userId":true,"anonymousId":null}`, abi.EventGroup, "", ""},
		{`{"type":"alias","userId":{"id":1},"anonymousId":["x"]}`, abi.EventAlias, "", ""},
		{`{"type":"delete"}`, abi.EventDelete, "", ""},
		{`{"type":"Track"}`, abi.EventOther, "", ""},
		{`{"type":"batch"}`, abi.EventOther, "", ""},
		{`{"type":1}`, abi.EventOther, "", ""},
		{`{}`, abi.EventOther, "", ""},
		{`{"properties":{"userId":"nested","type":"track"}}`, abi.EventOther, "", ""}, // top level only
		{``, abi.EventOther, "", ""},
	}
	for _, c := range cases {
		var d hostcall.Doc
		d.Reset([]byte(c.event), 0)
		if d.Type() != c.typ || d.UserID() != c.uid || d.AnonymousID() != c.aid {
			t.Errorf("%s: type %d userId %q anonymousId %q, want %d %q %q", c.event, d.Type(), d.UserID(), d.AnonymousID(), c.typ, c.uid, c.aid)
		}
		uid, aid := d.ConsentIDs()
		if uid != c.uid || aid != c.aid {
			t.Errorf("%s: ConsentIDs = %q, %q", c.event, uid, aid)
		}
	}
}

func TestDocRescansAfterChange(t *testing.T) {
	var d hostcall.Doc
	d.Reset([]byte(baseEvent), 0)
	if d.UserID() != "u1" || d.Type() != abi.EventTrack || d.HasConsent() {
		t.Fatal("bad start")
	}
	must(t)(d.Set("userId", []byte(`"u2"`)))
	must(t)(d.Set("type", []byte(`"identify"`)))
	must(t)(d.Set("context.consent", []byte(`{}`)))
	if d.UserID() != "u2" || d.Type() != abi.EventIdentify || !d.HasConsent() {
		t.Errorf("after Set: userId %q type %d consent %v", d.UserID(), d.Type(), d.HasConsent())
	}
	if d.Delete("userId") != abi.StatusOK || d.UserID() != "" {
		t.Errorf("after Delete: userId %q", d.UserID())
	}
	// Reset forgets everything.
	d.Reset([]byte(`{"type":"page","anonymousId":"z"}`), 0)
	if d.UserID() != "" || d.AnonymousID() != "z" || d.Type() != abi.EventPage || d.Modified() || d.HasConsent() {
		t.Error("Reset kept state from the previous event")
	}
}

// must(t)(d.Set(...)) fails t unless the change succeeded.
func must(t *testing.T) func(abi.Status, error) {
	return func(st abi.Status, err error) {
		t.Helper()
		if st != abi.StatusOK || err != nil {
			t.Fatalf("status %d, err %v", st, err)
		}
	}
}

func TestAppendValue(t *testing.T) {
	doc := `{"s":"a\"b","n":-1.5e3,"t":true,"f":false,"z":null,"o":{"k":[1]},"a":[1,"x"]}`
	cases := []struct {
		path string
		kind abi.Kind
		out  string
	}{
		{"s", abi.KindString, `a"b`},
		{"n", abi.KindNumber, `-1.5e3`},
		{"t", abi.KindTrue, ``},
		{"f", abi.KindFalse, ``},
		{"z", abi.KindNull, ``},
		{"o", abi.KindJSON, `{"k":[1]}`},
		{"a", abi.KindJSON, `[1,"x"]`},
		{"missing", abi.KindMissing, ``},
	}
	for _, c := range cases {
		out, kind := hostcall.AppendValue([]byte("pre:"), gjson.Get(doc, c.path))
		if kind != c.kind || string(out) != "pre:"+c.out {
			t.Errorf("AppendValue(%s) = %q, %d, want %q, %d", c.path, out, kind, "pre:"+c.out, c.kind)
		}
	}
}

// A numeric path component makes sjson pad an array with nulls up to that
// index before the size limit is checked: one event_set of "x.50000000"
// would cost the host about 1.4 GB and seconds, outside the guest's memory
// cap and timeout. The limit must be enforced before that work.
func TestDocSetHugeArrayIndexIsCheap(t *testing.T) {
	for _, c := range []struct{ event, path string }{
		{`{"type":"track"}`, "x.5000000"},
		{`{"type":"track","properties":{"a":[]}}`, "properties.a.5000000"},
	} {
		var d hostcall.Doc
		d.Reset([]byte(c.event), 64<<10)
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		st, err := d.Set(c.path, []byte(`1`))
		runtime.ReadMemStats(&m1)
		allocated := m1.TotalAlloc - m0.TotalAlloc
		if string(d.Bytes()) != c.event {
			t.Fatalf("Set(%s) changed the event past its limit", c.path)
		}
		if err == nil && st == abi.StatusOK {
			t.Fatalf("Set(%s) succeeded past the limit", c.path)
		}
		if allocated > 8<<20 {
			t.Errorf("Set(%s) = %d, %v after allocating %d MB", c.path, st, err, allocated>>20)
		}
	}
}

// A guest's JSON, path or index must not make the host recurse, loop or
// allocate without bound: each of these is refused cheaply.
func TestHostileInputsAreRefusedCheaply(t *testing.T) {
	var d hostcall.Doc
	d.Reset([]byte(`{"type":"track"}`), 64<<10)
	deep := bytes.Repeat([]byte("["), 20<<20)
	if _, err := d.Set("x", deep); !errors.Is(err, hostcall.ErrTooLarge) {
		t.Errorf("Set of 20 MiB of '[': %v, want ErrTooLarge", err)
	}
	nested := append(bytes.Repeat([]byte("["), hostcall.MaxDepth+1), bytes.Repeat([]byte("]"), hostcall.MaxDepth+1)...)
	if st, err := d.Set("x", nested); st != abi.StatusInvalidJSON || err != nil {
		t.Errorf("Set nested %d deep: %v %v, want StatusInvalidJSON", hostcall.MaxDepth+1, st, err)
	}
	if st, _ := d.Replace(append(append([]byte(`{"a":`), nested...), '}')); st != abi.StatusInvalidJSON {
		t.Errorf("Replace nested too deep: %v", st)
	}
	bomb := "@this" + strings.Repeat("|[@this,@this]", 25)
	for _, p := range []string{bomb, "a|b", "@reverse", "[type,type]", "{type}", "a.!true", strings.Repeat("a.", hostcall.MaxPathLen)} {
		if r := d.Get(p); r.Exists() {
			t.Errorf("Get(%.40q) = %s, want refused", p, r.Raw)
		}
	}
	for _, p := range []string{"type", "properties.items.0.sku", "a\\.b", "items.#", "items.#(sku==\"x\").price", "prop*"} {
		if !hostcall.ReadablePath(p) {
			t.Errorf("ReadablePath(%q) = false, want true", p)
		}
	}
	manyIndexes := "x" + strings.Repeat(".13000", 8000)
	if st, err := d.Set(manyIndexes, []byte("1")); err == nil && st == abi.StatusOK {
		t.Errorf("Set with many large indexes was accepted")
	}
	sumOver := "x.10000.10000"
	if _, err := d.Set(sumOver, []byte("1")); !errors.Is(err, hostcall.ErrTooLarge) {
		t.Errorf("Set(%s) under a 64 KiB limit: %v, want ErrTooLarge", sumOver, err)
	}
}

// FuzzType checks that Doc.Type, which reads a leading "type" member
// without gjson, agrees with gjson's reading of the same event.
func FuzzType(f *testing.F) {
	for _, s := range []string{
		`{"type":"track","event":"x"}`, `{"type":"identify","userId":"u"}`, `{"type":"page"}`,
		`{"type":"screen","name":"s"}`, `{"type":"group","groupId":"g"}`, `{"type":"alias","previousId":"p"}`,
		`{"type":"delete","userId":"u"}`, `{"type":"trackX","userId":"u"}`, `{"type":"track\"","a":1}`,
		`{"type":"identify"}`, `{"type":"track" ,"a":1}`, `{"type":"track"}  `, `{"type":"page",,`,
		`{"type":"tr\u0061ck","userId":"u"}`, `{"type":"track","type":"page"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, event string) {
		var d hostcall.Doc
		d.Reset([]byte(event), 0)
		want := abi.ParseEventType(gjson.Get(event, "type").Str)
		if gjson.Get(event, "type").Type != gjson.String {
			want = abi.EventOther
		}
		if got := d.Type(); got != want {
			t.Errorf("%q: Type() = %d, gjson reads %d", event, got, want)
		}
	})
}

// TestDocReadsTheIngestOrder: an event written in the order the ingest
// writes every event (segment.LeadingMembers, consent first in context) has
// its type read where Doc.Type looks first, without a lookup
// (segment.LeadingType), and its ids and consent found. The ingest's
// TestStoredOrder checks the other half: that it writes this order.
func TestDocReadsTheIngestOrder(t *testing.T) {
	for typ := segment.Track; typ <= segment.Delete; typ++ {
		ev := []byte(segment.TypePrefix + typ.String() + `"`)
		for _, m := range segment.LeadingMembers()[1:] {
			ev = append(ev, `,"`+m+`":`...)
			switch m {
			case segment.MemberIntegrations:
				ev = append(ev, `{"All":true}`...)
			case segment.MemberContext:
				ev = append(ev, `{"`+segment.ContextLeadingMember+`":{"categoryPreferences":{"A":true}},"ip":"192.0.2.1"}`...)
			default:
				ev = append(ev, `"`+m+`-value"`...)
			}
		}
		ev = append(ev, `,"properties":{"type":"other"}}`...)
		if got, ok := segment.LeadingType(ev); !ok || got != typ {
			t.Errorf("%s: the type is not read without a lookup (LeadingType = %d, %v): the ingest's order and the host's reader disagree", ev, got, ok)
		}
		var d hostcall.Doc
		d.Reset(ev, 0)
		if d.Type() != typ || d.UserID() != "userId-value" || d.AnonymousID() != "anonymousId-value" || !d.HasConsent() {
			t.Errorf("%s: type %d userId %q anonymousId %q consent %v", ev, d.Type(), d.UserID(), d.AnonymousID(), d.HasConsent())
		}
	}
}
