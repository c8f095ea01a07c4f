package pipeline

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/insertfn/insertfn/internal/queue"
)

// Ingest is throttled to the pipeline's pace. Accepting events faster
// than the pipeline processes and delivers them builds a backlog, and a
// backlog that outlives the queue's memtables is written to its files,
// read back from them and compacted away: work that makes the pipeline
// slower still. With 64 clients posting batches as fast as they could,
// BenchmarkServeBatch delivered 58k events/s instead of the 77-80k that 32
// clients got, and the webhook's backlog grew without end; with the
// throttle, 66-70k, and the backlog stays at its bound.
//
// So while the events that wait exceed ThrottleBytes, Accept waits for
// them to drain, up to ThrottleWait, before it queues its events: clients
// see slower answers instead of the pipeline falling behind. What counts
// is the inbox, and what each destination's backlog grew by since it was
// last at its smallest while up: a destination that is down does not
// count (its backlog is meant to wait in the queue, bounded by its disk
// use, without holding up ingest or the other destinations), nor does the
// backlog it comes back with, or that was there at start, while it
// drains; only a backlog that grows again while the destination takes
// events does.

// paceEvery is how often the pacer measures the backlog (at 80k events/s
// about 800 KB arrive meanwhile). Measuring every 2 ms took ~3% off
// BenchmarkServeBatch's throughput (runs interleaved with the throttle
// off); every 10 ms, nothing measurable.
const paceEvery = 10 * time.Millisecond

// Defaults of the throttle's Options.
const (
	// DefaultThrottleBytes is the default of Options.ThrottleBytes. What
	// is still queued when the queue's memtable fills is written to a
	// file and compacted away again later: the smaller the backlog, the
	// less of that. BenchmarkServeBatch, 4 MiB against 16 MiB, runs
	// interleaved: 86-92k against 76-82k events/s delivered, with 32 and
	// 64 clients; 1-2 MiB gave 81-90k, 8 MiB 82-86k.
	DefaultThrottleBytes = 4 << 20
	// DefaultThrottleWait is the default of Options.ThrottleWait.
	DefaultThrottleWait = time.Second
)

// throttle is the gate Accept passes.
type throttle struct {
	limit int64         // on above it; <= 0: never
	wait  time.Duration // the longest an Accept waits
	// gate is nil while ingest may go on, and otherwise a channel closed
	// when it may go on again. Only the pacer changes it.
	gate atomic.Pointer[chan struct{}]
	// waits counts the Accepts that waited (the pipeline's Counters).
	waits *atomic.Uint64
}

// await waits while the gate is shut, up to t.wait; it returns ctx's
// error when ctx ends first.
func (t *throttle) await(ctx context.Context) error {
	ch := t.gate.Load()
	if ch == nil {
		return nil
	}
	t.waits.Add(1)
	timer := time.NewTimer(t.wait)
	defer timer.Stop()
	select {
	case <-*ch:
	case <-timer.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// set shuts the gate (on) or opens it; called by the pacer only.
func (t *throttle) set(on bool) {
	cur := t.gate.Load()
	switch {
	case on && cur == nil:
		ch := make(chan struct{})
		t.gate.Store(&ch)
	case !on && cur != nil:
		t.gate.Store(nil)
		close(*cur)
	}
}

// pace measures the backlog every paceEvery and shuts the gate above the
// limit, opening it again below three quarters of it, until ctx is done.
func (p *Pipeline) pace(ctx context.Context) {
	t := &p.throttle
	defer t.set(false)
	if t.limit <= 0 {
		return
	}
	tick := time.NewTicker(paceEvery)
	defer tick.Stop()
	b := backlog{floor: make([]int64, len(p.destTopics)), reset: make([]bool, len(p.destTopics))}
	for i := range b.reset {
		b.reset[i] = true // what is there at start drains without throttling
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		lag := b.measure(p)
		switch {
		case lag > t.limit:
			if t.gate.Load() == nil {
				p.noisy.Log(slog.LevelInfo, "throttle", "pipeline: ingest waits for the pipeline to catch up", "backlog_bytes", lag, "limit_bytes", t.limit)
			}
			t.set(true)
		case lag < t.limit/4*3:
			t.set(false)
		}
	}
}

// backlog is the pacer's measure of what waits.
type backlog struct {
	// floor is, per destination, the smallest its ready backlog has been
	// since reset; reset is set while it is down (and at start), so that
	// the backlog it has when it comes (back) up is its new floor.
	floor []int64
	reset []bool
}

// measure returns the bytes of the events waiting in the inbox plus, per
// destination that is up, what its backlog holds above its floor.
func (b *backlog) measure(p *Pipeline) int64 {
	var n int64
	if s, err := p.q.Stats(queue.InboxTopic); err == nil {
		n += s.ReadyBytes
	}
	for i, topic := range p.destTopics {
		if p.down[i].Load() {
			b.reset[i] = true
			continue
		}
		s, err := p.q.Stats(topic)
		if err != nil {
			continue
		}
		if b.reset[i] || s.ReadyBytes < b.floor[i] {
			b.floor[i], b.reset[i] = s.ReadyBytes, false
		}
		n += s.ReadyBytes - b.floor[i]
	}
	return n
}
