package runtime_test

import (
	"context"
	"testing"

	"github.com/insertfn/insertfn/runtime"
)

// TestHotPathAllocatesNothing guards the hot path: once a Function's
// instance is warm, running consent-match on an event, delivered or
// dropped, one at a time or in a batch, allocates nothing on the host.
func TestHotPathAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	f := load(t, "consent-match", runtime.Options{Store: testStore})
	ctx := context.Background()
	var res runtime.Result
	for _, c := range []struct {
		name    string
		event   []byte
		verdict runtime.Verdict
	}{
		{"deliver", []byte(evMatch), runtime.Deliver},
		{"drop", []byte(evMismatch), runtime.Drop},
	} {
		invoke := func() {
			if err := f.Invoke(ctx, c.event, &res); err != nil || res.Verdict != c.verdict {
				t.Fatalf("%s: %v %v", c.name, res.Verdict, err)
			}
		}
		invoke() // warm: the instance, the reason's string, res's buffers
		if n := testing.AllocsPerRun(200, invoke); n != 0 {
			t.Errorf("Invoke, %s: %v allocations per event, want 0", c.name, n)
		}
	}
	events := [][]byte{[]byte(evMatch), []byte(evMismatch), []byte(evMatch), []byte(evMismatch)}
	results := make([]runtime.Result, len(events))
	batch := func() {
		if err := f.InvokeBatch(ctx, events, results); err != nil || results[0].Verdict != runtime.Deliver || results[1].Verdict != runtime.Drop {
			t.Fatalf("InvokeBatch: %v %v %v", results[0].Verdict, results[1].Verdict, err)
		}
	}
	batch()
	if n := testing.AllocsPerRun(100, batch); n != 0 {
		t.Errorf("InvokeBatch: %v allocations per batch of %d, want 0", n, len(events))
	}
}
