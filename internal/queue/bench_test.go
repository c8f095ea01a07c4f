package queue

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppend appends batches of 100 items of 1 KiB (and 512 B) from many
// goroutines (as concurrent /v1/batch requests do) with the default
// SyncAlways: the group commit makes them share fsyncs. One op is one
// batch; items/s is the figure to compare with the ingest target. Run
// with a bounded -benchtime (the file grows by about 100 KiB per op).
func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct {
		sync SyncPolicy
		size int
	}{{SyncAlways, 1024}, {SyncAlways, 512}, {SyncNever, 1024}} {
		b.Run(fmt.Sprintf("sync=%v/size=%d", bc.sync, bc.size), func(b *testing.B) {
			q, _ := open(b, Options{Sync: bc.sync, MaxBytes: -1})
			batch := make([][]byte, 100)
			for i := range batch {
				batch[i] = make([]byte, bc.size)
			}
			ctx := context.Background()
			b.SetParallelism(16)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := q.Append(ctx, "inbox", batch...); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*len(batch))/time.Since(start).Seconds(), "items/s")
		})
	}
}

// BenchmarkNextAck hands out and acknowledges items of 1 KiB, 100 per
// Next, with SyncAlways, from one or four consumer goroutines. One op is
// one item.
func BenchmarkNextAck(b *testing.B) {
	for _, consumers := range []int{1, 4} {
		b.Run(fmt.Sprintf("consumers=%d", consumers), func(b *testing.B) {
			benchConsume(b, consumers, func(ctx context.Context, q *Pebble, c Consumer, items []Item) error {
				return c.Ack(ctx, items...)
			})
		})
	}
}

// BenchmarkMove is the pipeline's step: Next 100 items of the inbox and
// Move them to a destination topic, with SyncAlways. One op is one item.
func BenchmarkMove(b *testing.B) {
	benchConsume(b, 4, func(ctx context.Context, q *Pebble, c Consumer, items []Item) error {
		out := make([][]byte, len(items))
		for i, it := range items {
			out[i] = it.Data
		}
		return q.Move(ctx, c, items, map[Topic][][]byte{"dest": out})
	})
}

func benchConsume(b *testing.B, consumers int, settle func(context.Context, *Pebble, Consumer, []Item) error) {
	q, _ := open(b, Options{Sync: SyncNever, MaxBytes: -1})
	ctx := context.Background()
	batch := make([][]byte, 0, 1000)
	for n := b.N; n > 0; n -= len(batch) {
		batch = batch[:0]
		for range min(n, cap(batch)) {
			batch = append(batch, make([]byte, 1024))
		}
		if err := q.Append(ctx, "inbox", batch...); err != nil {
			b.Fatal(err)
		}
	}
	q = reopen(b, q, Options{MaxBytes: -1})
	c := q.Consumer("inbox")
	run, stop := context.WithCancel(ctx)
	defer stop()
	var consumed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	errc := make(chan error, consumers)
	for range consumers {
		go func() {
			for {
				items, err := c.Next(run, 100, 0)
				if errors.Is(err, context.Canceled) {
					errc <- nil
					return
				}
				if err == nil {
					err = settle(ctx, q, c, items)
				}
				if err != nil {
					errc <- err
					return
				}
				if consumed.Add(int64(len(items))) >= int64(b.N) {
					stop()
				}
			}
		}()
	}
	for range consumers {
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "items/s")
	if s := stats(b, q, "inbox"); s.Ready+s.InFlight != 0 {
		b.Fatalf("left: %+v", s)
	}
}
