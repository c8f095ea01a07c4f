package runtime_test

import (
	"testing"
	"time"

	"github.com/insertfn/insertfn/runtime"
)

// TestHighWaterRecycling runs a guest that keeps 3 MiB more per event in a
// global: past the high-water mark its instance is recycled, not failed,
// and every event still succeeds.
func TestHighWaterRecycling(t *testing.T) {
	f := load(t, "grow", runtime.Options{Limits: runtime.Limits{MemoryPages: 512, HighWaterPages: 128, Timeout: 10 * time.Second, PoolSize: 1}})
	const events = 12
	for i := range events {
		res := mustDeliver(t, f, `{"type":"track","retainMiB":3}`)
		if res.Modified {
			t.Fatalf("event %d came back modified", i)
		}
	}
	st := f.Stats()
	t.Logf("stats %+v", st)
	if st.Recycled == 0 {
		t.Errorf("no instance recycled although each event kept 3 MiB more than the last, high water 8 MiB")
	}
	// 128 pages hold at most a few 3 MiB allocations on top of the Go
	// runtime: an instance cannot serve all the events.
	if st.Recycled < 2 {
		t.Errorf("Recycled %d after %d events of 3 MiB each with an 8 MiB high-water mark, want several", st.Recycled, events)
	}
	if st.Discarded != 0 || st.Invocations != events || st.Started != st.Recycled+uint64(st.Idle) {
		// Each instance but the one idle now was recycled: a new one starts
		// on the next event.
		t.Errorf("stats %+v: want every event handled, nothing discarded, each instance started but the idle one recycled", st)
	}
}

// TestHighWaterAtMaximumMemory sets the high-water mark to the full 4 GiB
// address space: an instance of ordinary size must not be recycled.
func TestHighWaterAtMaximumMemory(t *testing.T) {
	f := load(t, "consent-match", runtime.Options{Store: testStore, Limits: runtime.Limits{MemoryPages: 65536, HighWaterPages: 65536}})
	for range 3 {
		mustDeliver(t, f, evMatch)
	}
	if st := f.Stats(); st.Recycled != 0 {
		t.Errorf("with HighWaterPages 65536 every event recycled its instance (stats %+v): the mark must not overflow", st)
	}
}
