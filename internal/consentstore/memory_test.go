package consentstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"unsafe"

	"github.com/insertfn/insertfn/sdk/consent"
)

var ctx = context.Background()

// rec builds a record from its wire JSON.
func rec(t testing.TB, js string) *consent.Record {
	t.Helper()
	var r consent.Record
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("bad test record %s: %v", js, err)
	}
	return &r
}

func wire(t testing.TB, r *consent.Record) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func put(t testing.TB, m *Memory, js string) []consent.Change {
	t.Helper()
	ch, err := m.Put(rec(t, js))
	if err != nil {
		t.Fatalf("Put(%s): %v", js, err)
	}
	return ch
}

func get(t testing.TB, m *Memory, id string) *consent.Record {
	t.Helper()
	r, err := m.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return r
}

func category(t testing.TB, r *consent.Record, name string) consent.Category {
	t.Helper()
	c, ok := r.Category(name)
	if !ok {
		t.Fatalf("record %s has no category %q", r.ID, name)
	}
	return c
}

func TestGetByIDAndAlias(t *testing.T) {
	var m Memory // the zero value works
	if _, err := m.Get(ctx, "u1"); !errors.Is(err, consent.ErrNotFound) {
		t.Fatalf("Get on an empty store: %v, want ErrNotFound", err)
	}
	put(t, &m, `{"id":"u1","aliases":["a1","a2"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":10}}}`)
	r := get(t, &m, "u1")
	for _, id := range []string{"a1", "a2"} {
		if got := get(t, &m, id); got != r {
			t.Errorf("Get(%q) = %p, want the record of u1 (%p)", id, got, r)
		}
	}
	for _, id := range []string{"", "u2", "U1"} {
		if got, err := m.Get(ctx, id); !errors.Is(err, consent.ErrNotFound) || got != nil {
			t.Errorf("Get(%q) = %v, %v; want nil, ErrNotFound", id, got, err)
		}
	}
	if m.Len() != 1 {
		t.Errorf("Len = %d, want 1 (aliases do not count)", m.Len())
	}
}

func TestGetDoesNotKeepID(t *testing.T) {
	m := NewMemory()
	put(t, m, `{"id":"u1","categoryPreferences":{"Advertising":true}}`)
	buf := []byte("u1")
	view := unsafe.String(&buf[0], len(buf)) // what the host passes: a view into guest memory
	if _, err := m.Get(ctx, view); err != nil {
		t.Fatal(err)
	}
	copy(buf, "zz")
	if _, err := m.Get(ctx, "u1"); err != nil {
		t.Fatalf("after the caller reused its buffer: %v", err)
	}
	if _, err := m.Get(ctx, "zz"); !errors.Is(err, consent.ErrNotFound) {
		t.Fatalf("Get(zz) = %v: the store kept the caller's buffer", err)
	}
}

func TestPutMergesLastWriterWins(t *testing.T) {
	m := NewMemory()
	ch := put(t, m, `{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100},"Analytics":{"consented":false,"timestamp_unixtime_ms":100}},
		"consent_state":{"gdpr":{"location_collection":{"consented":true,"timestamp_unixtime_ms":100,"document":"v1"}}}}`)
	if len(ch) != 3 {
		t.Errorf("first Put: %d changes, want 3: %+v", len(ch), ch)
	}

	// Older: changes nothing. Newer: wins. Unnamed entries stay.
	ch = put(t, m, `{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":50},"Analytics":{"consented":true,"timestamp_unixtime_ms":200}}}`)
	r := get(t, m, "u1")
	if c := category(t, r, "Advertising"); !c.Consented || c.Timestamp != 100 {
		t.Errorf("Advertising = %+v: an older update must change nothing", c)
	}
	if c := category(t, r, "Analytics"); !c.Consented || c.Timestamp != 200 {
		t.Errorf("Analytics = %+v: a newer update must win", c)
	}
	if p, ok := r.Purpose("gdpr", "location_collection"); !ok || !p.Consented || p.Document != "v1" {
		t.Errorf("gdpr purpose = %+v, %v: an entry the update does not name must stay", p, ok)
	}
	if len(ch) != 1 || ch[0].Name != "Analytics" || ch[0].Old == nil || ch[0].Old.Consented || !ch[0].New.Consented {
		t.Errorf("changes = %+v, want one: Analytics false -> true", ch)
	}
	if r.UpdatedAt != 200 {
		t.Errorf("UpdatedAt = %d, want 200", r.UpdatedAt)
	}

	// Equal timestamp: the update wins; a replay changes nothing.
	put(t, m, `{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":100}}}`)
	if c := category(t, get(t, m, "u1"), "Advertising"); c.Consented {
		t.Errorf("Advertising = %+v: an update with an equal timestamp must win", c)
	}
	if ch := put(t, m, `{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":100}}}`); len(ch) != 0 {
		t.Errorf("a replay made changes: %+v", ch)
	}
}

func TestPutNeverMutatesHandedOutRecords(t *testing.T) {
	m := NewMemory()
	put(t, m, `{"id":"u1","aliases":["a1"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":1}}}`)
	before := get(t, m, "u1")
	snapshot := wire(t, before)
	put(t, m, `{"id":"u1","aliases":["a2"],"categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":2},"Analytics":{"consented":true,"timestamp_unixtime_ms":2}}}`)
	put(t, m, `{"id":"a1","consent_state":{"ccpa":{"data_sale_opt_out":{"consented":true,"timestamp_unixtime_ms":3}}}}`)
	if got := wire(t, before); got != snapshot {
		t.Fatalf("a record handed out by Get changed:\nbefore %s\nafter  %s", snapshot, got)
	}
	after := get(t, m, "a2")
	if after == before {
		t.Fatal("Put changed the record in place instead of swapping it")
	}
	if c := category(t, after, "Advertising"); c.Consented {
		t.Errorf("the new record was not merged: %s", wire(t, after))
	}
	if _, ok := after.Purpose("ccpa", "data_sale_opt_out"); !ok {
		t.Errorf("an update by alias was not merged into the record: %s", wire(t, after))
	}
}

func TestPutDoesNotKeepTheUpdate(t *testing.T) {
	m := NewMemory()
	u := rec(t, `{"id":"u1","aliases":["a1"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":1}}}`)
	if _, err := m.Put(u); err != nil {
		t.Fatal(err)
	}
	u.Categories[0].Consented = false
	u.Aliases[0] = "other"
	r := get(t, m, "a1")
	if c := category(t, r, "Advertising"); !c.Consented {
		t.Error("changing the update after Put changed the stored record")
	}
	if _, err := m.Get(ctx, "other"); err == nil {
		t.Error("changing the update's aliases after Put changed the index")
	}
}

func TestPutRejectsRecordWithoutID(t *testing.T) {
	m := NewMemory()
	if _, err := m.Put(&consent.Record{Aliases: []string{"a"}}); !errors.Is(err, ErrNoID) {
		t.Errorf("Put without id: %v, want ErrNoID", err)
	}
	if _, err := m.Put(nil); !errors.Is(err, ErrNoID) {
		t.Errorf("Put(nil): %v, want ErrNoID", err)
	}
	if m.Len() != 0 {
		t.Errorf("Len = %d", m.Len())
	}
}

func TestAliasesLinkRecords(t *testing.T) {
	t.Run("update by alias", func(t *testing.T) {
		m := NewMemory()
		put(t, m, `{"id":"u1","aliases":["anon1"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":1}}}`)
		put(t, m, `{"id":"anon1","categoryPreferences":{"Analytics":{"consented":true,"timestamp_unixtime_ms":2}}}`)
		if m.Len() != 1 {
			t.Fatalf("Len = %d, want 1: %v", m.Len(), ids(m))
		}
		r := get(t, m, "anon1")
		if r.ID != "u1" || !slices.Equal(r.Aliases, []string{"anon1"}) || len(r.Categories) != 2 {
			t.Errorf("record = %s, want u1 with alias anon1 and both categories", wire(t, r))
		}
	})
	t.Run("two records become one", func(t *testing.T) {
		m := NewMemory()
		put(t, m, `{"id":"u1","aliases":["a0"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":5},"Functional":{"consented":true,"timestamp_unixtime_ms":5}}}`)
		put(t, m, `{"id":"anon1","aliases":["a9"],"categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":9},"Analytics":{"consented":true,"timestamp_unixtime_ms":1}}}`)
		put(t, m, `{"id":"u1","aliases":["anon1"]}`) // an identify call carrying both ids
		if m.Len() != 1 {
			t.Fatalf("Len = %d, want 1: %v", m.Len(), ids(m))
		}
		r := get(t, m, "u1")
		for _, id := range []string{"a0", "anon1", "a9"} {
			if get(t, m, id) != r {
				t.Errorf("Get(%q) does not find the merged record", id)
			}
		}
		if !slices.Equal(r.Aliases, []string{"a0", "a9", "anon1"}) {
			t.Errorf("aliases = %v", r.Aliases)
		}
		if c := category(t, r, "Advertising"); c.Consented || c.Timestamp != 9 {
			t.Errorf("Advertising = %+v: the newer entry of the two records must win", c)
		}
		if len(r.Categories) != 3 || r.UpdatedAt != 9 {
			t.Errorf("merged record = %s", wire(t, r))
		}
	})
	t.Run("new id links an existing record", func(t *testing.T) {
		m := NewMemory()
		put(t, m, `{"id":"anon1","categoryPreferences":{"Advertising":true}}`)
		put(t, m, `{"id":"u1","aliases":["anon1"]}`)
		r := get(t, m, "anon1")
		if r.ID != "u1" || !slices.Equal(r.Aliases, []string{"anon1"}) || len(r.Categories) != 1 {
			t.Errorf("record = %s, want u1 with alias anon1 and its category", wire(t, r))
		}
		if got := ids(m); !slices.Equal(got, []string{"u1"}) {
			t.Errorf("records = %v, want [u1]", got)
		}
	})
}

func TestDelete(t *testing.T) {
	m := NewMemory()
	put(t, m, `{"id":"u1","aliases":["a1","a2"],"categoryPreferences":{"Advertising":true}}`)
	put(t, m, `{"id":"u2","categoryPreferences":{"Advertising":false}}`)
	if _, err := m.Delete(ctx, "nobody"); !errors.Is(err, consent.ErrNotFound) {
		t.Errorf("Delete of an unknown id: %v, want ErrNotFound", err)
	}
	if rec, err := m.Delete(ctx, "a2"); err != nil || rec.ID != "u1" {
		t.Fatalf("Delete by alias = %v, %v; want the record u1", rec, err)
	}
	for _, id := range []string{"u1", "a1", "a2"} {
		if _, err := m.Get(ctx, id); !errors.Is(err, consent.ErrNotFound) {
			t.Errorf("Get(%q) after Delete: %v", id, err)
		}
	}
	if m.Len() != 1 || get(t, m, "u2") == nil {
		t.Errorf("Delete removed too much: %v", ids(m))
	}
	// The id and aliases are free again.
	put(t, m, `{"id":"a1","categoryPreferences":{"Analytics":true}}`)
	if r := get(t, m, "a1"); r.ID != "a1" || len(r.Categories) != 1 {
		t.Errorf("after Delete, a new record a1 = %s", wire(t, r))
	}
}

func TestRecordsSorted(t *testing.T) {
	m := NewMemory()
	for _, id := range []string{"c", "a", "d", "b"} {
		put(t, m, fmt.Sprintf(`{"id":%q,"aliases":["alias-%s"]}`, id, id))
	}
	if got := ids(m); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("Records = %v, want sorted by id", got)
	}
	if m.Len() != 4 {
		t.Errorf("Len = %d", m.Len())
	}
}

func ids(m *Memory) []string {
	var out []string
	for _, r := range m.Records() {
		out = append(out, r.ID)
	}
	return out
}

func TestConcurrentPutGet(t *testing.T) {
	m := NewMemory()
	const writers, readers, rounds = 4, 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				u := &consent.Record{
					ID:         fmt.Sprintf("u%d", i%10),
					Aliases:    []string{fmt.Sprintf("anon%d", i%10)},
					Categories: []consent.Category{{Name: "Advertising", Consented: (i+w)%2 == 0, Timestamp: int64(i)}},
				}
				if _, err := m.Put(u); err != nil {
					t.Error(err)
					return
				}
				if i%97 == 0 {
					m.Delete(ctx, fmt.Sprintf("anon%d", (i+w)%10))
				}
			}
		})
	}
	for r := range readers {
		wg.Go(func() {
			for i := range rounds {
				id := fmt.Sprintf("u%d", (i+r)%10)
				if r%2 == 1 {
					id = fmt.Sprintf("anon%d", (i+r)%10)
				}
				rec, err := m.Get(ctx, id)
				if err != nil {
					if !errors.Is(err, consent.ErrNotFound) {
						t.Error(err)
					}
					continue
				}
				// Read everything: the race detector catches any writer
				// touching a record already handed out.
				_ = rec.CategoryMap()
				_ = rec.IDs()
				_ = rec.UpdatedAt
				if i%50 == 0 {
					_ = m.Records()
					_ = m.Len()
				}
			}
		})
	}
	wg.Wait()
	for _, r := range m.Records() {
		for _, id := range r.IDs() {
			if get(t, m, id) != r {
				t.Errorf("index out of step: Get(%q) is not record %s", id, r.ID)
			}
		}
	}
}

func TestGetAllocatesNothing(t *testing.T) {
	m := NewMemory()
	put(t, m, `{"id":"u1","aliases":["a1"],"categoryPreferences":{"Advertising":true}}`)
	buf := []byte("u1a1zz")
	for _, id := range []string{
		unsafe.String(&buf[0], 2), // u1
		unsafe.String(&buf[2], 2), // a1
		unsafe.String(&buf[4], 2), // zz, not found
	} {
		allocs := testing.AllocsPerRun(1000, func() { _, _ = m.Get(ctx, id) })
		if allocs != 0 {
			t.Errorf("Get(%q) allocates %.1f times per call, want 0", id, allocs)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	m := NewMemory()
	for i := range 1000 {
		put(b, m, fmt.Sprintf(`{"id":"u%d","aliases":["a%d"],"categoryPreferences":{"Advertising":true,"Analytics":false}}`, i, i))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Get(ctx, "a500"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
