package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insertfn/insertfn/bench/internal/workload"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/consentstore/boltstore"
	"github.com/insertfn/insertfn/internal/consentstore/httpstore"
	"github.com/insertfn/insertfn/internal/consentstore/redisstore"
	"github.com/insertfn/insertfn/internal/testkit/redistest"
	"github.com/insertfn/insertfn/sdk/consent"
)

// latencies samples the duration of single operations and reports their
// median and 99th percentile as benchmark metrics.
type latencies struct{ d []time.Duration }

func (l *latencies) add(d time.Duration) {
	if len(l.d) < 1<<20 {
		l.d = append(l.d, d)
	}
}

// report reports the median and the 99th percentile as the metrics
// prefix+"p50-ns" and prefix+"p99-ns".
func (l *latencies) report(b *testing.B, prefix string) {
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	b.ReportMetric(float64(l.d[len(l.d)/2].Nanoseconds()), prefix+"p50-ns")
	b.ReportMetric(float64(l.d[len(l.d)*99/100].Nanoseconds()), prefix+"p99-ns")
}

func fillStore(b *testing.B, s *consentstore.Store, n int) {
	b.Helper()
	for _, u := range workload.Records(n) {
		if _, err := s.Update(context.Background(), u); err != nil {
			b.Fatalf("fill: %v", err)
		}
	}
}

// benchLookups measures Get on a filled store, one lookup at a time, ids
// cycling through the stored users (every lookup finds a record).
func benchLookups(b *testing.B, s *consentstore.Store, n int) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%d", i)
	}
	ctx := context.Background()
	var lat latencies
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		start := time.Now()
		if _, err := s.Get(ctx, ids[i%n]); err != nil {
			b.Fatal(err)
		}
		lat.add(time.Since(start))
		i++
	}
	lat.report(b, "")
}

// benchUpdates measures updates per second with parallel writers, each
// update changing one category of one of n people with a newer timestamp.
func benchUpdates(b *testing.B, s *consentstore.Store, n int) {
	var seq atomic.Int64
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			u := consentstore.Update{Source: "bench", Record: consent.Record{ID: fmt.Sprintf("user-%d", i%int64(n)),
				Categories: []consent.Category{{Name: workload.Categories[i%int64(len(workload.Categories))], Consented: i%2 == 0, Timestamp: 1700000000000 + i}}}}
			if _, err := s.Update(ctx, u); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
}

const storeUsers = 10000

// BenchmarkConsentLookup: one lookup of a stored person's consent, as a
// function's LookupConsent makes it, per backend: embedded (bbolt, on
// disk, with its decoded-record cache kept exact by its own writes; and
// without it), cached (the in-process cache in front of a remote backend, every
// lookup a hit), redis (a real redis-server on loopback, no cache) and
// http (a consent service on loopback, no cache).
func BenchmarkConsentLookup(b *testing.B) {
	b.Run("embedded", func(b *testing.B) {
		bs, err := boltstore.Open(b.TempDir(), boltstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		s := consentstore.New(bs, consentstore.Options{})
		defer s.Close()
		fillStore(b, s, storeUsers)
		benchLookups(b, s, storeUsers)
	})
	b.Run("embedded-nocache", func(b *testing.B) {
		// Every lookup is a read transaction and a decode.
		bs, err := boltstore.Open(b.TempDir(), boltstore.Options{CacheSize: -1})
		if err != nil {
			b.Fatal(err)
		}
		s := consentstore.New(bs, consentstore.Options{})
		defer s.Close()
		fillStore(b, s, storeUsers)
		benchLookups(b, s, storeUsers)
	})
	b.Run("cached", func(b *testing.B) {
		s := consentstore.New(redisBackend(b), consentstore.Options{Cache: consentstore.CacheConfig{Size: 2 * storeUsers, TTL: time.Hour}})
		defer s.Close()
		fillStore(b, s, storeUsers)
		for i := range storeUsers { // warm: every benchmark lookup is a hit
			s.Get(context.Background(), fmt.Sprintf("user-%d", i))
		}
		benchLookups(b, s, storeUsers)
	})
	b.Run("redis", func(b *testing.B) {
		s := consentstore.New(redisBackend(b), consentstore.Options{})
		defer s.Close()
		fillStore(b, s, 1000)
		benchLookups(b, s, 1000)
	})
	b.Run("http", func(b *testing.B) {
		mem := consentstore.New(consentstore.NewMemory(), consentstore.Options{})
		fillStore(b, mem, 1000)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec, err := mem.Get(r.Context(), strings.TrimPrefix(r.URL.Path, "/users/"))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			json.NewEncoder(w).Encode(rec)
		}))
		defer srv.Close()
		hs, err := httpstore.New(httpstore.Config{URL: srv.URL + "/users/{id}"})
		if err != nil {
			b.Fatal(err)
		}
		s := consentstore.New(hs, consentstore.Options{})
		defer s.Close()
		benchLookups(b, s, 1000)
	})
}

// BenchmarkConsentUpdate: updates per second from parallel writers
// (b.SetParallelism(8): 16 on 2 CPUs), embedded (every update fsynced
// before it returns; concurrent ones share a commit) and redis.
func BenchmarkConsentUpdate(b *testing.B) {
	b.Run("embedded", func(b *testing.B) {
		bs, err := boltstore.Open(b.TempDir(), boltstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		s := consentstore.New(bs, consentstore.Options{})
		defer s.Close()
		b.SetParallelism(8)
		benchUpdates(b, s, storeUsers)
	})
	b.Run("embedded-batch", func(b *testing.B) {
		// An import or a consumer of consent events writes 100 updates
		// per transaction (one fsync).
		bs, err := boltstore.Open(b.TempDir(), boltstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer bs.Close()
		ctx := context.Background()
		batch := make([]*consentstore.Update, 100)
		b.ReportAllocs()
		start := time.Now()
		n := 0
		for b.Loop() {
			for j := range batch {
				n++
				batch[j] = &consentstore.Update{Source: "bench", RecordedAt: 1, Record: consent.Record{ID: fmt.Sprintf("user-%d", n%storeUsers),
					Categories: []consent.Category{{Name: workload.Categories[n%len(workload.Categories)], Consented: n%2 == 0, Timestamp: 1700000000000 + int64(n)}}}}
			}
			if _, err := bs.UpdateMany(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "updates/s")
	})
	b.Run("redis", func(b *testing.B) {
		s := consentstore.New(redisBackend(b), consentstore.Options{})
		defer s.Close()
		b.SetParallelism(8)
		benchUpdates(b, s, storeUsers)
	})
}

var redisServer redistest.Shared

func redisBackend(b *testing.B) consentstore.Backend {
	srv := redisServer.Server(b)
	rs, err := redisstore.New(context.Background(), redisstore.Config{Addrs: []string{srv.Addr}, KeyPrefix: fmt.Sprintf("bench:%s:", b.Name()), Timeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	return rs
}
