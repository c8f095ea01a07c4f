package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/delivery"
	"github.com/insertfn/insertfn/internal/queue"
)

// openQueue opens a queue without fsyncs for the test.
func openQueue(t *testing.T) queue.Queue {
	t.Helper()
	q, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{Sync: queue.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// heldSink takes deliveries only once released.
type heldSink struct {
	release chan struct{}
	got     atomic.Int64
}

func (s *heldSink) Deliver(ctx context.Context, events [][]byte) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.got.Add(int64(len(events)))
	return nil
}

func (s *heldSink) Close() error { return nil }

// downSink is a destination that is down: each delivery fails after a
// while (a timeout), so its backlog stays ready for some time.
type downSink struct{}

func (downSink) Deliver(ctx context.Context, _ [][]byte) error {
	select {
	case <-time.After(300 * time.Millisecond):
	case <-ctx.Done():
	}
	return fmt.Errorf("connection refused")
}

func (downSink) Close() error { return nil }

// TestThrottle: while a destination that is up holds a backlog over
// ThrottleBytes, Accept waits (up to ThrottleWait); once it drains, Accept
// goes straight on, though a destination that is down still has one.
func TestThrottle(t *testing.T) {
	proc, _ := newProcessor(t)
	q := openQueue(t)
	archive := &heldSink{release: make(chan struct{})}
	const wait = 300 * time.Millisecond
	p, err := New(q, proc, []delivery.Sink{downSink{}, webhook(t, newSink(t).srv.URL), archive}, Options{Settings: delivery.Settings{
		BatchSize: 1, ThrottleBytes: 4 << 10, ThrottleWait: wait,
		Backoff: delivery.Backoff{Initial: time.Hour, Max: time.Hour, MaxAttempts: -1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { p.Run(ctx); close(ran) }()
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(archive.release) }) }
	defer func() { release(); cancel(); <-ran }() // a held delivery would keep Run from returning
	// The backlog a destination has when the pacer first looks drains
	// without throttling: let it look before the backlog builds.
	time.Sleep(3 * paceEvery)

	pad := strings.Repeat("x", 500)
	var evs [][]byte
	for i := range 30 { // ~24 KB for ads (down) and for the archive (held)
		evs = append(evs, []byte(strings.Replace(string(event(fmt.Sprintf("m%02d", i), true, false)), `"type"`, `"pad":"`+pad+`","type"`, 1)))
	}
	if err := p.Accept(context.Background(), "web", evs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the throttle to shut", func() bool { return p.throttle.gate.Load() != nil })
	start := time.Now()
	if err := p.Accept(context.Background(), "web", evs[:1]); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < wait*3/4 || proc.Counters().Snapshot().Throttled != 1 {
		t.Fatalf("Accept under the throttle returned after %v, %d waits; want it to wait ~%v", waited, proc.Counters().Snapshot().Throttled, wait)
	}
	// A cancelled request does not wait.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if err := p.Accept(cctx, "web", evs[:1]); err == nil {
		t.Fatal("Accept with a done context under the throttle succeeded")
	}

	release()
	waitFor(t, "the archive's backlog to drain", func() bool { return archive.got.Load() >= 31 })
	waitFor(t, "the throttle to open", func() bool { return p.throttle.gate.Load() == nil })
	if st, err := q.Stats(queue.DestinationTopic("ads")); err != nil || st.ReadyBytes <= 4<<10 {
		t.Fatalf("ads backlog %+v, %v; want one over the limit (ads is down and must not throttle)", st, err)
	}
	before := proc.Counters().Snapshot().Throttled
	if err := p.Accept(context.Background(), "web", evs[:1]); err != nil {
		t.Fatal(err)
	}
	if proc.Counters().Snapshot().Throttled != before {
		t.Fatal("Accept waited though only a destination that is down has a backlog")
	}
}

// TestBacklogMeasure: the throttle counts the inbox and what a destination
// that is up has added to its backlog since it was last at its smallest;
// not the backlog there at start, nor one a destination comes back up
// with, while it drains.
func TestBacklogMeasure(t *testing.T) {
	proc, _ := newProcessor(t)
	q := openQueue(t)
	held := &heldSink{release: make(chan struct{})}
	p, err := New(q, proc, []delivery.Sink{held, held, held}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ads := queue.DestinationTopic("ads")
	add := func(topic queue.Topic, n int) {
		t.Helper()
		for range n {
			if err := q.Append(ctx, topic, []byte(strings.Repeat("x", 100))); err != nil {
				t.Fatal(err)
			}
		}
	}
	b := backlog{floor: make([]int64, 3), reset: []bool{true, true, true}}
	check := func(what string, want int64) {
		t.Helper()
		if got := b.measure(p); got != want {
			t.Fatalf("%s: backlog %d bytes, want %d", what, got, want)
		}
	}
	add(ads, 10)
	check("a backlog there at start", 0)
	add(ads, 5)
	check("grown by 5 items while up", 500)
	p.down[0].Store(true)
	add(ads, 20)
	check("down", 0)
	p.down[0].Store(false)
	check("back up with 35 items", 0)
	items, err := q.Consumer(ads).Next(ctx, 10, 0)
	if err != nil || len(items) != 10 {
		t.Fatalf("Next: %d items, %v", len(items), err)
	}
	check("draining", 0)
	add(ads, 3)
	check("grown by 3 items from its smallest", 300)
	add(queue.InboxTopic, 2)
	check("and 2 in the inbox", 500)
}
