// Package storetest is the behavioural test suite every consent store
// backend passes: merge order, partial updates, aliases and linking,
// delete, history, AsOf, scanning, concurrent writers, and an import that
// replaces records.
//
// A backend's test calls [Run] with a way to open a fresh, empty store:
//
//	func TestSuite(t *testing.T) {
//		storetest.Run(t, storetest.Backends{
//			Open: func(t *testing.T) (read, write consentstore.Backend) {
//				b := consentstore.NewMemory()
//				return b, b
//			},
//		})
//	}
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

// Backends describes the backend under test.
type Backends struct {
	// Open returns a fresh, empty store: the backend under test (read) and
	// the backend that writes to it (write). For read-write backends both
	// are the same value. Open registers its own cleanup with t.Cleanup.
	Open func(t *testing.T) (read, write consentstore.Backend)
	// Pair, when set, returns two backends over one shared, empty store
	// (two hosts on one Redis). The concurrency test then writes through
	// both.
	Pair func(t *testing.T) (a, b consentstore.Backend)
	// ReadOnly: read refuses writes with [consentstore.ErrReadOnly] and
	// keeps no history (a company's consent service). The suite then
	// writes through write and checks what read returns.
	ReadOnly bool
}

// Run runs the suite as subtests of t.
func Run(t *testing.T, b Backends) {
	s := suite{b: b}
	t.Run("GetUnknown", s.getUnknown)
	t.Run("UpdateAndGet", s.updateAndGet)
	t.Run("MergeOrder", s.mergeOrder)
	t.Run("PartialUpdate", s.partialUpdate)
	t.Run("Aliases", s.aliases)
	t.Run("LinkMergesRecords", s.linkMerges)
	t.Run("Delete", s.delete)
	t.Run("RecordsAreNotMutated", s.notMutated)
	t.Run("Scan", s.scan)
	t.Run("Concurrent", s.concurrent)
	if b.ReadOnly {
		t.Run("RefusesWrites", s.refusesWrites)
		return
	}
	t.Run("History", s.history)
	t.Run("HistoryFollowsLinks", s.historyLinks)
	t.Run("AsOf", s.asOf)
	t.Run("RefusesFutureTimes", s.refusesFuture)
	t.Run("ClampedInHistory", s.clampedInHistory)
	t.Run("NumericIDs", s.numericIDs)
	t.Run("ImportReplace", s.importReplace)
	t.Run("Close", s.close)
}

type suite struct{ b Backends }

var ctx = context.Background()

// env is one fresh store under test.
type env struct {
	t     *testing.T
	read  consentstore.Backend
	write *consentstore.Store // validates updates like the host does
}

func (s suite) open(t *testing.T) *env {
	t.Helper()
	read, write := s.b.Open(t)
	return &env{t: t, read: read, write: consentstore.New(write, consentstore.Options{})}
}

// update applies a wire-format update from source.
func (e *env) update(source, js string) []consent.Change {
	e.t.Helper()
	var r consent.Record
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		e.t.Fatalf("bad test update %s: %v", js, err)
	}
	ch, err := e.write.Update(ctx, consentstore.Update{Record: r, Source: source})
	if err != nil {
		e.t.Fatalf("Update(%s): %v", js, err)
	}
	return ch
}

func (e *env) get(id string) *consent.Record {
	e.t.Helper()
	r, err := e.read.Get(ctx, id)
	if err != nil {
		e.t.Fatalf("Get(%q): %v", id, err)
	}
	return r
}

func (e *env) missing(id string) {
	e.t.Helper()
	if r, err := e.read.Get(ctx, id); !errors.Is(err, consent.ErrNotFound) {
		e.t.Errorf("Get(%q) = %s, %v; want ErrNotFound", id, wire(r), err)
	}
}

func wire(r *consent.Record) string {
	if r == nil {
		return "<nil>"
	}
	b, _ := json.Marshal(r)
	return string(b)
}

// wantCats checks r's categories, "Name=bool@ts" each, sorted by name.
func wantCats(t *testing.T, r *consent.Record, want ...string) {
	t.Helper()
	var got []string
	for _, c := range r.Categories {
		got = append(got, fmt.Sprintf("%s=%t@%d", c.Name, c.Consented, c.Timestamp))
	}
	if !slices.Equal(got, want) {
		t.Errorf("categories of %s = %v, want %v", r.ID, got, want)
	}
}

func (s suite) getUnknown(t *testing.T) {
	e := s.open(t)
	e.missing("nobody")
	e.missing("")
}

func (s suite) updateAndGet(t *testing.T) {
	e := s.open(t)
	ch := e.update("admin", `{"id":"u1","aliases":["a1"],
		"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":1000},"Analytics":{"consented":false,"timestamp_unixtime_ms":2000}},
		"consent_state":{"gdpr":{"location_collection":{"consented":true,"timestamp_unixtime_ms":1500,
			"document":"location_collection_agreement.v43","location":"example.com/signup","hardware_id":"IDFA:a5d9"}},
			"ccpa":{"data_sale_opt_out":{"consented":true,"timestamp_unixtime_ms":1579198790480}}}}`)
	if len(ch) != 4 {
		t.Errorf("first update: %d changes, want 4: %+v", len(ch), ch)
	}
	r := e.get("u1")
	if r.ID != "u1" || !slices.Equal(r.Aliases, []string{"a1"}) {
		t.Errorf("record = %s, want id u1 with alias a1", wire(r))
	}
	wantCats(t, r, "Advertising=true@1000", "Analytics=false@2000")
	want := []consent.Purpose{
		{Regulation: "ccpa", Name: "data_sale_opt_out", Consented: true, Timestamp: 1579198790480},
		{Regulation: "gdpr", Name: "location_collection", Consented: true, Timestamp: 1500,
			Document: "location_collection_agreement.v43", Location: "example.com/signup", HardwareID: "IDFA:a5d9"},
	}
	if !slices.Equal(r.Purposes, want) {
		t.Errorf("purposes = %+v, want %+v", r.Purposes, want)
	}
	if r.UpdatedAt != 1579198790480 {
		t.Errorf("UpdatedAt = %d, want the newest entry time 1579198790480", r.UpdatedAt)
	}
	if got := e.get("a1"); got.ID != "u1" {
		t.Errorf("Get by alias a1 = %s, want record u1", wire(got))
	}
}

// mergeOrder: the same updates in every order give the newest entry per
// category; equal timestamps let the later update win.
func (s suite) mergeOrder(t *testing.T) {
	updates := []string{
		`{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`,
		`{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":300},"Analytics":{"consented":true,"timestamp_unixtime_ms":50}}}`,
		`{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":200},"Analytics":{"consented":false,"timestamp_unixtime_ms":40}}}`,
	}
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}, {2, 0, 1}} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			e := s.open(t)
			for _, i := range order {
				e.update("test", updates[i])
			}
			wantCats(t, e.get("u1"), "Advertising=false@300", "Analytics=true@50")
		})
	}
	t.Run("OlderChangesNothing", func(t *testing.T) {
		e := s.open(t)
		e.update("test", updates[1])
		if ch := e.update("test", updates[0]); len(ch) != 0 {
			t.Errorf("an older update reported changes: %+v", ch)
		}
		wantCats(t, e.get("u1"), "Advertising=false@300", "Analytics=true@50")
	})
	t.Run("EqualTimestampUpdateWins", func(t *testing.T) {
		e := s.open(t)
		e.update("test", `{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
		ch := e.update("test", `{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":100}}}`)
		if len(ch) != 1 || ch[0].Old == nil || !ch[0].Old.Consented || ch[0].New.Consented {
			t.Errorf("changes = %+v, want Advertising true -> false", ch)
		}
		wantCats(t, e.get("u1"), "Advertising=false@100")
		// A replay of the same update is harmless.
		if ch := e.update("test", `{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":100}}}`); len(ch) != 0 {
			t.Errorf("a replay reported changes: %+v", ch)
		}
	})
	t.Run("PurposesToo", func(t *testing.T) {
		e := s.open(t)
		e.update("test", `{"id":"u1","consent_state":{"gdpr":{"p":{"consented":true,"timestamp_unixtime_ms":500,"document":"v2"}}}}`)
		e.update("test", `{"id":"u1","consent_state":{"gdpr":{"p":{"consented":false,"timestamp_unixtime_ms":400,"document":"v1"}}}}`)
		p, ok := e.get("u1").Purpose("gdpr", "p")
		if !ok || !p.Consented || p.Timestamp != 500 || p.Document != "v2" {
			t.Errorf("purpose gdpr.p = %+v, want the newer consented=true document v2", p)
		}
	})
}

func (s suite) partialUpdate(t *testing.T) {
	e := s.open(t)
	e.update("test", `{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100},"Analytics":{"consented":true,"timestamp_unixtime_ms":100}},
		"consent_state":{"ccpa":{"data_sale_opt_out":{"consented":false,"timestamp_unixtime_ms":100}}}}`)
	e.update("test", `{"id":"u1","categoryPreferences":{"Analytics":{"consented":false,"timestamp_unixtime_ms":200}}}`)
	r := e.get("u1")
	wantCats(t, r, "Advertising=true@100", "Analytics=false@200")
	if p, ok := r.Purpose("ccpa", "data_sale_opt_out"); !ok || p.Consented {
		t.Errorf("a partial update of categories changed purposes: %s", wire(r))
	}
	// Bare booleans are stamped with the time of the update.
	before := time.Now().UnixMilli()
	e.update("test", `{"id":"u1","categoryPreferences":{"Functional":true}}`)
	c, ok := e.get("u1").Category("Functional")
	if !ok || !c.Consented || c.Timestamp < before || c.Timestamp > time.Now().UnixMilli() {
		t.Errorf("bare boolean stored as %+v, want consented with the update's time", c)
	}
}

func (s suite) aliases(t *testing.T) {
	e := s.open(t)
	e.update("test", `{"id":"anon1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	// The user logs in: userId u1 with anonymousId anon1 as alias.
	e.update("test", `{"id":"u1","aliases":["anon1"],"categoryPreferences":{"Analytics":{"consented":true,"timestamp_unixtime_ms":200}}}`)
	for _, id := range []string{"u1", "anon1"} {
		r := e.get(id)
		wantCats(t, r, "Advertising=true@100", "Analytics=true@200")
		if !slices.Equal(r.IDs()[1:], []string{"anon1"}) && !slices.Equal(r.IDs()[1:], []string{"u1"}) {
			t.Errorf("Get(%q) = %s, want one record linking u1 and anon1", id, wire(r))
		}
	}
	if a, b := e.get("u1"), e.get("anon1"); a.ID != b.ID {
		t.Errorf("u1 finds %q and anon1 finds %q: want the same record", a.ID, b.ID)
	}
	// An update by the alias changes the same record.
	e.update("test", `{"id":"anon1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":300}}}`)
	wantCats(t, e.get("u1"), "Advertising=false@300", "Analytics=true@200")
	s.wantRecords(t, e, 1)
}

// linkMerges: two existing records become one when an update links them.
func (s suite) linkMerges(t *testing.T) {
	e := s.open(t)
	e.update("test", `{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100},"Analytics":{"consented":false,"timestamp_unixtime_ms":300}}}`)
	e.update("test", `{"id":"anon1","aliases":["anon2"],"categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":200},"Analytics":{"consented":true,"timestamp_unixtime_ms":250}}}`)
	if err := e.write.Link(ctx, "u1", "anon1"); err != nil {
		t.Fatalf("Link: %v", err)
	}
	for _, id := range []string{"u1", "anon1", "anon2"} {
		r := e.get(id)
		if r.ID != "u1" {
			t.Errorf("Get(%q) = %s, want the merged record u1", id, wire(r))
		}
		if !slices.Equal(r.Aliases, []string{"anon1", "anon2"}) {
			t.Errorf("aliases of u1 = %v, want [anon1 anon2]", r.Aliases)
		}
		wantCats(t, r, "Advertising=false@200", "Analytics=false@300")
	}
	s.wantRecords(t, e, 1)
}

func (s suite) delete(t *testing.T) {
	e := s.open(t)
	e.update("test", `{"id":"u1","aliases":["a1","a2"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	e.update("test", `{"id":"u2","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":100}}}`)
	if ok, err := e.write.Delete(ctx, "nobody"); ok || err != nil {
		t.Errorf("Delete(nobody) = %t, %v; want false, nil", ok, err)
	}
	if ok, err := e.write.Delete(ctx, "a2"); !ok || err != nil {
		t.Fatalf("Delete by alias = %t, %v; want true, nil", ok, err)
	}
	for _, id := range []string{"u1", "a1", "a2"} {
		e.missing(id)
	}
	wantCats(t, e.get("u2"), "Advertising=false@100")
	if !s.b.ReadOnly {
		if _, _, err := e.read.History(ctx, "u1"); !errors.Is(err, consent.ErrNotFound) {
			t.Errorf("History after Delete: %v, want ErrNotFound", err)
		}
	}
	// The ids are free again, with nothing of the old record.
	e.update("test", `{"id":"a1","categoryPreferences":{"Analytics":{"consented":true,"timestamp_unixtime_ms":50}}}`)
	r := e.get("a1")
	if r.ID != "a1" || len(r.Aliases) != 0 {
		t.Errorf("new record a1 = %s, want a fresh record", wire(r))
	}
	wantCats(t, r, "Analytics=true@50")
	e.missing("u1")
	if !s.b.ReadOnly {
		_, pts, err := e.read.History(ctx, "a1")
		if err != nil || len(pts) != 1 {
			t.Errorf("history of the new a1 = %+v, %v; want its one point", pts, err)
		}
	}
}

// notMutated: a record handed out stays as it was after later writes.
func (s suite) notMutated(t *testing.T) {
	e := s.open(t)
	e.update("test", `{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	r := e.get("u1")
	before := wire(r)
	e.update("test", `{"id":"u1","aliases":["a9"],"categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":200},"Z":{"consented":true,"timestamp_unixtime_ms":200}}}`)
	if after := wire(r); after != before {
		t.Errorf("a record handed out changed from %s to %s", before, after)
	}
}

// scanAll returns every record read holds.
func scanAll(t *testing.T, read consentstore.Backend) []*consent.Record {
	t.Helper()
	var out []*consent.Record
	err := read.Scan(ctx, func(r *consent.Record) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return out
}

// wantRecords checks how many records the store holds, when it can list
// them.
func (s suite) wantRecords(t *testing.T, e *env, n int) {
	t.Helper()
	if s.b.ReadOnly {
		return
	}
	if got := len(scanAll(t, e.read)); got != n {
		t.Errorf("%d records, want %d", got, n)
	}
}

func (s suite) scan(t *testing.T) {
	if s.b.ReadOnly {
		t.Skip("a read-only backend cannot list records")
	}
	e := s.open(t)
	for i := range 25 {
		e.update("test", fmt.Sprintf(`{"id":"u%02d","aliases":["anon%02d"],"categoryPreferences":{"Advertising":{"consented":%t,"timestamp_unixtime_ms":%d}}}`, i, i, i%2 == 0, 100+i))
	}
	recs := scanAll(t, e.read)
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	if len(ids) != 25 || ids[0] != "u00" || ids[24] != "u24" {
		t.Errorf("Scan ids = %v, want u00..u24 once each (aliases are not records)", ids)
	}
	stop := errors.New("stop")
	n := 0
	err := e.read.Scan(ctx, func(*consent.Record) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Errorf("Scan with fn failing on the 3rd record: %v after %d calls, want stop after 3", err, n)
	}
}

func (s suite) refusesWrites(t *testing.T) {
	e := s.open(t)
	u := &consentstore.Update{Record: consent.Record{ID: "u1", Categories: []consent.Category{{Name: "A", Timestamp: 1}}}, RecordedAt: 1}
	if _, _, err := e.read.Update(ctx, u); !errors.Is(err, consentstore.ErrReadOnly) {
		t.Errorf("Update: %v, want ErrReadOnly", err)
	}
	if _, err := e.read.Delete(ctx, "u1"); !errors.Is(err, consentstore.ErrReadOnly) {
		t.Errorf("Delete: %v, want ErrReadOnly", err)
	}
}

// concurrent: many goroutines (through two backends when Pair is set)
// update one record in random order; the result is the newest entry per
// category and, with history, every decision is kept.
func (s suite) concurrent(t *testing.T) {
	var a, b consentstore.Backend
	var read consentstore.Backend
	if s.b.Pair != nil {
		a, b = s.b.Pair(t)
		read = a
	} else {
		var w consentstore.Backend
		read, w = s.b.Open(t)
		a, b = w, w
	}
	stores := []*consentstore.Store{consentstore.New(a, consentstore.Options{}), consentstore.New(b, consentstore.Options{})}
	cats := []string{"Advertising", "Analytics", "Functional", "Marketing"}
	const perCat = 60
	type job struct {
		cat string
		ts  int64
	}
	var jobs []job
	for _, c := range cats {
		for ts := int64(1); ts <= perCat; ts++ {
			jobs = append(jobs, job{c, ts})
		}
	}
	rand.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	ch := make(chan job)
	var wg sync.WaitGroup
	for w := range 8 {
		st := stores[w%2]
		wg.Go(func() {
			for j := range ch {
				// Value: true on even timestamps, so the newest (perCat) is true.
				u := consentstore.Update{Source: fmt.Sprintf("w%d", w), Record: consent.Record{ID: "u1",
					Aliases:    []string{"anon1"},
					Categories: []consent.Category{{Name: j.cat, Consented: j.ts%2 == 0, Timestamp: j.ts}}}}
				if _, err := st.Update(ctx, u); err != nil {
					t.Errorf("Update %s@%d: %v", j.cat, j.ts, err)
				}
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	r, err := read.Get(ctx, "anon1")
	if err != nil {
		t.Fatalf("Get after concurrent updates: %v", err)
	}
	var want []string
	for _, c := range cats {
		want = append(want, fmt.Sprintf("%s=true@%d", c, perCat))
	}
	wantCats(t, r, want...)
	if s.b.ReadOnly {
		return
	}
	_, pts, err := read.History(ctx, "u1")
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(pts) != len(jobs) {
		t.Errorf("history holds %d points, want every one of the %d decisions", len(pts), len(jobs))
	}
}

func (s suite) history(t *testing.T) {
	e := s.open(t)
	e.update("event:m1", `{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	e.update("event:m2", `{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":300}}}`)
	e.update("event:m2-replay", `{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":300}}}`)
	// A decision that arrives late: older than what is stored.
	e.update("import:f:7", `{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":200}}}`)
	e.update("admin", `{"id":"u1","consent_state":{"gdpr":{"p":{"consented":true,"timestamp_unixtime_ms":250,"document":"v1"}}}}`)

	rec, pts, err := e.read.History(ctx, "u1")
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if rec.ID != "u1" {
		t.Errorf("History record = %s, want u1", wire(rec))
	}
	h := consentstore.History(pts)
	var got []string
	for _, p := range h {
		old := "none"
		if p.Old != nil {
			old = fmt.Sprint(p.Old.Consented)
		}
		got = append(got, fmt.Sprintf("%s/%s@%d %s->%t changed=%t from %s doc=%q", p.Kind, p.Name, p.Timestamp, old, p.Consented, p.Changed, p.Source, p.Document))
	}
	want := []string{
		"category/Advertising@100 none->true changed=true from event:m1 doc=\"\"",
		"category/Advertising@200 true->false changed=true from import:f:7 doc=\"\"",
		"purpose/p@250 none->true changed=true from admin doc=\"v1\"",
		"category/Advertising@300 false->false changed=false from event:m2 doc=\"\"",
	}
	if !slices.Equal(got, want) {
		t.Errorf("history =\n  %s\nwant\n  %s", join(got), join(want))
	}
	for _, p := range pts {
		if p.RecordedAt == 0 {
			t.Errorf("point %+v without RecordedAt", p)
		}
	}
	// A different value for an existing decision replaces it.
	e.update("fix", `{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":200}}}`)
	_, pts, _ = e.read.History(ctx, "u1")
	for _, p := range pts {
		if p.Timestamp == 200 && (!p.Consented || p.Source != "fix") {
			t.Errorf("point @200 = %+v, want consented from fix", p)
		}
	}
	if len(pts) != 4 {
		t.Errorf("%d points after the fix, want 4", len(pts))
	}
	if _, _, err := e.read.History(ctx, "nobody"); !errors.Is(err, consent.ErrNotFound) {
		t.Errorf("History(nobody): %v, want ErrNotFound", err)
	}
}

// historyLinks: linking two records joins their histories; the history is
// found by any id.
func (s suite) historyLinks(t *testing.T) {
	e := s.open(t)
	e.update("a", `{"id":"anon1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	e.update("b", `{"id":"u1","categoryPreferences":{"Analytics":{"consented":true,"timestamp_unixtime_ms":200}}}`)
	if err := e.write.Link(ctx, "u1", "anon1"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"u1", "anon1"} {
		rec, pts, err := e.read.History(ctx, id)
		if err != nil || rec.ID != "u1" || len(pts) != 2 {
			t.Errorf("History(%q) = %s, %d points, %v; want u1 with both points", id, wire(rec), len(pts), err)
		}
	}
}

func (s suite) asOf(t *testing.T) {
	e := s.open(t)
	// Decisions arrive out of order.
	e.update("t", `{"id":"u1","aliases":["a1"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":300}}}`)
	e.update("t", `{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	e.update("t", `{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":200},"Analytics":{"consented":true,"timestamp_unixtime_ms":150}}}`)
	rec, pts, err := e.read.History(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		at   int64
		want []string
	}{
		{50, nil},
		{100, []string{"Advertising=true@100"}},
		{175, []string{"Advertising=true@100", "Analytics=true@150"}},
		{250, []string{"Advertising=false@200", "Analytics=true@150"}},
		{1000, []string{"Advertising=true@300", "Analytics=true@150"}},
	} {
		r := consentstore.AsOf(rec, pts, c.at)
		t.Run(fmt.Sprint(c.at), func(t *testing.T) { wantCats(t, r, c.want...) })
		if r.ID != "u1" || !slices.Equal(r.Aliases, []string{"a1"}) {
			t.Errorf("AsOf(%d) = %s, want id u1 alias a1", c.at, wire(r))
		}
	}
	// Through the Store, by time.
	r, err := e.write.AsOf(ctx, "u1", time.UnixMilli(250))
	if err != nil {
		t.Fatal(err)
	}
	wantCats(t, r, "Advertising=false@200", "Analytics=true@150")
	if _, err := e.write.AsOf(ctx, "nobody", time.Now()); !errors.Is(err, consent.ErrNotFound) {
		t.Errorf("AsOf(nobody): %v, want ErrNotFound", err)
	}
}

func (s suite) close(t *testing.T) {
	read, _ := s.b.Open(t)
	if err := read.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	u := &consentstore.Update{Record: consent.Record{ID: "u1", Categories: []consent.Category{{Name: "A", Timestamp: 1}}}, RecordedAt: 1}
	if _, _, err := read.Update(ctx, u); !errors.Is(err, consentstore.ErrClosed) {
		t.Errorf("Update after Close: %v, want ErrClosed", err)
	}
	if _, err := read.Get(ctx, "u1"); !errors.Is(err, consentstore.ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
}

func join(lines []string) string {
	out := ""
	for i, l := range lines {
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}

// refusesFuture: an update dated more than MaxFutureSkew past the store's
// clock is refused, naming the field, and stores nothing; one within the
// tolerance is taken.
func (s suite) refusesFuture(t *testing.T) {
	read, write := s.b.Open(t)
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	st := consentstore.New(write, consentstore.Options{Now: func() time.Time { return now }})
	limit := now.Add(consentstore.MaxFutureSkew).UnixMilli()
	for _, c := range []struct {
		name  string
		rec   consent.Record
		field string
	}{
		{"category", consent.Record{ID: "u1", Categories: []consent.Category{
			{Name: "Analytics", Consented: true, Timestamp: 1000},
			{Name: "Advertising", Consented: true, Timestamp: 4070908800000}}},
			"categoryPreferences.Advertising.timestamp_unixtime_ms: 4070908800000 (2099-01-01T00:00:00Z) is 72 years in the future (more than 5m0s past this server's clock)"},
		{"one millisecond past the tolerance", consent.Record{ID: "u1", Categories: []consent.Category{
			{Name: "Advertising", Consented: true, Timestamp: limit + 1}}},
			"categoryPreferences.Advertising.timestamp_unixtime_ms: " + fmt.Sprint(limit+1)},
		{"purpose", consent.Record{ID: "u1", Purposes: []consent.Purpose{
			{Regulation: "gdpr", Name: "marketing", Consented: true, Timestamp: now.Add(3 * time.Hour).UnixMilli()}}},
			"consent_state.gdpr.marketing.timestamp_unixtime_ms: " + fmt.Sprint(now.Add(3*time.Hour).UnixMilli()) + " (2026-12-05T15:00:00Z) is 3 hours in the future"},
		{"updated_at", consent.Record{ID: "u1", UpdatedAt: now.Add(48 * time.Hour).UnixMilli()},
			"updated_at_unixtime_ms: " + fmt.Sprint(now.Add(48*time.Hour).UnixMilli()) + " (2026-12-07T12:00:00Z) is 2 days in the future"},
	} {
		_, err := st.Update(ctx, consentstore.Update{Record: c.rec, Source: "admin"})
		var fe *consentstore.FutureTimeError
		if !errors.Is(err, consentstore.ErrFutureTime) || !errors.As(err, &fe) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: Update = %v; want ErrFutureTime naming %q", c.name, err, c.field)
		}
	}
	if r, err := read.Get(ctx, "u1"); !errors.Is(err, consent.ErrNotFound) {
		t.Errorf("after refused updates Get(u1) = %s, %v; want nothing stored", wire(r), err)
	}
	// At the tolerance's edge: taken.
	if _, err := st.Update(ctx, consentstore.Update{Record: consent.Record{ID: "u1", Categories: []consent.Category{
		{Name: "Advertising", Consented: true, Timestamp: limit}}}, Source: "admin"}); err != nil {
		t.Fatalf("Update at now+MaxFutureSkew: %v", err)
	}
	wantCats(t, getFrom(t, read, "u1"), fmt.Sprintf("Advertising=true@%d", limit))
}

// clampedInHistory: an update whose entries were clamped (ClampedFrom)
// shows the time claimed in those entries' history sources, and only
// in theirs.
func (s suite) clampedInHistory(t *testing.T) {
	e := s.open(t)
	u := consentstore.Update{Source: "segment:m1", Record: consent.Record{ID: "u1", Categories: []consent.Category{
		{Name: "Advertising", Consented: false, Timestamp: 5000},
		{Name: "Analytics", Consented: true, Timestamp: 4000}}},
		ClampedFrom: map[string]int64{(&consentstore.Point{Kind: consentstore.KindCategory, Name: "Advertising"}).EntryKey(): 4070908800000}}
	if _, err := e.write.Update(ctx, u); err != nil {
		t.Fatal(err)
	}
	_, pts, err := e.read.History(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range pts {
		got[fmt.Sprintf("%s@%d", p.Name, p.Timestamp)] = p.Source
	}
	want := map[string]string{
		"Advertising@5000": "segment:m1 (clamped from 2099-01-01T00:00:00.000Z)",
		"Analytics@4000":   "segment:m1",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("history sources = %v, want %v", got, want)
	}
}

// numericIDs: an update whose id and aliases were JSON numbers, read with
// UnmarshalRecord, is stored and found under their canonical ids.
func (s suite) numericIDs(t *testing.T) {
	e := s.open(t)
	var r consent.Record
	if err := consentstore.UnmarshalRecord([]byte(`{"id":1.23e2,"aliases":[4.5e1,"a1"],"categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":1000}}}`), &r); err != nil {
		t.Fatal(err)
	}
	if _, err := e.write.Update(ctx, consentstore.Update{Record: r, Source: "import"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"123", "45", "a1"} {
		if got := e.get(id); got.ID != "123" {
			t.Errorf("Get(%q) = %s, want the record of 123", id, wire(got))
		}
	}
	e.missing("1.23e2")
	e.missing("123.0")
}

func getFrom(t *testing.T, b consentstore.Backend, id string) *consent.Record {
	t.Helper()
	r, err := b.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return r
}

// importReplace: an import with ImportReplace leaves each person it names
// with exactly what the file says (older decisions than the stored ones
// included) and a history that starts with the import, whatever was
// stored under any of the person's ids; later lines about the same person
// merge; a bad line erases nothing; ids the file does not name keep their
// records. Importing the same file again gives the same result.
func (s suite) importReplace(t *testing.T) {
	e := s.open(t)
	e.update("test", `{"id":"u1","aliases":["a1"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	e.update("test", `{"id":"u1","categoryPreferences":{"Analytics":{"consented":true,"timestamp_unixtime_ms":300}}}`)
	e.update("test", `{"id":"a2","categoryPreferences":{"Functional":{"consented":false,"timestamp_unixtime_ms":100}}}`)
	e.update("test", `{"id":"u9","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	file := strings.Join([]string{
		`{"id":"u1","aliases":["a2"],"categoryPreferences":{"Analytics":{"consented":false,"timestamp_unixtime_ms":200}}}`,
		`{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":150}}}`,
		`{"id":"u9","categoryPreferences":{"Advertising":"yes"}}`,
	}, "\n")
	for run := 1; run <= 2; run++ {
		var bad []int
		st, err := consentstore.ImportReplace(ctx, e.write, strings.NewReader(file), "f", func(line int, err error) { bad = append(bad, line) })
		if err != nil {
			t.Fatalf("run %d: ImportReplace: %v", run, err)
		}
		if st.Lines != 3 || st.Applied != 2 || st.Failed != 1 || !slices.Equal(bad, []int{3}) {
			t.Errorf("run %d: stats %+v, bad lines %v; want 3 lines, 2 applied, line 3 failed", run, st, bad)
		}
		r := e.get("a2")
		if r.ID != "u1" || !slices.Equal(r.Aliases, []string{"a2"}) {
			t.Errorf("run %d: record = %s, want u1 with the one alias a2", run, wire(r))
		}
		wantCats(t, r, "Advertising=false@150", "Analytics=false@200")
		e.missing("a1")
		_, pts, err := e.read.History(ctx, "u1")
		if err != nil {
			t.Fatalf("run %d: History: %v", run, err)
		}
		var srcs []string
		for _, h := range consentstore.History(pts) {
			srcs = append(srcs, h.Source)
		}
		if want := []string{"import:f:2", "import:f:1"}; !slices.Equal(srcs, want) {
			t.Errorf("run %d: history sources %v, want %v (the import's lines only, oldest decision first)", run, srcs, want)
		}
		wantCats(t, e.get("u9"), "Advertising=true@100")
	}
}
