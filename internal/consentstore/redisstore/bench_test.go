package redisstore_test

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

// benchRecords is how many records the benchmarks look up among.
const benchRecords = 1000

func benchStore(b *testing.B) *consentstore.Store {
	b.Helper()
	s := consentstore.New(open(b, freshConfig(b)), consentstore.Options{})
	for i := range benchRecords {
		u := consentstore.Update{Source: "bench", Record: consent.Record{ID: fmt.Sprint("u", i), Aliases: []string{fmt.Sprint("anon", i)},
			Categories: []consent.Category{{Name: "Advertising", Consented: true, Timestamp: 1}, {Name: "Analytics", Timestamp: 1},
				{Name: "Functional", Consented: true, Timestamp: 1}},
			Purposes: []consent.Purpose{{Regulation: "gdpr", Name: "location_collection", Consented: true, Timestamp: 1, Document: "v43"}}}}
		if _, err := s.Update(ctx, u); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkGet: one lookup by alias on loopback, no cache; p50 and p99 of
// sampled latencies.
func BenchmarkGet(b *testing.B) {
	s := benchStore(b)
	ids := make([]string, benchRecords)
	for i := range ids {
		ids[i] = fmt.Sprint("anon", i)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		r, err := s.Get(ctx, ids[i%benchRecords])
		d := time.Since(start)
		if err != nil || len(r.Categories) != 3 {
			b.Fatalf("Get: %v, %v", r, err)
		}
		lat = append(lat, d)
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkUpdate: parallel updates of random records (and so of random
// entries) from GOMAXPROCS*4 goroutines; updates/s.
func BenchmarkUpdate(b *testing.B) {
	s := benchStore(b)
	var n atomic.Int64
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			u := consentstore.Update{Source: "bench", Record: consent.Record{ID: fmt.Sprint("u", i%benchRecords),
				Categories: []consent.Category{{Name: "Advertising", Consented: i%2 == 0, Timestamp: 1 + i}}}}
			if _, err := s.Update(ctx, u); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*50/100].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}
