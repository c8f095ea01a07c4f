package hostcall_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/insertfn/insertfn/sdk/hostcall"
)

const fuzzSettings = `{"mode":"strict","drop":true,"n":1.5,"nested":{"list":[1,"two",{"three":3}]},"esc":"a\"b"}`

func fuzzStore() *fakeStore {
	return newStore(
		&consent.Record{ID: "u1", Aliases: []string{"a1"},
			Categories: []consent.Category{{Name: "Advertising", Consented: true, Timestamp: 1}, {Name: "a.b", Timestamp: 2}},
			Purposes:   []consent.Purpose{{Regulation: "gdpr", Name: "ads", Consented: true, Timestamp: 3}}},
		&consent.Record{ID: "42"},
	)
}

// FuzzCallHost feeds arbitrary events, paths, values, ids and buffer sizes
// to the host functions. None may panic; every read follows the buffer rule
// (a returned length past the buffer means the buffer is untouched, and a
// value that fits is exactly what a large buffer gets); no change ever
// writes into the caller's event, and a changed event stays within the size
// limit.
func FuzzCallHost(f *testing.F) {
	f.Add([]byte(consentEvent), "properties.name", []byte(`"x"`), "", uint16(8), uint16(64))
	f.Add([]byte(`{"type":"track","userId":42,"context":{"consent":{"categoryPreferences":{"a.b":true},"consent_state":{"gdpr":{"ads":{"consented":false}}}}}}`),
		"context.consent", []byte(`{}`), "u1", uint16(0), uint16(0))
	f.Add([]byte(`{"a":[1,2,{"b":null}]}`), "a.2.b", []byte(`[true]`), "a1", uint16(3), uint16(1))
	f.Add([]byte(`{"context":{"consent":null}}`), "a.-1", []byte(`1`), "nobody", uint16(100), uint16(5))
	f.Add([]byte(`not json`), "@reverse", []byte(`{`), "", uint16(1), uint16(10))
	f.Add([]byte(`{"x":"\u00e9\"\\"}`), "x", []byte(`"\ud800"`), "42", uint16(2), uint16(2))
	f.Add([]byte(``), "", []byte(``), "", uint16(0), uint16(0))
	f.Add([]byte(`{"a":{"b":1}}`), "a.*", []byte(`2`), "", uint16(4), uint16(3))
	f.Add([]byte(`{"a":[]}`), "a.50000000", []byte(`1`), "", uint16(4), uint16(3)) // sjson would pad 50M nulls
	f.Fuzz(func(t *testing.T, event []byte, path string, value []byte, id string, bufSize, slack uint16) {
		orig := append([]byte(nil), event...)
		limit := len(event) + int(slack) + 1 // never 0, which means no limit
		var c hostcall.Call
		c.Reset(context.Background(), event, fuzzStore(), []byte(fuzzSettings), hostcall.Limits{MaxEventBytes: limit, MaxLogBytes: 256})

		checkRead := func(name string, read func(buf []byte) (uint32, int)) {
			buf := sentinelBuf(int(bufSize))
			s, n := read(buf)
			if n < 0 {
				t.Fatalf("%s: negative length %d", name, n)
			}
			if n > len(buf) {
				if !untouched(buf) {
					t.Fatalf("%s: length %d > buffer %d, but the buffer was written to", name, n, len(buf))
				}
			} else if !untouched(buf[n:]) {
				t.Fatalf("%s: bytes past the value's %d were written to", name, n)
			}
			// The value in a buffer that fits it is the same every time.
			full := sentinelBuf(n)
			s2, n2 := read(full)
			if s2 != s || n2 != n {
				t.Fatalf("%s: second call gave %d/%d, first %d/%d", name, s2, n2, s, n)
			}
			if n <= len(buf) && !bytes.Equal(buf[:n], full) {
				t.Fatalf("%s: %q in a buffer of %d, %q in one of %d", name, buf[:n], len(buf), full, n)
			}
		}
		checkEntries := func(name string, st abi.ConsentStatus, b []byte) {
			if st != abi.ConsentFound && st != abi.ConsentDiffers && len(b) != 0 {
				t.Fatalf("%s: status %s with %d bytes", name, st, len(b))
			}
			var e abi.Entry
			for len(b) > 0 {
				var ok bool
				if b, ok = abi.DecodeEntry(b, &e); !ok {
					t.Fatalf("%s: malformed entries", name)
				}
			}
		}
		reads := func() {
			checkRead("event_get", func(buf []byte) (uint32, int) { k, n := c.EventGet(path, buf); return uint32(k), n })
			checkRead("settings_get", func(buf []byte) (uint32, int) { k, n := c.SettingsGet(path, buf); return uint32(k), n })
			checkRead("event_read", func(buf []byte) (uint32, int) { return 0, c.EventRead(buf) })
			for _, lookupID := range []string{id, ""} {
				checkRead("consent_compare", func(buf []byte) (uint32, int) { s, n := c.ConsentCompare(lookupID, buf); return uint32(s), n })
				checkRead("consent_lookup", func(buf []byte) (uint32, int) { s, n := c.ConsentLookup(lookupID, buf); return uint32(s), n })
				big := make([]byte, 1<<16)
				st, n := c.ConsentCompare(lookupID, big)
				checkEntries("consent_compare", st, big[:min(n, len(big))])
				st, n = c.ConsentLookup(lookupID, big)
				checkEntries("consent_lookup", st, big[:min(n, len(big))])
			}
			_ = c.Doc.Type()
			_, _ = c.Doc.ConsentIDs()
		}
		validObject := json.Valid(event) && bytes.HasPrefix(bytes.TrimSpace(event), []byte("{"))

		reads()
		before := append([]byte(nil), c.Doc.Bytes()...)
		st := c.EventSet(path, value)
		if st != abi.StatusOK && !bytes.Equal(c.Doc.Bytes(), before) {
			t.Fatalf("event_set returned %d but changed the event", st)
		}
		if c.Err() != nil && !bytes.Equal(c.Doc.Bytes(), before) {
			t.Fatalf("event_set failed with %v but changed the event", c.Err())
		}
		checkEvent(t, &c, limit, validObject, "event_set")
		reads()
		st = c.EventDelete(path)
		if st != abi.StatusOK && st != abi.StatusInvalidPath {
			t.Fatalf("event_delete returned %d", st)
		}
		checkEvent(t, &c, limit, validObject, "event_delete")
		reads()
		if !bytes.Equal(event, orig) {
			t.Fatal("the caller's event bytes were written to")
		}
		c.Log(abi.LevelInfo, path)
		c.SetReason(string(value))
		if len(c.Reason()) > abi.MaxReasonLen {
			t.Fatalf("reason of %d bytes", len(c.Reason()))
		}
	})
}

func checkEvent(t *testing.T, c *hostcall.Call, limit int, validObject bool, op string) {
	t.Helper()
	if !c.Doc.Modified() {
		return
	}
	if len(c.Doc.Bytes()) > limit {
		t.Fatalf("%s: changed event of %d bytes over the limit of %d", op, len(c.Doc.Bytes()), limit)
	}
	if validObject && !json.Valid(c.Doc.Bytes()) {
		t.Fatalf("%s: a valid event became invalid JSON: %q", op, c.Doc.Bytes())
	}
}
