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
