package bench

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BenchmarkDiskFloor: the latency floor the disk sets for an answer that
// waits for an fsync, to read BenchmarkServeTrackLatency against (run
// both in one go test run: the disks of these machines change speed from
// minute to minute).
//
// It is an ideal write-ahead log and nothing else: appends of 1.3 KB (a
// track event as the queue stores it) arrive at 2000/s in an open loop,
// as in BenchmarkServeTrackLatency; one writer takes every append
// waiting, writes them with one write to a file already written (as a
// recycled log is), fsyncs once and answers them all. No HTTP, no
// parsing, no function, no pipeline. p50-ns and p99-ns are timed from
// when each append was due.
func BenchmarkDiskFloor(b *testing.B) {
	const (
		rate     = 2000
		size     = 1300
		fileSize = 64 << 20
	)
	f, err := os.Create(filepath.Join(b.TempDir(), "wal"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for range fileSize / len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}

	var mu sync.Mutex
	arrived := sync.NewCond(&mu)
	var pending []time.Time // due times of the appends waiting
	var lat latencies
	done := make(chan error, 1)
	go func() {
		var off int64
		var buf []byte
		var batch []time.Time
		for answered := 0; answered < b.N; {
			mu.Lock()
			for len(pending) == 0 {
				arrived.Wait()
			}
			batch, pending = pending, batch[:0]
			mu.Unlock()
			buf = buf[:0]
			for range batch {
				buf = append(buf, chunk[:size]...)
			}
			if off+int64(len(buf)) > fileSize {
				off = 0
			}
			if _, err := f.WriteAt(buf, off); err != nil {
				done <- err
				return
			}
			off += int64(len(buf))
			if err := f.Sync(); err != nil {
				done <- err
				return
			}
			now := time.Now()
			for _, due := range batch {
				lat.add(now.Sub(due))
			}
			answered += len(batch)
		}
		done <- nil
	}()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		due := start.Add(time.Duration(i) * time.Second / rate)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		mu.Lock()
		pending = append(pending, due)
		arrived.Signal()
		mu.Unlock()
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	lat.report(b, "")
}
