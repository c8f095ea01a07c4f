package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/consentstore/storetest"
	"github.com/insertfn/insertfn/sdk/consent"
)

var ctx = context.Background()

// open opens a store in a fresh directory, closed at the end of the test.
func open(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSuite(t *testing.T) {
	storetest.Run(t, storetest.Backends{
		Open: func(t *testing.T) (read, write consentstore.Backend) {
			s := open(t, Options{NoSync: true})
			return s, s
		},
	})
}

// TestSuiteSynced runs the suite with the defaults: synced writes, and
// without the cache, so that every lookup reads the file.
func TestSuiteSynced(t *testing.T) {
	if testing.Short() {
		t.Skip("fsync per write")
	}
	storetest.Run(t, storetest.Backends{
		Open: func(t *testing.T) (read, write consentstore.Backend) {
			s := open(t, Options{CacheSize: -1})
			return s, s
		},
	})
}

// update applies a wire-format update through a consentstore.Store, which
// validates and stamps it as the host does.
func update(t testing.TB, b consentstore.Backend, source, js string) []consent.Change {
	t.Helper()
	var r consent.Record
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("bad test update %s: %v", js, err)
	}
	ch, err := consentstore.New(b, consentstore.Options{}).Update(ctx, consentstore.Update{Record: r, Source: source})
	if err != nil {
		t.Fatalf("Update(%s): %v", js, err)
	}
	return ch
}

func wire(r *consent.Record) string {
	b, _ := json.Marshal(r)
	return string(b)
}

func TestPersistsAcrossReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, "admin", `{"id":"u1","aliases":["a1"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}},
		"consent_state":{"gdpr":{"p":{"consented":true,"timestamp_unixtime_ms":50,"document":"v1"}}}}`)
	want, _ := s.Get(ctx, "u1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v, %v; want mode 0700", fi.Mode(), err)
	}

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(ctx, "a1")
	if err != nil || wire(got) != wire(want) {
		t.Errorf("after reopen Get(a1) = %s, %v; want %s", wire(got), err, wire(want))
	}
	_, pts, err := s.History(ctx, "u1")
	if err != nil || len(pts) != 2 || pts[0].Source != "admin" || pts[0].RecordedAt == 0 {
		t.Errorf("after reopen History = %+v, %v; want the 2 points from admin", pts, err)
	}
}

func TestDataDirectoryIsCreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path() != filepath.Join(dir, FileName) {
		t.Errorf("Path = %s", s.Path())
	}
	if _, err := os.Stat(s.Path()); err != nil {
		t.Error(err)
	}
	if _, err := Open("", Options{}); err == nil {
		t.Error("Open with no directory succeeded")
	}
}

// TestLocked: a second open of the same directory fails clearly after the
// lock timeout instead of hanging. flock locks are per open file, so this
// works within one process too.
func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	_, err = Open(dir, Options{LockTimeout: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "is locked by another process") || !strings.Contains(err.Error(), dir) {
		t.Errorf("second Open: %v; want locked by another process, naming the file", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second Open took %v with a 100ms lock timeout", d)
	}
	s.Close()
	s2, err := Open(dir, Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	s2.Close()
}

func TestNotADatabase(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(strings.Repeat("not a bolt file", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), FileName) {
		t.Errorf("Open of a file that is no database: %v; want an error naming it", err)
	}
}

func TestNewerLayoutRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, []byte("2")) })
	s.Close()
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "layout version") {
		t.Errorf("Open of a newer layout: %v; want a layout version error", err)
	}
}

// TestCorruptRecord: damaged bytes in the file give an error on lookup,
// not a panic and not a wrong answer.
func TestCorruptRecord(t *testing.T) {
	s := open(t, Options{NoSync: true})
	update(t, s, "t", `{"id":"u1","aliases":["a1"],"categoryPreferences":{"A":{"consented":true,"timestamp_unixtime_ms":1}}}`)
	s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPeople).Put(personKey([]byte("u1")), []byte{recordV1, 0xff})
	})
	s.cache.invalidate([]string{"u1", "a1"})
	if _, err := s.Get(ctx, "a1"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"u1"`) {
		t.Errorf("Get of a corrupt record: %v; want ErrCorrupt naming u1", err)
	}
	u := &consentstore.Update{Record: consent.Record{ID: "a1", Categories: []consent.Category{{Name: "A", Timestamp: 2}}}, RecordedAt: 2}
	if _, _, err := s.Update(ctx, u); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Update of a corrupt record: %v; want ErrCorrupt", err)
	}
	if err := s.Scan(ctx, func(*consent.Record) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Scan over a corrupt record: %v; want ErrCorrupt", err)
	}
}

func TestClosed(t *testing.T) {
	s := open(t, Options{NoSync: true})
	update(t, s, "t", `{"id":"u1","categoryPreferences":{"A":true}}`)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	u := &consentstore.Update{Record: consent.Record{ID: "u1"}, RecordedAt: 1}
	checks := map[string]error{}
	_, checks["Get"] = s.Get(ctx, "u1")
	_, _, checks["Update"] = s.Update(ctx, u)
	_, checks["UpdateMany"] = s.UpdateMany(ctx, []*consentstore.Update{u})
	_, checks["Delete"] = s.Delete(ctx, "u1")
	_, _, checks["History"] = s.History(ctx, "u1")
	checks["Scan"] = s.Scan(ctx, func(*consent.Record) error { return nil })
	for name, err := range checks {
		if !errors.Is(err, consentstore.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

// TestCloseWhileBusy: Close during lookups and updates makes them fail
// with ErrClosed (or succeed, if they ran first), never hang or panic.
func TestCloseWhileBusy(t *testing.T) {
	s := open(t, Options{NoSync: true})
	update(t, s, "t", `{"id":"u1","categoryPreferences":{"A":true}}`)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := 0; ; j++ {
				var err error
				if i%2 == 0 {
					_, err = s.Get(ctx, "u1")
				} else {
					u := &consentstore.Update{Record: consent.Record{ID: "u1", Categories: []consent.Category{{Name: "A", Timestamp: int64(j + 1)}}}, RecordedAt: 1}
					_, _, err = s.Update(ctx, u)
				}
				if err != nil {
					if !errors.Is(err, consentstore.ErrClosed) {
						t.Errorf("during Close: %v, want ErrClosed", err)
					}
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	wg.Wait()
}

func TestContextCanceled(t *testing.T) {
	s := open(t, Options{NoSync: true})
	update(t, s, "t", `{"id":"u1","categoryPreferences":{"A":true}}`)
	c, cancel := context.WithCancel(ctx)
	cancel()
	u := &consentstore.Update{Record: consent.Record{ID: "u2", Categories: []consent.Category{{Name: "A", Timestamp: 1}}}, RecordedAt: 1}
	checks := map[string]error{}
	_, checks["Get"] = s.Get(c, "u1")
	_, _, checks["Update"] = s.Update(c, u)
	_, checks["UpdateMany"] = s.UpdateMany(c, []*consentstore.Update{u})
	_, checks["Delete"] = s.Delete(c, "u1")
	_, _, checks["History"] = s.History(c, "u1")
	checks["Scan"] = s.Scan(c, func(*consent.Record) error { return nil })
	for name, err := range checks {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled", name, err)
		}
	}
	if _, err := s.Get(ctx, "u1"); err != nil {
		t.Errorf("a canceled Delete deleted: %v", err)
	}
	if _, err := s.Get(ctx, "u2"); !errors.Is(err, consent.ErrNotFound) {
		t.Errorf("a canceled Update wrote: %v", err)
	}
}

func TestUpdateRefusesBadIDs(t *testing.T) {
	s := open(t, Options{NoSync: true})
	if _, _, err := s.Update(ctx, &consentstore.Update{RecordedAt: 1}); !errors.Is(err, consentstore.ErrNoID) {
		t.Errorf("Update without id: %v, want ErrNoID", err)
	}
	long := strings.Repeat("x", bolt.MaxKeySize+1)
	u := &consentstore.Update{Record: consent.Record{ID: "u1", Aliases: []string{long}}, RecordedAt: 1}
	if _, _, err := s.Update(ctx, u); err == nil || !strings.Contains(err.Error(), "the most is") {
		t.Errorf("Update with a %d-byte alias: %v, want an error", len(long), err)
	}
	if _, err := s.Get(ctx, "u1"); !errors.Is(err, consent.ErrNotFound) {
		t.Errorf("a refused update wrote: %v", err)
	}
}

// TestBatchFailureIsolated: an update that fails inside a shared
// transaction (here: on a corrupt record) fails alone; the others of its
// batch commit, once each.
func TestBatchFailureIsolated(t *testing.T) {
	s := open(t, Options{NoSync: true})
	update(t, s, "t", `{"id":"bad","categoryPreferences":{"A":true}}`)
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPeople).Put(personKey([]byte("bad")), []byte{9}) })
	// One batch, as the committer would take it from its queue.
	batch := make([]*writeReq, 16)
	runs := make([]int, len(batch))
	for i := range batch {
		id := fmt.Sprintf("u%d", i)
		if i == 7 {
			id = "bad"
		}
		u := &consentstore.Update{Record: consent.Record{ID: id, Categories: []consent.Category{{Name: "A", Consented: true, Timestamp: 5}}}, Source: "t", RecordedAt: 1}
		batch[i] = &writeReq{done: make(chan struct{}), fn: func(tx *bolt.Tx) error {
			runs[i]++
			_, _, _, err := apply(tx, u, nil)
			return err
		}}
	}
	s.commit(batch)
	for i, r := range batch {
		select {
		case <-r.done:
		default:
			t.Fatalf("request %d not done after commit", i)
		}
		if i == 7 {
			if !errors.Is(r.err, ErrCorrupt) {
				t.Errorf("update of the corrupt record: %v, want ErrCorrupt", r.err)
			}
			continue
		}
		if r.err != nil {
			t.Errorf("update %d: %v", i, r.err)
		}
		if i < 7 && runs[i] != 2 || i > 7 && runs[i] != 1 {
			t.Errorf("update %d ran %d times, want %d", i, runs[i], map[bool]int{true: 2, false: 1}[i < 7])
		}
		if r, err := s.Get(ctx, fmt.Sprintf("u%d", i)); err != nil || len(r.Categories) != 1 {
			t.Errorf("u%d after the batch: %s, %v", i, wire(r), err)
		}
		_, pts, _ := s.History(ctx, fmt.Sprintf("u%d", i))
		if len(pts) != 1 {
			t.Errorf("u%d: %d history points, want 1 (a re-run batch must not add twice)", i, len(pts))
		}
	}
}

// TestGroupCommit: updates that arrive while a transaction commits share
// the next one.
func TestGroupCommit(t *testing.T) {
	s := open(t, Options{NoSync: true})
	var wg sync.WaitGroup
	// Hold the write lock so that the updates queue up behind it.
	hold := make(chan struct{})
	held := make(chan struct{})
	go s.db.Update(func(*bolt.Tx) error { close(held); <-hold; return nil })
	<-held
	var txs0 int
	s.db.View(func(tx *bolt.Tx) error { txs0 = int(tx.ID()); return nil })
	for i := range 50 {
		wg.Go(func() {
			u := &consentstore.Update{Record: consent.Record{ID: fmt.Sprintf("u%d", i), Categories: []consent.Category{{Name: "A", Timestamp: 1}}}, RecordedAt: 1}
			if _, _, err := s.Update(ctx, u); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // all queued: one in the blocked transaction, 49 waiting
	close(hold)
	wg.Wait()
	var txs int
	s.db.View(func(tx *bolt.Tx) error { txs = int(tx.ID()); return nil })
	if n := txs - txs0; n > 3 {
		t.Errorf("50 concurrent updates took %d transactions, want them to share (at most 3)", n)
	}
}

func TestUpdateMany(t *testing.T) {
	s := open(t, Options{NoSync: true})
	var us []*consentstore.Update
	for i := range 1000 {
		us = append(us, &consentstore.Update{Source: fmt.Sprintf("import:f:%d", i+1), RecordedAt: 1, Record: consent.Record{
			ID: fmt.Sprintf("u%d", i%100), Aliases: []string{fmt.Sprintf("anon%d", i%100)},
			Categories: []consent.Category{{Name: "A", Consented: (i/100)%2 == 0, Timestamp: int64(i + 1)}}}})
	}
	all, err := s.UpdateMany(ctx, us)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1000 || len(all[0]) != 1 || len(all[100]) != 1 || all[100][0].Old == nil {
		t.Errorf("changes: %d lists; first %+v, 101st %+v", len(all), all[0], all[100])
	}
	n := 0
	s.Scan(ctx, func(r *consent.Record) error {
		n++
		return nil
	})
	if n != 100 {
		t.Errorf("%d records after import, want 100", n)
	}
	r, err := s.Get(ctx, "anon5")
	if err != nil || r.ID != "u5" || r.Categories[0].Timestamp != 906 || r.Categories[0].Consented {
		t.Errorf("anon5 = %s, %v; want u5 with the newest A (906, false)", wire(r), err)
	}
	_, pts, _ := s.History(ctx, "u5")
	if len(pts) != 10 {
		t.Errorf("u5: %d points, want 10", len(pts))
	}

	// All or nothing.
	bad := []*consentstore.Update{
		{Record: consent.Record{ID: "new1"}, RecordedAt: 1},
		{Record: consent.Record{ID: ""}, RecordedAt: 1},
	}
	if _, err := s.UpdateMany(ctx, bad); !errors.Is(err, consentstore.ErrNoID) || !strings.Contains(err.Error(), "update 2 of 2") {
		t.Errorf("UpdateMany with an update without id: %v; want ErrNoID naming update 2", err)
	}
	if _, err := s.Get(ctx, "new1"); !errors.Is(err, consent.ErrNotFound) {
		t.Errorf("a failed UpdateMany wrote its first update: %v", err)
	}
}

// TestCacheFollowsWrites: what a lookup cached is replaced by this store's
// writes, links and deletes, under every id.
func TestCacheFollowsWrites(t *testing.T) {
	s := open(t, Options{NoSync: true})
	update(t, s, "t", `{"id":"u1","categoryPreferences":{"A":{"consented":true,"timestamp_unixtime_ms":1}}}`)
	update(t, s, "t", `{"id":"anon1","categoryPreferences":{"B":{"consented":true,"timestamp_unixtime_ms":1}}}`)
	for _, id := range []string{"u1", "anon1", "u1", "anon1"} {
		s.Get(ctx, id) // fill the cache
	}
	update(t, s, "t", `{"id":"u1","aliases":["anon1"],"categoryPreferences":{"A":{"consented":false,"timestamp_unixtime_ms":2}}}`)
	for _, id := range []string{"u1", "anon1"} {
		r, err := s.Get(ctx, id)
		if err != nil || r.ID != "u1" || wire(r) != `{"id":"u1","aliases":["anon1"],"categoryPreferences":{"A":{"consented":false,"timestamp_unixtime_ms":2},"B":{"consented":true,"timestamp_unixtime_ms":1}},"updated_at_unixtime_ms":2}` {
			t.Errorf("Get(%q) after link = %s, %v", id, wire(r), err)
		}
	}
	if _, err := s.Delete(ctx, "anon1"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"u1", "anon1"} {
		if r, err := s.Get(ctx, id); !errors.Is(err, consent.ErrNotFound) {
			t.Errorf("Get(%q) after delete = %s, %v", id, wire(r), err)
		}
	}
}

// TestCacheBound: the cache holds at most its size.
func TestCacheBound(t *testing.T) {
	s := open(t, Options{NoSync: true, CacheSize: 64})
	var us []*consentstore.Update
	for i := range 1000 {
		us = append(us, &consentstore.Update{RecordedAt: 1, Record: consent.Record{ID: fmt.Sprint(i)}})
	}
	if _, err := s.UpdateMany(ctx, us); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if r, err := s.Get(ctx, fmt.Sprint(i)); err != nil || r.ID != fmt.Sprint(i) {
			t.Fatalf("Get(%d) = %v, %v", i, r, err)
		}
	}
	n := 0
	for i := range s.cache.shards {
		n += len(s.cache.shards[i].recs)
	}
	if n > 64 {
		t.Errorf("cache holds %d records, want at most 64", n)
	}
}

// TestGetDoesNotKeepID: the caller may reuse the bytes behind the id it
// passed (consent.Store).
func TestGetDoesNotKeepID(t *testing.T) {
	s := open(t, Options{NoSync: true})
	update(t, s, "t", `{"id":"u1","categoryPreferences":{"A":true}}`)
	update(t, s, "t", `{"id":"u2","categoryPreferences":{"B":true}}`)
	buf := []byte("u1")
	id := unsafeString(buf)
	if _, err := s.Get(ctx, id); err != nil {
		t.Fatal(err)
	}
	buf[1] = '2' // the cache must not now find u1's record under "u2"
	if r, err := s.Get(ctx, "u2"); err != nil || r.ID != "u2" {
		t.Errorf("Get(u2) after reusing the id's bytes = %s, %v", wire(r), err)
	}
	buf[1] = '1'
	if r, err := s.Get(ctx, "u1"); err != nil || r.ID != "u1" {
		t.Errorf("Get(u1) = %s, %v", wire(r), err)
	}
}

// TestScanMayWrite: fn runs outside the read transaction, so it may write
// to the store (a scan that rewrites records).
func TestScanMayWrite(t *testing.T) {
	s := open(t, Options{NoSync: true})
	var us []*consentstore.Update
	for i := range 600 {
		us = append(us, &consentstore.Update{RecordedAt: 1, Record: consent.Record{ID: fmt.Sprintf("u%03d", i),
			Categories: []consent.Category{{Name: "A", Timestamp: 1}}}})
	}
	if _, err := s.UpdateMany(ctx, us); err != nil {
		t.Fatal(err)
	}
	var seen []string
	err := s.Scan(ctx, func(r *consent.Record) error {
		seen = append(seen, r.ID)
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		u := &consentstore.Update{RecordedAt: 2, Source: "rewrite", Record: consent.Record{ID: r.ID,
			Categories: []consent.Category{{Name: "B", Consented: true, Timestamp: 2}}}}
		_, _, err := s.Update(c, u)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 600 || !slices.IsSorted(seen) || slices.Compact(slices.Clone(seen))[599] != "u599" {
		t.Errorf("Scan saw %d records (sorted: %t), want each of the 600 once", len(seen), slices.IsSorted(seen))
	}
	if r, _ := s.Get(ctx, "u599"); r == nil || len(r.Categories) != 2 {
		t.Errorf("u599 after the rewriting scan = %s", wire(r))
	}
}

// TestConcurrentOneRecord: many goroutines update one record in random
// order, with lookups running alongside; the record ends with the newest
// entry per category and the history holds every decision. Run with -race.
func TestConcurrentOneRecord(t *testing.T) {
	t.Run("group commit", func(t *testing.T) { concurrentOneRecord(t, Options{NoSync: true}) })
	t.Run("BatchDelay", func(t *testing.T) {
		concurrentOneRecord(t, Options{NoSync: true, BatchDelay: time.Millisecond, BatchSize: 10})
	})
}

func concurrentOneRecord(t *testing.T, opts Options) {
	s := open(t, opts)
	cats := []string{"Advertising", "Analytics", "Functional", "Marketing", "C0001", "C0002"}
	const perCat = 100
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
	done := make(chan struct{})
	var wg, readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if r, err := s.Get(ctx, "anon1"); err == nil {
					// A record handed out is complete and sorted.
					if !slices.IsSortedFunc(r.Categories, func(a, b consent.Category) int { return strings.Compare(a.Name, b.Name) }) {
						t.Errorf("unsorted record %s", wire(r))
					}
				} else if !errors.Is(err, consent.ErrNotFound) {
					t.Error(err)
				}
			}
		})
	}
	for w := range 32 {
		wg.Go(func() {
			for j := range ch {
				u := &consentstore.Update{Source: fmt.Sprintf("w%d", w), RecordedAt: 1, Record: consent.Record{ID: "u1",
					Aliases:    []string{"anon1"},
					Categories: []consent.Category{{Name: j.cat, Consented: j.ts%2 == 0, Timestamp: j.ts}}}}
				if _, _, err := s.Update(ctx, u); err != nil {
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
	close(done)
	readers.Wait()

	r, err := s.Get(ctx, "anon1")
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, c := range r.Categories {
		got = append(got, fmt.Sprintf("%s=%t@%d", c.Name, c.Consented, c.Timestamp))
	}
	sorted := slices.Clone(cats)
	slices.Sort(sorted)
	for _, c := range sorted {
		want = append(want, fmt.Sprintf("%s=true@%d", c, perCat))
	}
	if !slices.Equal(got, want) {
		t.Errorf("categories = %v, want %v", got, want)
	}
	_, pts, err := s.History(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, p := range pts {
		keys[p.Key()] = true
	}
	for _, j := range jobs {
		p := consentstore.Point{Kind: consentstore.KindCategory, Name: j.cat, Timestamp: j.ts}
		if !keys[p.Key()] {
			t.Errorf("history misses %s@%d", j.cat, j.ts)
		}
	}
	if len(pts) != len(jobs) {
		t.Errorf("history holds %d points, want %d", len(pts), len(jobs))
	}
}

// unsafeString is a string over b's bytes, as a host that reuses a buffer
// passes ids.
func unsafeString(b []byte) string { return unsafe.String(&b[0], len(b)) }

// TestKeysDoNotCollide: ids that are prefixes of each other, or that look
// like the keys of history points, keep their records and histories apart.
func TestKeysDoNotCollide(t *testing.T) {
	s := open(t, Options{NoSync: true})
	ids := []string{"a", "aa", "a\x00category\x00X\x005", "\x01a", "b"}
	for i, id := range ids {
		u := &consentstore.Update{Source: "t", RecordedAt: 1, Record: consent.Record{ID: id,
			Categories: []consent.Category{{Name: "X", Consented: true, Timestamp: int64(i + 1)}, {Name: "Y", Timestamp: 9}}}}
		if _, _, err := s.Update(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids[1:] {
		r, pts, err := s.History(ctx, id)
		if err != nil || r.ID != id || len(pts) != 2 || r.Categories[0].Timestamp != int64(i+2) {
			t.Errorf("History(%q) after deleting a = %s, %+v, %v", id, wire(r), pts, err)
		}
	}
	var seen []string
	s.Scan(ctx, func(r *consent.Record) error {
		seen = append(seen, r.ID)
		return nil
	})
	slices.Sort(seen)
	want := slices.Clone(ids[1:])
	slices.Sort(want)
	if !slices.Equal(seen, want) {
		t.Errorf("Scan = %q, want %q", seen, want)
	}
}
