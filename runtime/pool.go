package runtime

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// pool holds a Function's instances: at most Limits.PoolSize exist, each
// serving one event at a time. An event takes the most recently used idle
// instance (its memory is the warmest), or starts a new one when the pool
// has room, or waits.
//
// The fast path takes no lock: the instance released last waits in hot,
// and the next event takes it with one atomic swap; it goes back with one
// compare-and-swap when no one waits and the pool is open. Everything else
// (the idle stack, starting, waiting, closing) is under mu; channels are
// only used to wait and to close.
//
// An instance is in exactly one place: hot, idle, out with a caller, or
// closed. busy counts those in hot and out with a caller, so that Close,
// which empties hot itself, waits for the others to come back.
type pool struct {
	hot atomic.Pointer[instance]
	// closing and waiting mirror isClosed and waiters > 0 for the fast
	// path, which reads them after putting an instance in hot and takes it
	// back when either is set (whoever else looks at hot after setting
	// them finds it there).
	closing, waiting atomic.Bool

	mu       sync.Mutex
	idle     []*instance // ready for an event, most recently used last
	live     int         // instances that exist or are starting
	busy     int         // instances in hot or out with a caller
	waiters  int         // callers waiting for an instance or a slot
	isClosed bool

	freed   chan struct{} // a token per instance or slot freed while someone waits (capacity PoolSize)
	closed  chan struct{} // closed by Close
	drained chan struct{} // made by Close while instances are out; closed when the last comes back
}

// acquire returns an instance for one event. The caller must give it back
// with exactly one of release or discard.
func (f *Function) acquire(ctx context.Context) (*instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := &f.pool
	if inst := p.hot.Swap(nil); inst != nil { // counted busy while in hot
		// Close may have begun after the instance went into hot: it set
		// closing before looking there, so this read sees it.
		if p.closing.Load() {
			f.release(inst) // the locked way: dropped, Close's wait ends
			return nil, ErrClosed
		}
		return inst, nil
	}
	var bw budgetWait
	inst, err := f.acquireSlow(ctx, &bw)
	if bw.timer != nil {
		bw.timer.Stop()
	}
	return inst, err
}

// acquireSlow is acquire when no instance waits in hot: it takes an idle
// instance, starts one, or waits.
func (f *Function) acquireSlow(ctx context.Context, bw *budgetWait) (*instance, error) {
	p := &f.pool
	p.mu.Lock()
	for {
		if p.isClosed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if inst := p.hot.Swap(nil); inst != nil {
			p.mu.Unlock()
			return inst, nil
		}
		if n := len(p.idle); n > 0 {
			inst := p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			p.busy++
			p.mu.Unlock()
			return inst, nil
		}
		var budgetFreed <-chan struct{} // set when the pool has room but the memory budget has not
		if p.live < f.limits.PoolSize {
			var ok bool
			if ok, budgetFreed = f.budget().take(f.charge()); ok {
				p.live++
				p.busy++
				p.mu.Unlock()
				inst, err := f.newInstance(ctx, f.charge())
				if err != nil {
					p.mu.Lock()
					p.live--
					p.returned()
					p.mu.Unlock()
					return nil, err
				}
				return inst, nil
			}
		}
		p.waiters++
		p.waiting.Store(true)
		// An instance released into hot before waiting was set is ours.
		if inst := p.hot.Swap(nil); inst != nil {
			p.unwait()
			p.mu.Unlock()
			return inst, nil
		}
		p.mu.Unlock()
		var err error
		if budgetFreed != nil {
			err = f.waitForBudget(ctx, budgetFreed, bw)
		} else {
			select {
			case <-p.freed:
			case <-ctx.Done():
				err = ctx.Err()
			case <-p.closed:
			}
		}
		p.mu.Lock()
		p.unwait()
		if err != nil {
			p.mu.Unlock()
			return nil, err
		}
	}
}

// charge is what an instance of the function counts for in the Engine's
// memory budget.
func (f *Function) charge() int64 {
	return int64(f.limits.MemoryPages)*65536 + InstanceOverhead
}

// budgetWait is the state of one acquire's wait for the memory budget.
type budgetWait struct {
	timer *time.Timer
	start time.Time
}

// waitForBudget waits, for an acquire that found room in the pool but not
// in the Engine's memory budget, until it may look again: an idle instance
// of another function was closed to make room, memory was given back
// (freed), an instance of this function came back, or the function
// closed. The whole wait lasts at most the function's time limit (or until
// ctx's deadline, if sooner); then it fails with KindMemoryBudget.
func (f *Function) waitForBudget(ctx context.Context, freed <-chan struct{}, w *budgetWait) error {
	if f.engine.reclaim(f) {
		return nil
	}
	if w.timer == nil {
		w.start = time.Now()
		w.timer = time.NewTimer(f.limits.Timeout)
	}
	select {
	case <-freed:
	case <-f.pool.freed:
	case <-f.pool.closed:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.timer.C:
		total, used := f.engine.MemoryBudget()
		return &Error{Function: f.name, Kind: KindMemoryBudget, Message: fmt.Sprintf(
			"no instance could start within %s: the memory budget of %d MiB for all functions' instances is in use (%d MiB; an instance of this function counts for %d MiB, its memory cap and overhead): "+
				"raise the memory budget, or lower functions' limits.memory_pages or pool sizes",
			time.Since(w.start).Round(time.Millisecond), total>>20, used>>20, f.charge()>>20)}
	}
	return nil
}

// dropIdle closes one idle instance, the least recently used, to give its
// memory back to the Engine's budget. It reports whether there was one.
func (f *Function) dropIdle() bool {
	p := &f.pool
	p.mu.Lock()
	var inst *instance
	if len(p.idle) > 0 {
		inst = p.idle[0]
		p.idle = append(p.idle[:0], p.idle[1:]...)
		p.live--
		if p.waiters > 0 {
			select {
			case p.freed <- struct{}{}:
			default:
			}
		}
	} else if inst = p.hot.Swap(nil); inst != nil {
		p.live--
		p.returned() // it counted as busy while in hot
	}
	p.mu.Unlock()
	if inst == nil {
		return false
	}
	f.recycled.Add(1)
	inst.close()
	return true
}

// unwait accounts for a waiter done waiting; p.mu is held.
func (p *pool) unwait() {
	p.waiters--
	if p.waiters == 0 {
		p.waiting.Store(false)
	}
}

// returned accounts for an instance (or a slot) coming back; p.mu is held.
func (p *pool) returned() {
	p.busy--
	if p.waiters > 0 {
		select {
		case p.freed <- struct{}{}:
		default: // enough wake-ups are pending already
		}
	}
	if p.busy == 0 && p.drained != nil {
		close(p.drained)
		p.drained = nil
	}
}

// release returns a healthy instance to the pool, unless it grew past the
// high-water mark or the function is closing.
func (f *Function) release(inst *instance) {
	if inst.memorySize() > uint64(f.limits.HighWaterPages)*65536 {
		f.recycled.Add(1)
		f.drop(inst)
		return
	}
	if inst.stackBytes() > maxIdleStack {
		f.recycled.Add(1)
		f.drop(inst)
		if f.engine != nil {
			f.engine.returnMemory() // the stack and the copies its growth left
		}
		return
	}
	p := &f.pool
	if !p.closing.Load() && !p.waiting.Load() && p.hot.CompareAndSwap(nil, inst) {
		if !p.closing.Load() && !p.waiting.Load() {
			return
		}
		// Close or a waiter came meanwhile: they look at hot after
		// setting their flag, so take the instance back unless one of them
		// (or a caller) has it.
		if !p.hot.CompareAndSwap(inst, nil) {
			return
		}
	}
	p.mu.Lock()
	if p.isClosed {
		p.mu.Unlock()
		f.drop(inst)
		return
	}
	p.idle = append(p.idle, inst)
	p.returned()
	p.mu.Unlock()
}

// discard throws a failed instance away.
func (f *Function) discard(inst *instance) {
	f.discarded.Add(1)
	f.drop(inst)
}

// drop closes an instance that was out with a caller and frees its slot.
func (f *Function) drop(inst *instance) {
	inst.close()
	p := &f.pool
	p.mu.Lock()
	p.live--
	p.returned()
	p.mu.Unlock()
}

// idleCount returns the number of idle instances and the linear memory
// they hold.
func (f *Function) idleCount() (n int, memory uint64) {
	f.pool.mu.Lock()
	defer f.pool.mu.Unlock()
	for _, inst := range f.pool.idle {
		memory += inst.memory.committed.Load()
	}
	n = len(f.pool.idle)
	if hot := f.pool.hot.Load(); hot != nil {
		n++
		memory += hot.memory.committed.Load()
	}
	return n, memory
}

// Close stops the function: new calls get ErrClosed, calls in flight finish
// first (each is bounded by its time limit; ctx is used for releasing, not
// for that wait), then every instance is released. The compiled code stays
// in the Engine (see [Engine.Close]).
func (f *Function) Close(ctx context.Context) error {
	p := &f.pool
	p.mu.Lock()
	first := !p.isClosed
	if first {
		p.isClosed = true
		p.closing.Store(true)
		close(p.closed)
	}
	idle := p.idle
	if inst := p.hot.Swap(nil); inst != nil {
		idle = append(idle, inst)
		p.returned() // it counted as busy while in hot; ends an earlier Close's wait if it was the last
	}
	var drained chan struct{}
	if p.busy > 0 {
		if p.drained == nil {
			p.drained = make(chan struct{})
		}
		drained = p.drained
	}
	p.idle = nil
	p.live -= len(idle)
	p.mu.Unlock()
	for _, inst := range idle {
		inst.close()
	}
	if drained != nil {
		<-drained // each call in flight is bounded by its time limit
	}
	if !first {
		return nil
	}
	if f.engine != nil {
		f.engine.unregister(f)
	}
	if f.rt == nil { // a JavaScript function's engine is the Engine's
		return nil
	}
	return f.rt.Close(ctx) // the compiled code stays in the Engine: see Engine.Close
}
