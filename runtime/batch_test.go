package runtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/insertfn/insertfn/runtime"
)

// A batch in which some events break the sandbox: each failing event gets
// its own typed error, the events around it their own verdicts, and the
// function goes on with fresh instances.
func TestBatchFailsPartWay(t *testing.T) {
	f := load(t, "loop", runtime.Options{Limits: hostileLimits})
	events := [][]byte{
		[]byte(`{"type":"track","n":0}`),
		[]byte(`{"type":"track","n":1,"hostile":true}`),
		[]byte(`{"type":"track","n":2}`),
		[]byte(`{"type":"track","n":3,"hostile":true}`),
		[]byte(`{"type":"track","n":4}`),
	}
	results := make([]runtime.Result, len(events))
	for i := range results { // stale values a caller's reused results may hold
		results[i].Duration = 12345 * time.Hour
	}
	before := f.Stats()
	err := f.InvokeBatch(context.Background(), events, results)
	if !errors.Is(err, runtime.ErrTimeout) {
		t.Fatalf("InvokeBatch: %v, want the first failure (a timeout)", err)
	}
	for i, r := range results {
		wantFail := i == 1 || i == 3
		if wantFail != (r.Verdict == runtime.Fail) || (wantFail && r.Kind != runtime.KindTimeout) {
			t.Errorf("event %d: verdict %v kind %q reason %q", i, r.Verdict, r.Kind, r.Reason)
		}
		if r.Duration >= time.Hour {
			t.Errorf("event %d kept a stale duration %v", i, r.Duration)
		}
		if !wantFail && string(r.Event) != string(events[i]) {
			t.Errorf("event %d: delivered %s, want the event itself", i, r.Event)
		}
	}
	st := f.Stats()
	if st.Discarded-before.Discarded != 2 || st.Invocations-before.Invocations != uint64(len(events)) {
		t.Errorf("stats before %+v after %+v: want 2 discarded, %d invocations", before, st, len(events))
	}
}

// The caller's deadline bounds a batch, not only its first event: the
// events handled in time keep their verdicts and the call says why it
// stopped.
func TestBatchHonoursCallerDeadline(t *testing.T) {
	f := load(t, "consent-match", runtime.Options{Store: testStore})
	events := make([][]byte, 20000)
	for i := range events {
		events[i] = []byte(evMatch)
	}
	results := make([]runtime.Result, len(events))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := f.InvokeBatch(ctx, events, results)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Skipf("the whole batch of %d finished within 20ms (err %v): nothing to check on this machine", len(events), err)
	}
	handled := 0
	for handled < len(results) && results[handled].Verdict == runtime.Deliver && results[handled].Event != nil {
		handled++
	}
	if handled == len(results) {
		t.Fatalf("all %d events have verdicts although the batch stopped: %v", len(results), err)
	}
	// The instance was healthy: the next event is handled normally.
	mustDeliver(t, f, evMatch)
}
