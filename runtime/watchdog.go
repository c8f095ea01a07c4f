package runtime

import (
	"sync"
	"sync/atomic"
	"time"
)

// watchdogTick is how often the watchdog looks for calls over their time
// limit: a limit is enforced between its end and one tick later.
const watchdogTick = 5 * time.Millisecond

// Values of instance.deadline besides a deadline.
const (
	noCall  = 0  // no call is running
	expired = -1 // the watchdog stopped the call
)

// epoch is the zero of instance clocks (monotonic).
var epoch = time.Now()

// watchdog stops guests that overrun their time limit. One goroutine per
// Engine looks at every instance's deadline each tick, so that a call costs
// one atomic store to arm its limit and one atomic swap to disarm it: no
// timer, no goroutine, no lock per call.
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
		now := int64(time.Since(epoch))
		w.mu.Lock()
		for inst := range w.instances {
			if d := inst.deadline.Load(); d > noCall && now > d {
				inst.expire(d)
			}
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

// clock is the time limit of one instance's current event.
type clock struct {
	// deadline is when the current event's limit ends, on the monotonic
	// clock since epoch; or noCall, or expired.
	deadline atomic.Int64
	// expireMu is held by the watchdog while it stops the guest, so that the
	// caller, on seeing expired, can wait for it to be done.
	expireMu sync.Mutex
	// interrupt is the guest's loopcheck flag.
	interrupt interface{ Set(uint64) }
	// limit is the time limit last armed, for the error message.
	limit time.Duration
}

// arm starts the clock of a call whose event may take d, and returns the
// start on the monotonic clock since epoch (one clock read serves the limit
// and the call's Duration: on a VM a read costs ~50 ns).
func (c *clock) arm(d time.Duration) time.Duration {
	start := time.Since(epoch)
	c.limit = d
	c.deadline.Store(int64(start + d))
	return start
}

// rearm gives the next event of a batch its own limit, starting now. It
// reports false when the watchdog has already stopped the call.
func (c *clock) rearm(d time.Duration) bool {
	old := c.deadline.Load()
	if old == expired || !c.deadline.CompareAndSwap(old, int64(time.Since(epoch)+d)) {
		return false
	}
	c.limit = d
	return true
}

// disarm stops the clock and reports whether the limit expired.
func (c *clock) disarm() (wasExpired bool) {
	if c.deadline.Swap(noCall) != expired {
		return false
	}
	c.expireMu.Lock() // wait for the watchdog to finish setting the flag
	c.expireMu.Unlock()
	return true
}

// expire stops the guest if its call is still the one whose deadline d
// passed.
func (c *clock) expire(d int64) {
	c.expireMu.Lock()
	if c.deadline.CompareAndSwap(d, expired) {
		c.interrupt.Set(1)
	}
	c.expireMu.Unlock()
}
