package boltstore

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

// benchPeople is how many records the benchmarks store.
const benchPeople = 100_000

// benchUpdate is person u's record: five categories, a GDPR purpose and an
// alias.
func benchUpdate(u int, ts int64) *consentstore.Update {
	r := consent.Record{ID: fmt.Sprintf("user-%07d", u), Aliases: []string{fmt.Sprintf("anon-%07d", u)}}
	for i, c := range []string{"Advertising", "Analytics", "Functional", "Marketing", "SaleOfPersonalData"} {
		r.Categories = append(r.Categories, consent.Category{Name: c, Consented: (u+i)%2 == 0, Timestamp: ts})
	}
	r.Purposes = []consent.Purpose{{Regulation: "gdpr", Name: "location_collection", Consented: u%2 == 0, Timestamp: ts, Document: "v43"}}
	r.Normalize()
	return &consentstore.Update{Record: r, Source: "bench", RecordedAt: ts}
}

func fill(b *testing.B, s *Store, n int) {
	b.Helper()
	for i := 0; i < n; i += 5000 {
		var us []*consentstore.Update
		for u := i; u < min(i+5000, n); u++ {
			us = append(us, benchUpdate(u, 1700000000000))
		}
		if _, err := s.UpdateMany(ctx, us); err != nil {
			b.Fatal(err)
		}
	}
}

// reportLatency reports the median and 99th percentile of a sample.
func reportLatency(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkGet: one lookup at a time in a store of 100k people, by id and
// by alias, cycling through all of them; with the cache (the default)
// and without (every lookup a read transaction and a decode).
func BenchmarkGet(b *testing.B) {
	for _, c := range []struct {
		name  string
		cache int
	}{{"cached", 0}, {"uncached", -1}} {
		b.Run(c.name, func(b *testing.B) {
			s := open(b, Options{NoSync: true, CacheSize: c.cache})
			fill(b, s, benchPeople)
			ids := make([]string, benchPeople)
			for i := range ids {
				if i%2 == 0 {
					ids[i] = fmt.Sprintf("user-%07d", i)
				} else {
					ids[i] = fmt.Sprintf("anon-%07d", i)
				}
			}
			// Warm: one pass, so that the cached variant measures hits.
			for _, id := range ids {
				if _, err := s.Get(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
			sample := make([]time.Duration, 0, min(b.N, 1<<20))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				_, err := s.Get(ctx, ids[i%len(ids)])
				d := time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
				if len(sample) < cap(sample) {
					sample = append(sample, d)
				}
			}
			b.StopTimer()
			reportLatency(b, sample)
		})
	}
}

// BenchmarkGetMiss: lookups of ids without a record (anonymous visitors
// who never chose anything).
func BenchmarkGetMiss(b *testing.B) {
	s := open(b, Options{NoSync: true})
	fill(b, s, benchPeople)
	sample := make([]time.Duration, 0, min(b.N, 1<<20))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		_, err := s.Get(ctx, "nobody")
		d := time.Since(t0)
		if err == nil {
			b.Fatal("found nobody")
		}
		if len(sample) < cap(sample) {
			sample = append(sample, d)
		}
	}
	b.StopTimer()
	reportLatency(b, sample)
}

// BenchmarkUpdate: synced updates (the default options) of one category
// of random people from many concurrent writers (64 per CPU), in a store
// of 100k people. updates/s is the figure; each update is durable when it
// returns.
func BenchmarkUpdate(b *testing.B) {
	for _, par := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("writers=%dxCPU", par), func(b *testing.B) {
			s := open(b, Options{})
			fill(b, s, benchPeople)
			var seq atomic.Int64
			b.SetParallelism(par)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := seq.Add(1)
					u := &consentstore.Update{Source: "bench", RecordedAt: n, Record: consent.Record{
						ID:         fmt.Sprintf("user-%07d", (n*7919)%benchPeople),
						Categories: []consent.Category{{Name: "Advertising", Consented: n%2 == 0, Timestamp: 1700000000000 + n}}}}
					if _, _, err := s.Update(ctx, u); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
		})
	}
}

// BenchmarkUpdateMany: bulk import, 1000 updates per transaction.
func BenchmarkUpdateMany(b *testing.B) {
	s := open(b, Options{})
	fill(b, s, benchPeople)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += 1000 {
		var us []*consentstore.Update
		for j := i; j < min(i+1000, b.N); j++ {
			us = append(us, benchUpdate((j*7919)%benchPeople, 1700000000001+int64(j)))
		}
		if _, err := s.UpdateMany(ctx, us); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
}
