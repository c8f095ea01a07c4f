package runtime_test

import (
	"context"
	stdruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/runtime/wasmtest"
)

// TestFunctionBlocksLimit: a function of more blocks than
// MaxFunctionBlocks, whose compilation would take time in proportion to
// its blocks times its reads, is refused before compilation.
func TestFunctionBlocksLimit(t *testing.T) {
	e := engine(t)
	start := time.Now()
	_, err := e.Load(context.Background(), wasmtest.SlowCompile(20_000, 20_000), runtime.Options{Name: "slow"})
	if err == nil || !strings.Contains(err.Error(), "module limit MaxFunctionBlocks: function 1 has more than 5000 blocks") {
		t.Errorf("Load: %v, want the MaxFunctionBlocks limit", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the refusal took %s: the module was compiled", d)
	}
}

// TestAbandonedCompileFreesItsSlot: a compilation that overruns the
// compile timeout gives its slot back, so that the next Load does not
// wait for it; while twice as many abandoned compilations as slots run,
// Load refuses to compile, saying why; once they end, Load works again.
func TestAbandonedCompileFreesItsSlot(t *testing.T) {
	e, err := runtime.NewEngine(runtime.Config{CompileTimeout: 50 * time.Millisecond,
		ModuleLimits: runtime.ModuleLimits{MaxFunctionBlocks: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	ctx := context.Background()
	slots := max(1, stdruntime.GOMAXPROCS(0)/2)
	for i := range 2 * slots {
		// 10 000 blocks and 10 000 + i reads: a second or more each.
		_, err := e.Load(ctx, wasmtest.SlowCompile(10_000, 10_000+i), runtime.Options{Name: "slow"})
		if err == nil || !strings.Contains(err.Error(), "took longer than 50ms") {
			t.Fatalf("slow module %d: %v, want the compile timeout", i, err)
		}
		if i == 0 { // one abandoned compilation runs: the next Load goes ahead
			start := time.Now()
			f, err := e.Load(ctx, wasmtest.Deliver(40), runtime.Options{Name: "quick"})
			if err != nil {
				t.Fatalf("a quick module after an abandoned compilation: %v", err)
			}
			f.Close(ctx)
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("the quick module took %s: it waited for the abandoned compilation", d)
			}
		}
	}
	_, err = e.Load(ctx, wasmtest.Deliver(41), runtime.Options{Name: "refused"})
	if err == nil || !strings.Contains(err.Error(), "are still running: try again when they end") {
		t.Fatalf("Load while %d abandoned compilations run: %v, want a refusal", 2*slots, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		f, err := e.Load(ctx, wasmtest.Deliver(41), runtime.Options{Name: "later"})
		if err == nil {
			f.Close(ctx)
			break
		}
		if time.Now().After(deadline) || !strings.Contains(err.Error(), "still running") {
			t.Fatalf("Load after the abandoned compilations: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
