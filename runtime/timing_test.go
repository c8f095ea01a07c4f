package runtime_test

import (
	"context"
	"testing"

	"github.com/insertfn/insertfn/runtime"
)

// TestTimeEvery checks which calls of Invoke report a Duration: one in
// Options.TimeEvery (rounded up to a power of two), every call with 1.
func TestTimeEvery(t *testing.T) {
	for _, c := range []struct {
		every, timed int // of 16 calls on one instance
	}{
		{1, 16},
		{3, 4}, // rounded up to 4
		{8, 2},
		{0, 1}, // the default, 16
	} {
		f := load(t, "consent-match", runtime.Options{Store: testStore, TimeEvery: c.every, Limits: runtime.Limits{PoolSize: 1}})
		var res runtime.Result
		timed := 0
		for range 16 {
			if err := f.Invoke(context.Background(), []byte(evMatch), &res); err != nil {
				t.Fatal(err)
			}
			if res.Verdict != runtime.Deliver {
				t.Fatalf("verdict %v", res.Verdict)
			}
			if res.Duration > 0 {
				timed++
			}
		}
		if timed != c.timed {
			t.Errorf("TimeEvery %d: %d of 16 calls timed, want %d", c.every, timed, c.timed)
		}
	}
}
