package runtime

import (
	"sync"
	"sync/atomic"
	"time"
)

// watchdogTick is how often the watchdog looks for calls over their time
// limit: a limit is enforced between its end and one tick later.
const watchdogTick = 5 * time.Millisecond

// epoch is the zero of the watchdog's clock (monotonic).
var epoch = time.Now()

// sinceEpoch reads the watchdog's clock.
func sinceEpoch() time.Duration { return time.Since(epoch) }

// watchdog stops guests that overrun their time limit. One goroutine per
// Engine looks at every instance's clock each tick, so that a call costs
// one atomic store to arm its limit and one atomic swap to disarm it: no
// timer, no goroutine, no lock and no clock read per call.
//
// Stopping a guest is setting its interrupt global (runtime/internal/loopcheck),
// which the guest reads every loopcheck.FuelPerYield loop iterations, at
// a point where its goroutine also lets the Go scheduler in; so the
// watchdog itself can always run, even while a garbage collection is
// stopping the world.
type watchdog struct {
	mu        sync.Mutex
	instances map[*instance]struct{}
	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

func newWatchdog() *watchdog {
	w := &watchdog{
		instances: make(map[*instance]struct{}),
		stop:      make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	go w.run()
	return w
}

func (w *watchdog) run() {
	defer close(w.stopped)
	t := time.NewTicker(watchdogTick)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		w.mu.Lock()
		for inst := range w.instances {
			inst.check(sinceEpoch)
		}
		w.mu.Unlock()
	}
}

func (w *watchdog) watch(inst *instance) {
	w.mu.Lock()
	w.instances[inst] = struct{}{}
	w.mu.Unlock()
}

func (w *watchdog) forget(inst *instance) {
	w.mu.Lock()
	delete(w.instances, inst)
	w.mu.Unlock()
}

// close stops the watchdog's goroutine; time limits are no longer enforced.
func (w *watchdog) close() {
	w.closeOnce.Do(func() { close(w.stop) })
	<-w.stopped
}

// A call's limit is timed by the watchdog, not by the call: reading the
// monotonic clock costs ~40 ns on a VM, two reads per call would be most of
// an empty call's cost. The caller publishes which call is running and its
// limit in one atomic word; the watchdog notes the time at which it first
// sees that word, and stops the call once that time is older than the limit.
// Since it first sees a call no earlier than the call's start, a call is
// never stopped before its limit; a timely watchdog stops it within two
// ticks after (one to see it, one to find it late). A watchdog that is late
// (starved of CPU) only makes limits more lenient.
//
// The word: the call's generation in the high genBits bits, which tells one
// call from the next on the same instance, and its limit in milliseconds in
// the low 64-genBits bits. Generations wrap, skipping 0 and the all-ones
// value, so that the word is never noCall or expired; two calls a wrap
// apart (2^37 calls) cannot both be seen by one watchdog tick.
//
// Worked example: the 5th call with a 100 ms limit is 5<<27 | 100 =
// 0x0000_0028_0000_0064.
const (
	genBits   = 37
	limitBits = 64 - genBits
	limitMask = 1<<limitBits - 1
	maxGen    = 1<<genBits - 2 // all ones is expired's

	noCall  uint64 = 0         // no call is running
	expired uint64 = 1<<64 - 1 // the watchdog stopped the call
)

// clock is the time limit of one instance's current event.
type clock struct {
	// armed is the running call's word (see above), or noCall, or expired.
	armed atomic.Uint64
	// gen is the generation of the call last armed; the caller's.
	gen uint64
	// limit is the time limit last armed, for the error message; the
	// caller's.
	limit time.Duration
	// expireMu is held by the watchdog while it stops the guest, so that the
	// caller, on seeing expired, can wait for it to be done.
	expireMu sync.Mutex
	// interrupt is the guest's loopcheck flag.
	interrupt interface{ Set(uint64) }
	// seen is the word the watchdog saw at its last tick and seenAt when it
	// first saw it; the watchdog's, under watchdog.mu.
	seen   uint64
	seenAt time.Duration
}

// word returns the next call's word for a limit of d (rounded up to a
// millisecond, at most MaxTimeout).
func (c *clock) word(d time.Duration) uint64 {
	c.gen++
	if c.gen > maxGen {
		c.gen = 1
	}
	c.limit = d
	ms := uint64(max(d+time.Millisecond-1, 0) / time.Millisecond)
	return c.gen<<limitBits | min(ms, limitMask)
}

// arm starts the clock of a call whose event may take d.
func (c *clock) arm(d time.Duration) {
	c.armed.Store(c.word(d))
}

// rearm gives the next event of a batch its own limit, starting now. It
// reports false when the watchdog has already stopped the call; the limit
// of the error message is then still the stopped event's.
func (c *clock) rearm(d time.Duration) bool {
	old := c.armed.Load()
	if old == expired {
		return false
	}
	gen, limit := c.gen, c.limit
	if c.armed.CompareAndSwap(old, c.word(d)) {
		return true
	}
	c.gen, c.limit = gen, limit
	return false
}

// disarm stops the clock and reports whether the limit expired.
func (c *clock) disarm() (wasExpired bool) {
	if c.armed.Swap(noCall) != expired {
		return false
	}
	c.expireMu.Lock() // wait for the watchdog to finish setting the flag
	c.expireMu.Unlock()
	return true
}

// check is the watchdog's look at the clock; now reads the time since
// epoch. The time is read after the word: read before, it could be older
// than the start of a call armed meanwhile (the watchdog may have waited
// for its lock, or been descheduled), and counting from it could stop the
// call early.
func (c *clock) check(now func() time.Duration) {
	w := c.armed.Load()
	switch {
	case w == noCall || w == expired:
		c.seen = noCall
	case w != c.seen:
		c.seen, c.seenAt = w, now()
	case now()-c.seenAt > time.Duration(w&limitMask)*time.Millisecond:
		c.expire(w)
	}
}

// expire stops the guest if its call is still the one whose word is w.
func (c *clock) expire(w uint64) {
	c.expireMu.Lock()
	if c.armed.CompareAndSwap(w, expired) {
		c.interrupt.Set(1)
	}
	c.expireMu.Unlock()
}
