package runtime_test

import (
	"context"
	"sync"
	"testing"

	"github.com/insertfn/insertfn/runtime"
)

// Functions loaded from the same wasm share compiled code in the Engine:
// closing one (a swap retiring a version) must not break the others, nor a
// load of the same wasm that runs at the same time.
func TestSameWasmLoadedAndClosedConcurrently(t *testing.T) {
	eng, wasm := engine(t), guest(t, "consent-match")
	// HighWaterPages 1 recycles the instance after every event, so each
	// event of keep starts a new instance from the shared compiled code.
	keep := load(t, "consent-match", runtime.Options{Store: testStore, Limits: runtime.Limits{HighWaterPages: 1}})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				f, err := eng.Load(context.Background(), wasm, runtime.Options{Name: "churn", Store: testStore})
				if err != nil {
					t.Errorf("Load: %v", err)
					return
				}
				mustDeliver(t, f, evMatch)
				if err := f.Close(context.Background()); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
		})
	}
	wg.Wait()
	for range 3 {
		mustDeliver(t, keep, evMatch)
	}
	// A new instance of the function that stayed still starts from the shared code.
	results := make([]runtime.Result, 8)
	events := make([][]byte, 8)
	for i := range events {
		events[i] = []byte(evMatch)
	}
	if err := keep.InvokeBatch(context.Background(), events, results); err != nil {
		t.Fatal(err)
	}
}
