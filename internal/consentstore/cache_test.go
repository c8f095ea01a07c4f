package consentstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insertfn/insertfn/sdk/consent"
)

// countingBackend is a Memory that counts the lookups reaching it and can
// run hooks inside Get (after reading) and Update (before writing), to
// widen or pin the windows a cache must handle. Hooks are set before the
// backend is used.
type countingBackend struct {
	*Memory
	gets        atomic.Int64
	afterGet    func(id string)
	beforeWrite func(u *Update)
}

func (b *countingBackend) Get(ctx2 context.Context, id string) (*consent.Record, error) {
	b.gets.Add(1)
	r, err := b.Memory.Get(ctx2, id)
	if b.afterGet != nil {
		b.afterGet(id)
	}
	return r, err
}

func (b *countingBackend) Update(ctx2 context.Context, u *Update) (*consent.Record, []consent.Change, error) {
	if b.beforeWrite != nil {
		b.beforeWrite(u)
	}
	return b.Memory.Update(ctx2, u)
}

// cachedStore returns a Store with a cache over a counting Memory.
func cachedStore(cfg CacheConfig) (*Store, *countingBackend) {
	b := &countingBackend{Memory: NewMemory()}
	return New(b, Options{Cache: cfg}), b
}

// cacheUpdate applies a wire-format update through s.
func cacheUpdate(t testing.TB, s *Store, js string) {
	t.Helper()
	if _, err := s.Update(ctx, Update{Record: *rec(t, js), Source: "test"}); err != nil {
		t.Fatalf("Update(%s): %v", js, err)
	}
}

// writeBehind changes the backend without the Store knowing, as another
// host (or the company's own service) would.
func writeBehind(t testing.TB, b *countingBackend, js string) {
	t.Helper()
	u := Update{Record: *rec(t, js), Source: "elsewhere", RecordedAt: 1}
	if _, _, err := b.Memory.Update(ctx, &u); err != nil {
		t.Fatal(err)
	}
}

// advertising returns the Advertising entry of what s.Get(id) returns, and
// ok=false when id has no record.
func advertising(t testing.TB, s *Store, id string) (consent.Category, bool) {
	t.Helper()
	r, err := s.Get(ctx, id)
	if errors.Is(err, consent.ErrNotFound) {
		return consent.Category{}, false
	}
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	c, _ := r.Category("Advertising")
	return c, true
}

func TestCacheHitDoesNotReachBackend(t *testing.T) {
	s, b := cachedStore(CacheConfig{Size: 10})
	cacheUpdate(t, s, `{"id":"u1","aliases":["a1"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	r1, err := s.Get(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Get(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if r1 != r2 {
		t.Errorf("a hit returned another record than the one cached")
	}
	if n := b.gets.Load(); n != 1 {
		t.Errorf("two lookups of u1 reached the backend %d times, want 1", n)
	}
	// An alias is cached under its own name.
	for range 3 {
		if c, ok := advertising(t, s, "a1"); !ok || !c.Consented {
			t.Fatalf("Get(a1) = %+v, %t", c, ok)
		}
	}
	if n := b.gets.Load(); n != 2 {
		t.Errorf("after three lookups of a1 the backend saw %d lookups, want 2", n)
	}
	// The empty id never reaches the backend.
	if _, err := s.Get(ctx, ""); !errors.Is(err, consent.ErrNotFound) {
		t.Errorf("Get(\"\") = %v", err)
	}
	if n := b.gets.Load(); n != 2 {
		t.Errorf("Get(\"\") reached the backend")
	}
}

func TestCacheWithoutConfigIsOff(t *testing.T) {
	b := &countingBackend{Memory: NewMemory()}
	s := New(b, Options{})
	for range 3 {
		s.Get(ctx, "u1")
	}
	if n := b.gets.Load(); n != 3 {
		t.Errorf("without a cache, 3 lookups reached the backend %d times", n)
	}
}

func TestCacheNegative(t *testing.T) {
	s, b := cachedStore(CacheConfig{Size: 10})
	for range 3 {
		if _, ok := advertising(t, s, "nobody"); ok {
			t.Fatal("Get(nobody) found a record")
		}
	}
	if n := b.gets.Load(); n != 1 {
		t.Errorf("three lookups of an unknown id reached the backend %d times, want 1", n)
	}
	// A write through the store ends the negative entry at once.
	cacheUpdate(t, s, `{"id":"nobody","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	if c, ok := advertising(t, s, "nobody"); !ok || !c.Consented {
		t.Errorf("after an update, Get = %+v, %t; want the record", c, ok)
	}
	// Backend errors other than not-found are not cached.
	b.Memory.Close()
	for range 2 {
		if _, err := s.Get(ctx, "other"); !errors.Is(err, ErrClosed) {
			t.Fatalf("Get on a closed backend: %v", err)
		}
	}
	if n := b.gets.Load(); n != 4 {
		t.Errorf("failed lookups were served from the cache (%d backend lookups, want 4)", n)
	}
}

// staleUntil checks that a Store whose cache entry for id was filled at
// filled keeps serving the old value (want old) while ttl has not passed,
// and serves the new one afterwards.
func staleUntil(t *testing.T, filled time.Time, ttl time.Duration, isNew func() bool) {
	t.Helper()
	if isNew() && time.Since(filled) < ttl {
		t.Fatalf("a write made behind the cache showed after %v, before the TTL %v", time.Since(filled), ttl)
	}
	deadline := time.Now().Add(ttl + 5*time.Second)
	for !isNew() {
		if time.Now().After(deadline) {
			t.Fatalf("the cached value was still served %v after it was cached (TTL %v)", time.Since(filled), ttl)
		}
		time.Sleep(ttl / 10)
	}
	if since := time.Since(filled); since < ttl {
		t.Errorf("the cached value expired after %v, before the TTL %v", since, ttl)
	}
}

func TestCacheTTL(t *testing.T) {
	const ttl = 200 * time.Millisecond
	s, b := cachedStore(CacheConfig{Size: 10, TTL: ttl, NegativeTTL: ttl})
	cacheUpdate(t, s, `{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)

	filled := time.Now()
	advertising(t, s, "u1")
	writeBehind(t, b, `{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":200}}}`)
	staleUntil(t, filled, ttl, func() bool {
		c, _ := advertising(t, s, "u1")
		return c.Timestamp == 200
	})

	filled = time.Now()
	advertising(t, s, "ghost")
	writeBehind(t, b, `{"id":"ghost","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	staleUntil(t, filled, ttl, func() bool {
		_, ok := advertising(t, s, "ghost")
		return ok
	})
}

func TestCacheNegativeTTLApart(t *testing.T) {
	// A long TTL for records, a short one for misses.
	s, b := cachedStore(CacheConfig{Size: 10, TTL: time.Hour, NegativeTTL: 100 * time.Millisecond})
	cacheUpdate(t, s, `{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	advertising(t, s, "u1")
	filled := time.Now()
	advertising(t, s, "ghost")
	writeBehind(t, b, `{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":200}}}`)
	writeBehind(t, b, `{"id":"ghost","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	staleUntil(t, filled, 100*time.Millisecond, func() bool {
		_, ok := advertising(t, s, "ghost")
		return ok
	})
	if c, _ := advertising(t, s, "u1"); c.Timestamp != 100 {
		t.Errorf("the record expired with the negative TTL: %+v", c)
	}
}

func TestCacheBounded(t *testing.T) {
	s, b := cachedStore(CacheConfig{Size: 2})
	for _, id := range []string{"u1", "u2", "u3"} {
		cacheUpdate(t, s, fmt.Sprintf(`{"id":%q,"categoryPreferences":{"A":true}}`, id))
		advertising(t, s, id)
	}
	before := b.gets.Load()
	advertising(t, s, "u3") // kept
	if b.gets.Load() != before {
		t.Errorf("the newest entry was evicted")
	}
	advertising(t, s, "u1") // evicted: the cache holds 2
	if b.gets.Load() != before+1 {
		t.Errorf("a cache of size 2 kept 3 records")
	}
}

func TestCacheInvalidatedByUpdate(t *testing.T) {
	s, _ := cachedStore(CacheConfig{Size: 10, TTL: time.Hour})
	cacheUpdate(t, s, `{"id":"u1","aliases":["a1","a2"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	for _, id := range []string{"u1", "a1", "a2"} {
		advertising(t, s, id)
	}
	// An update by one alias refreshes every id of the record.
	cacheUpdate(t, s, `{"id":"a2","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":200}}}`)
	for _, id := range []string{"u1", "a1", "a2"} {
		if c, ok := advertising(t, s, id); !ok || c.Timestamp != 200 {
			t.Errorf("after an update by a2, Get(%q) = %+v, %t; want Advertising@200", id, c, ok)
		}
	}
}

func TestCacheInvalidatedByDelete(t *testing.T) {
	s, _ := cachedStore(CacheConfig{Size: 10, TTL: time.Hour})
	cacheUpdate(t, s, `{"id":"u1","aliases":["a1","a2"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	for _, id := range []string{"u1", "a1", "a2"} {
		advertising(t, s, id)
	}
	if ok, err := s.Delete(ctx, "a1"); !ok || err != nil {
		t.Fatalf("Delete(a1) = %t, %v", ok, err)
	}
	for _, id := range []string{"u1", "a1", "a2"} {
		if c, ok := advertising(t, s, id); ok {
			t.Errorf("after Delete, Get(%q) still finds %+v", id, c)
		}
	}
}

func TestCacheInvalidatedByLink(t *testing.T) {
	s, _ := cachedStore(CacheConfig{Size: 10, TTL: time.Hour, NegativeTTL: time.Hour})
	cacheUpdate(t, s, `{"id":"u1","aliases":["a1"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	cacheUpdate(t, s, `{"id":"u2","aliases":["a2"],"categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":200}}}`)
	for _, id := range []string{"u1", "a1", "u2", "a2"} {
		advertising(t, s, id)
	}
	if _, ok := advertising(t, s, "n1"); ok {
		t.Fatal("n1 found before it was linked")
	}
	// Linking u2 to u1 merges u2's record, with its alias a2, into u1's:
	// every id of both, and the new alias n1, now find the merged record.
	if err := s.Link(ctx, "u1", "u2", "n1"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"u1", "a1", "u2", "a2", "n1"} {
		r, err := s.Get(ctx, id)
		if err != nil {
			t.Errorf("after Link, Get(%q): %v", id, err)
			continue
		}
		c, _ := r.Category("Advertising")
		if r.ID != "u1" || c.Timestamp != 200 {
			t.Errorf("after Link, Get(%q) = %s, want the merged record u1 with Advertising@200", id, wire(t, r))
		}
	}
}

// A lookup that read the backend before a write and returns after it must
// not leave its (now stale) value in the cache.
func TestCacheLookupOverlappingWrite(t *testing.T) {
	t.Run("ReadBeforeWrite", func(t *testing.T) {
		s, b := cachedStore(CacheConfig{Size: 10, TTL: time.Hour})
		cacheUpdate(t, s, `{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
		read, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		b.afterGet = func(string) {
			once.Do(func() { close(read); <-release })
		}
		done := make(chan consent.Category)
		go func() {
			c, _ := advertising(t, s, "u1")
			done <- c
		}()
		<-read // the lookup has read the old value
		cacheUpdate(t, s, `{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":200}}}`)
		close(release)
		if c := <-done; c.Timestamp != 100 {
			t.Fatalf("the slow lookup read %+v, want the old value (test setup)", c)
		}
		if c, _ := advertising(t, s, "u1"); c.Timestamp != 200 {
			t.Errorf("after the write returned, Get = %+v: the stale value of a slow lookup was cached", c)
		}
	})
	t.Run("ReadDuringWrite", func(t *testing.T) {
		s, b := cachedStore(CacheConfig{Size: 10, TTL: time.Hour})
		cacheUpdate(t, s, `{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
		inWrite, release := make(chan struct{}), make(chan struct{})
		b.beforeWrite = func(*Update) { close(inWrite); <-release }
		done := make(chan struct{})
		go func() {
			defer close(done)
			cacheUpdate(t, s, `{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":200}}}`)
		}()
		<-inWrite
		// The write has begun but not changed the backend: a lookup now
		// reads (and may cache) the old value...
		if c, _ := advertising(t, s, "u1"); c.Timestamp != 100 {
			t.Fatalf("during the write, Get = %+v (test setup)", c)
		}
		close(release)
		<-done
		// ...which the end of the write must remove.
		if c, _ := advertising(t, s, "u1"); c.Timestamp != 200 {
			t.Errorf("after the write returned, Get = %+v, want Advertising@200", c)
		}
	})
}

// TestCacheRace: lookups race writes (and links that give a record new
// ids); a lookup that starts after a write returned never sees a value
// older than that write, by the record's id, an old alias, or a new one.
func TestCacheRace(t *testing.T) {
	s, b := cachedStore(CacheConfig{Size: 1000, TTL: time.Hour, NegativeTTL: time.Hour})
	// Widen the window between a lookup's read and its put.
	b.afterGet = func(string) {
		if rand.IntN(4) == 0 {
			runtime.Gosched()
		}
	}
	cacheUpdate(t, s, `{"id":"u1","aliases":["a1"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":1}}}`)
	const writes = 300
	var done atomic.Int64 // the newest write that returned
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				v := done.Load()
				id := "u1"
				switch n % 4 {
				case 1:
					id = "a1"
				case 2:
					if v > 0 {
						id = fmt.Sprint("x", 1+rand.Int64N(v)) // linked by a write that returned
					}
				case 3:
					// Not linked yet (may become linked while we look):
					// warms the negative cache for the writer to invalidate.
					if _, ok := advertising(t, s, fmt.Sprint("x", v+1+int64(r%2))); !ok {
						continue
					}
				}
				c, ok := advertising(t, s, id)
				if !ok {
					t.Errorf("Get(%q) found nothing after write %d returned", id, v)
					return
				}
				if c.Timestamp < v {
					t.Errorf("Get(%q) = Advertising@%d after write %d returned: stale", id, c.Timestamp, v)
					return
				}
			}
		})
	}
	for i := int64(1); i <= writes; i++ {
		js := fmt.Sprintf(`{"id":"u1","aliases":["x%d"],"categoryPreferences":{"Advertising":{"consented":%t,"timestamp_unixtime_ms":%d}}}`, i, i%2 == 0, i)
		cacheUpdate(t, s, js)
		done.Store(i)
		if i%8 == 0 {
			runtime.Gosched()
		}
	}
	close(stop)
	wg.Wait()
	if c, _ := advertising(t, s, "x1"); c.Timestamp != writes {
		t.Errorf("final Get(x1) = %+v, want Advertising@%d", c, writes)
	}
}

// peerBus is Peers for two hosts in one process: a write on one has the
// other Forget, or fails as a bus that is down does.
type peerBus struct {
	other *Store
	down  error
	told  [][]string
}

func (p *peerBus) Forget(_ context.Context, ids []string) error {
	if p.down != nil {
		return p.down
	}
	p.told = append(p.told, ids)
	p.other.Forget(ids...)
	return nil
}

// TestCachePeersForgetWrites: two hosts cache one backend; a write through
// one is dropped from the other's cache before the write returns, and a
// write whose peers could not be told fails (the client retries).
func TestCachePeersForgetWrites(t *testing.T) {
	b := &countingBackend{Memory: NewMemory()}
	cfg := CacheConfig{Size: 10, TTL: time.Hour}
	busA, busB := &peerBus{}, &peerBus{}
	a := New(b, Options{Cache: cfg, Peers: busA})
	hostB := New(b, Options{Cache: cfg, Peers: busB})
	busA.other, busB.other = hostB, a
	cacheUpdate(t, a, `{"id":"u1","aliases":["a1"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100}}}`)
	if c, ok := advertising(t, hostB, "a1"); !ok || !c.Consented {
		t.Fatalf("B reads %+v %t", c, ok)
	}
	cacheUpdate(t, a, `{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":200}}}`)
	if c, ok := advertising(t, hostB, "a1"); !ok || c.Consented || c.Timestamp != 200 {
		t.Errorf("after A's update, B reads %+v %t from its cache; want Advertising false@200", c, ok)
	}
	if _, err := hostB.Delete(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := advertising(t, a, "u1"); ok {
		t.Error("after B's delete, A still finds u1 in its cache")
	}
	if len(busA.told) != 2 || len(busB.told) != 1 {
		t.Errorf("told %v and %v", busA.told, busB.told)
	}

	busA.down = errors.New("nats: connection closed")
	_, err := a.Update(ctx, Update{Record: *rec(t, `{"id":"u2","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":300}}}`), Source: "test"})
	if err == nil || !errors.Is(err, busA.down) {
		t.Errorf("an update whose peers could not be told: %v, want an error wrapping the bus's", err)
	}
}
