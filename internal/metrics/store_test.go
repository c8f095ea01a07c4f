package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"unsafe"

	"github.com/insertfn/insertfn/internal/metrics"
	"github.com/insertfn/insertfn/sdk/consent"
)

// mapStore is a consent.Store over a map; the id "broken" fails.
type mapStore map[string]*consent.Record

var errBroken = errors.New("backend unreachable")

// notFound is preallocated so that the store allocates nothing itself.
var notFound = fmt.Errorf("lookup: %w", consent.ErrNotFound)

func (s mapStore) Get(_ context.Context, id string) (*consent.Record, error) {
	if id == "broken" {
		return nil, errBroken
	}
	if r := s[id]; r != nil {
		return r, nil
	}
	return nil, notFound
}

func TestInstrumentStoreCountsByResult(t *testing.T) {
	ctx := context.Background()
	m := newMetrics(t, metrics.Options{})
	rec := &consent.Record{ID: "u1"}
	s := m.InstrumentStore(mapStore{"u1": rec}, "memory")
	for _, w := range []struct {
		id  string
		rec *consent.Record
		err error
	}{
		{"u1", rec, nil}, {"u1", rec, nil}, {"u2", nil, consent.ErrNotFound}, {"broken", nil, errBroken},
		{"u3", nil, consent.ErrNotFound}, {"u1", rec, nil},
	} {
		got, err := s.Get(ctx, w.id)
		if got != w.rec || !errors.Is(err, w.err) || (w.err == nil) != (err == nil) {
			t.Errorf("Get(%q) = %v, %v; want %v, %v", w.id, got, err, w.rec, w.err)
		}
	}
	g := m.Registry()
	for _, w := range []struct {
		result string
		want   float64
	}{{"found", 3}, {"not_found", 2}, {"error", 1}} {
		if got := value(t, g, "insertfn_consent_lookups_total", "backend", "memory", "result", w.result); got != w.want {
			t.Errorf("lookups{%s} = %v, want %v", w.result, got, w.want)
		}
	}
	if got := value(t, g, "insertfn_consent_lookup_duration_seconds", "backend", "memory"); got != 6 {
		t.Errorf("latency observations = %v, want 6", got)
	}

	// A second backend has its own series.
	m.InstrumentStore(mapStore{}, "redis").Get(ctx, "u1")
	if got := value(t, g, "insertfn_consent_lookups_total", "backend", "redis", "result", "not_found"); got != 1 {
		t.Errorf("redis not_found = %v, want 1", got)
	}
	if got := value(t, g, "insertfn_consent_lookups_total", "backend", "memory", "result", "not_found"); got != 2 {
		t.Errorf("memory not_found = %v after a redis lookup, want 2", got)
	}
}

func TestInstrumentStoreNil(t *testing.T) {
	m := newMetrics(t, metrics.Options{})
	if s := m.InstrumentStore(nil, "memory"); s != nil {
		t.Errorf("InstrumentStore(nil) = %v, want nil", s)
	}
	var none *metrics.Metrics
	s := mapStore{}
	if got := none.InstrumentStore(s, "memory"); fmt.Sprintf("%p", got) != fmt.Sprintf("%p", s) {
		t.Error("a nil Metrics wrapped the store")
	}
}

// keepingStore remembers the last id it was given, as the contract
// forbids; it shows whether the wrapper passes the caller's id through
// unchanged.
type keepingStore struct{ last string }

func (k *keepingStore) Get(_ context.Context, id string) (*consent.Record, error) {
	k.last = id
	return nil, consent.ErrNotFound
}

// TestInstrumentStorePassesIDThrough: the wrapper hands the store the
// caller's id (no copy to keep, nothing kept itself), as consent.Store
// requires of a store the host passes a reused buffer to.
func TestInstrumentStorePassesIDThrough(t *testing.T) {
	k := &keepingStore{}
	s := newMetrics(t, metrics.Options{}).InstrumentStore(k, "memory")
	buf := []byte("user-1")
	id := unsafe.String(&buf[0], len(buf))
	s.Get(context.Background(), id)
	if unsafe.StringData(k.last) != &buf[0] {
		t.Error("the wrapper passed a copy of the id: it allocates on the hot path")
	}
}

// TestInstrumentStoreAllocatesNothing guards the lookup's hot path.
func TestInstrumentStoreAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	s := newMetrics(t, metrics.Options{}).InstrumentStore(mapStore{"u1": {ID: "u1"}}, "memory")
	for _, id := range []string{"u1", "u2", "broken"} {
		if n := testing.AllocsPerRun(1000, func() { s.Get(ctx, id) }); n != 0 {
			t.Errorf("Get(%q): %v allocations per call, want 0", id, n)
		}
	}
}

func BenchmarkInstrumentedGet(b *testing.B) {
	ctx := context.Background()
	raw := mapStore{"u1": {ID: "u1"}}
	wrapped := newMetrics(b, metrics.Options{}).InstrumentStore(raw, "memory")
	for _, bm := range []struct {
		name  string
		store consent.Store
	}{{"raw", raw}, {"instrumented", wrapped}} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bm.store.Get(ctx, "u1")
			}
		})
	}
	b.Run("instrumented-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				wrapped.Get(ctx, "u1")
			}
		})
	})
}
