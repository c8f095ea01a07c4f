package jetstream

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/queue"
	"github.com/insertfn/insertfn/internal/queue/jetstream/jstest"
)

// BenchmarkAppendConsume appends 1 KiB items one per Append from 16
// goroutines (as the server's requests do) through one handle, and
// consumes them (Next of up to 100, Ack) from 2 goroutines through
// another, on one server and on a cluster of three (streams of three
// replicas; the handles on different servers). It reports items/s.
func BenchmarkAppendConsume(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			var cl *jstest.Cluster
			if n == 1 {
				cl = jstest.Start(b, 1)
			} else {
				cl = sharedCluster(b)
			}
			opts := testOptions([]string{cl.URL(0)})
			opts.AckWait = 30 * time.Second
			opts.DuplicateWindow = time.Minute
			qa := openQueue(b, opts)
			opts.URLs = []string{cl.URL(1 % n)}
			qc := openQueue(b, opts)
			ctx := context.Background()
			const topic = queue.Topic("bench")
			item := make([]byte, 1024)
			c := qc.Consumer(topic)
			if err := qa.Append(ctx, topic, item); err != nil { // creates the stream
				b.Fatal(err)
			}
			if err := c.Ack(ctx, next(b, c, 1, 5*time.Second)...); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(item)))
			b.ResetTimer()
			var wg sync.WaitGroup
			var appended, consumed atomic.Int64
			for range 16 {
				wg.Go(func() {
					for appended.Add(1) <= int64(b.N) {
						if err := qa.Append(ctx, topic, item); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			run, stop := context.WithTimeout(ctx, 5*time.Minute)
			defer stop()
			for range 2 {
				wg.Go(func() {
					for consumed.Load() < int64(b.N) {
						items, err := c.Next(run, 100, 0)
						if err != nil {
							if run.Err() == nil {
								b.Error(err)
							}
							return
						}
						if err := c.Ack(ctx, items...); err != nil {
							b.Error(err)
							return
						}
						if consumed.Add(int64(len(items))) >= int64(b.N) {
							stop()
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
