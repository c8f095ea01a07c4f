package runtime_test

import (
	"context"
	stdruntime "runtime"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/runtime/wasmtest"
)

// heapInUse returns the Go heap in use after a collection.
func heapInUse() uint64 {
	stdruntime.GC()
	var ms stdruntime.MemStats
	stdruntime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestDeepStackRecycled: an instance whose event recursed 200 000 calls
// deep (wazero grew its call stack, a Go slice, to tens of MB) and
// returned is recycled, not kept idle with that stack; an instance that
// recursed a little is kept.
func TestDeepStackRecycled(t *testing.T) {
	e := engine(t)
	shallow, err := e.Load(context.Background(), wasmtest.RecurseThenReturn(100), runtime.Options{Name: "shallow", Limits: runtime.Limits{PoolSize: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer shallow.Close(context.Background())
	mustDeliver(t, shallow, `{"type":"track"}`)
	if st := shallow.Stats(); st.Recycled != 0 || st.Idle != 1 {
		t.Errorf("100 calls deep: stats %+v, want the instance kept", st)
	}

	f, err := e.Load(context.Background(), wasmtest.RecurseThenReturn(200_000), runtime.Options{Name: "deep", Limits: runtime.Limits{PoolSize: 1, MemoryPages: 16}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(context.Background())
	before := heapInUse()
	mustDeliver(t, f, `{"type":"track"}`)
	after := heapInUse()
	t.Logf("Go heap in use: %d MiB before the deep event, %d MiB after", before>>20, after>>20)
	if st := f.Stats(); st.Recycled != 1 {
		t.Errorf("200 000 calls deep: stats %+v, want the instance recycled", st)
	}
	if after > before+8<<20 {
		t.Errorf("the Go heap grew by %d MiB after the deep event: the idle instance keeps its stack", (after-before)>>20)
	}
	mustDeliver(t, f, `{"type":"track"}`) // a fresh instance serves the next
}

// TestTableGrowRefused: a module that uses table.grow is refused at load
// (a table without a maximum grew by 100 million entries, 764 MiB, in an
// idle instance).
func TestTableGrowRefused(t *testing.T) {
	_, err := engine(t).Load(context.Background(), wasmtest.TableGrow(), runtime.Options{Name: "tables"})
	if err == nil || !strings.Contains(err.Error(), "table.grow") || !strings.Contains(err.Error(), "does not let tables grow") {
		t.Errorf("Load: %v, want table.grow refused", err)
	}
}
