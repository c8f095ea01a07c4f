package runtime_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/runtime/wasmtest"
)

// budgetEngine returns an Engine of its own whose memory budget holds
// instances instances of pages pages each.
func budgetEngine(t *testing.T, instances, pages int64) *runtime.Engine {
	t.Helper()
	e, err := runtime.NewEngine(runtime.Config{MemoryBudget: instances * (pages*65536 + runtime.InstanceOverhead)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// budgetLimits are the limits of the budget tests' functions.
var budgetLimits = runtime.Limits{MemoryPages: 64, Timeout: 300 * time.Millisecond, PoolSize: 4}

// TestMemoryBudgetExhausted: with room for two instances in the budget,
// two events in flight take them, a third event waits its time limit and
// fails with KindMemoryBudget, and once an instance comes back the next
// event runs.
func TestMemoryBudgetExhausted(t *testing.T) {
	const pages = 256 // a Go guest's runtime needs some
	e := budgetEngine(t, 2, pages)
	store := newGateStore()
	limits := budgetLimits
	limits.MemoryPages = pages
	f, err := e.Load(context.Background(), guest(t, "consent-match"), runtime.Options{Name: "budgeted", Store: store, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(context.Background())
	total, used := e.MemoryBudget()
	if used != pages*65536+runtime.InstanceOverhead || total != 2*used {
		t.Fatalf("budget %d, in use %d after Load: want one instance of two counted", total, used)
	}
	// Two events in flight, each in a consent lookup that waits for the
	// store's gate.
	const wait = `{"type":"track","userId":"wait","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`
	held := make(chan error, 2)
	for range 2 {
		go func() {
			var res runtime.Result
			held <- f.Invoke(context.Background(), []byte(wait), &res)
		}()
	}
	for range 2 {
		<-store.entered
	}
	var res runtime.Result
	err = f.Invoke(context.Background(), []byte(evMatch), &res)
	if !errors.Is(err, runtime.ErrMemoryBudget) || res.Kind != runtime.KindMemoryBudget || !strings.Contains(res.Reason, "memory budget") {
		t.Fatalf("third event: %v (kind %q, reason %q), want a MemoryBudget error", err, res.Kind, res.Reason)
	}
	close(store.gate)
	for range 2 {
		<-held // a timeout, as the lookups outlasted the time limit: no matter
	}
	if err := f.Invoke(context.Background(), []byte(evMatch), &res); err != nil || res.Verdict != runtime.Deliver {
		t.Fatalf("after the instances came back: %v %v", res.Verdict, err)
	}
}

// TestMemoryBudgetReclaimsIdle: an idle instance of one function is closed
// to make room for another function's first instance.
func TestMemoryBudgetReclaimsIdle(t *testing.T) {
	e := budgetEngine(t, 1, 64)
	a, err := e.Load(context.Background(), wasmtest.Deliver(1), runtime.Options{Name: "a", Limits: budgetLimits})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	b, err := e.Load(context.Background(), wasmtest.Deliver(2), runtime.Options{Name: "b", Limits: budgetLimits})
	if err != nil {
		t.Fatalf("Load of a second function with a's idle instance in the budget: %v", err)
	}
	defer b.Close(context.Background())
	if st := a.Stats(); st.Idle != 0 || st.Recycled != 1 {
		t.Errorf("a: %+v, want its idle instance closed for b", st)
	}
	var res runtime.Result
	if err := a.Invoke(context.Background(), []byte(`{"type":"track"}`), &res); err != nil {
		t.Errorf("a after b: %v, want b's idle instance reclaimed in turn", err)
	}
}

// TestMemoryBudgetGivesBack: closing functions gives their instances'
// memory back to the budget.
func TestMemoryBudgetGivesBack(t *testing.T) {
	e := budgetEngine(t, 4, 64)
	f, err := e.Load(context.Background(), wasmtest.GrowAndTouch(8), runtime.Options{Name: "grow", Limits: budgetLimits})
	if err != nil {
		t.Fatal(err)
	}
	var res runtime.Result
	if err := f.Invoke(context.Background(), []byte(`{"type":"track"}`), &res); err != nil || res.Verdict != runtime.Deliver {
		t.Fatalf("grow to the cap: %v %v %s", res.Verdict, err, res.Reason)
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, used := e.MemoryBudget(); used != 0 {
		t.Errorf("%d bytes of the budget in use once the only function is closed, want 0", used)
	}
}
