package runtime

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// fakeMem is the memory of a fake instance: release reads its size.
type fakeMem struct{ api.Memory }

func (fakeMem) Size() uint32 { return 0 }

// fakePool returns a Function whose pool holds size fake instances (no
// module: the pool's own logic only).
func fakePool(wd *watchdog, size int) (*Function, []*instance) {
	f := &Function{name: "fake", rt: wazero.NewRuntimeWithConfig(context.Background(), wazero.NewRuntimeConfigInterpreter()),
		wd: wd, limits: Limits{PoolSize: size, HighWaterPages: 1 << 10}}
	f.pool.freed = make(chan struct{}, size)
	f.pool.closed = make(chan struct{})
	insts := make([]*instance, size)
	for i := range insts {
		insts[i] = &instance{fn: f, mem: fakeMem{}}
	}
	f.pool.idle, f.pool.live = append(f.pool.idle, insts...), size
	return f, insts
}

// TestPoolCloseRaces runs callers taking and giving back instances (some
// with contexts that end at once) while two Closes run, round after round.
// Each Close must return, no instance may have two holders, no call may
// get an instance once Close has finished, and nothing may be left
// accounted for after.
func TestPoolCloseRaces(t *testing.T) {
	wd := newWatchdog()
	defer wd.close()
	rounds := 2000
	if testing.Short() {
		rounds = 200
	}
	for round := range rounds {
		size := 1 + round%2
		f, insts := fakePool(wd, size)
		holders := make(map[*instance]*atomic.Int32, size)
		for _, inst := range insts {
			holders[inst] = new(atomic.Int32)
		}
		var closed atomic.Bool // set once a Close has returned
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Go(func() {
				for i := 0; ; i++ {
					ctx, cancel := context.Background(), context.CancelFunc(func() {})
					if (g+i)%5 == 0 {
						ctx, cancel = context.WithTimeout(ctx, time.Microsecond)
					}
					after := closed.Load()
					inst, err := f.acquire(ctx)
					cancel()
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						continue
					}
					if after {
						t.Errorf("round %d: a call got an instance after Close returned", round)
					}
					if holders[inst].Add(1) != 1 {
						t.Errorf("round %d: two callers hold one instance", round)
					}
					runtime.Gosched()
					holders[inst].Add(-1)
					f.release(inst)
				}
			})
		}
		time.Sleep(time.Duration(round%50) * time.Microsecond)
		done := make(chan struct{}, 2)
		for range 2 {
			go func() {
				f.Close(context.Background())
				closed.Store(true)
				done <- struct{}{}
			}()
		}
		for range 2 {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				p := &f.pool
				p.mu.Lock()
				t.Fatalf("round %d (size %d): a Close hangs: busy %d, live %d, waiting for drained %v", round, size, p.busy, p.live, p.drained != nil)
			}
		}
		wg.Wait()
		p := &f.pool
		if p.busy != 0 || p.live != 0 || p.hot.Load() != nil || len(p.idle) != 0 {
			t.Fatalf("round %d: left after Close: busy %d, live %d, hot %v, idle %d", round, p.busy, p.live, p.hot.Load() != nil, len(p.idle))
		}
	}
}

type atomicFlag struct{ v atomic.Uint64 }

func (f *atomicFlag) Set(v uint64) { f.v.Store(v) }

// TestWatchdogLateIsNotEarly arms a call while the watchdog waits for its
// lock, as it does when instances come and go: the time the watchdog
// waited must not count against the call.
func TestWatchdogLateIsNotEarly(t *testing.T) {
	wd := newWatchdog()
	defer wd.close()
	var flag atomicFlag
	inst := &instance{}
	inst.interrupt = &flag
	wd.watch(inst)
	defer wd.forget(inst)

	const limit = 30 * time.Millisecond
	wd.mu.Lock()
	time.Sleep(4 * watchdogTick) // the watchdog's tick comes and waits
	inst.arm(limit)
	start := time.Now()
	wd.mu.Unlock()
	for flag.v.Load() == 0 && time.Since(start) < 5*time.Second {
		time.Sleep(time.Millisecond)
	}
	if took := time.Since(start); flag.v.Load() == 0 || took < limit {
		t.Fatalf("stopped: %v, after %v; want stopped, after at least %v", flag.v.Load() == 1, took, limit)
	}
	if !inst.disarm() {
		t.Fatal("disarm does not report the stop")
	}
}
