package runtime_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/runtime/wasmtest"
)

// TestRefusedGrowIsOutOfMemory: a guest that traps after one memory.grow
// past its cap was refused is out of memory, in an event and during
// start-up, whatever its trap says.
func TestRefusedGrowIsOutOfMemory(t *testing.T) {
	f, err := engine(t).Load(context.Background(), wasmtest.GrowFailThenTrap(), runtime.Options{Name: "grower"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(context.Background())
	res, err := invoke(t, f, `{"type":"track"}`)
	if !errors.Is(err, runtime.ErrMemoryLimit) || res.Kind != runtime.KindMemoryLimit || !strings.Contains(res.Reason, "a memory.grow to 4096 MiB was refused") {
		t.Errorf("event: %v (kind %q, reason %q), want MemoryLimit naming the refused grow", err, res.Kind, res.Reason)
	}
	_, err = engine(t).Load(context.Background(), wasmtest.StartUpExhaustsMemory(), runtime.Options{Name: "starter"})
	if !errors.Is(err, runtime.ErrMemoryLimit) || !strings.Contains(err.Error(), "start-up: the guest ran out of its 2048 pages") {
		t.Errorf("start-up: %v, want a MemoryLimit error", err)
	}
}

// TestRefusedGrowForgottenAfterEvent: a memory.grow refused during one
// event that the guest coped with does not make a later event's unrelated
// trap a memory failure, in Invoke and in a batch.
func TestRefusedGrowForgottenAfterEvent(t *testing.T) {
	f, err := engine(t).Load(context.Background(), wasmtest.GrowRefusedThenTrap(),
		runtime.Options{Name: "coper", Limits: runtime.Limits{MemoryPages: 512, PoolSize: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(context.Background())
	mustDeliver(t, f, `{"type":"track"}`) // the grow to 1000 pages is refused; the guest copes
	res, err := invoke(t, f, `{"type":"identify"}`)
	if !errors.Is(err, runtime.ErrTrap) || res.Kind != runtime.KindTrap {
		t.Errorf("the trap after a refused grow in an earlier event: %v (kind %q, reason %q), want a trap", err, res.Kind, res.Reason)
	}
	if st := f.Stats(); st.Started != 1 {
		t.Fatalf("stats %+v: want the first instance reused for the second event", st)
	}
	results := make([]runtime.Result, 2)
	err = f.InvokeBatch(context.Background(), [][]byte{[]byte(`{"type":"track"}`), []byte(`{"type":"identify"}`)}, results)
	if results[0].Verdict != runtime.Deliver || !errors.Is(err, runtime.ErrTrap) || results[1].Kind != runtime.KindTrap {
		t.Errorf("batch: %v, results %+v, want deliver then a trap", err, results)
	}
}
