//go:build !race

// The race detector's instrumentation allocates; allocation guards run
// without it.

package delivery

import (
	"context"
	"testing"
)

func TestWebhookDeliverAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("network round trips")
	}
	w, err := NewWebhook(WebhookConfig{URL: fasthttpSink(t), Headers: map[string]string{"Authorization": "Bearer x"}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	events := testEvents(100)
	ctx := context.Background()
	var derr error
	allocs := testing.AllocsPerRun(200, func() {
		if err := w.Deliver(ctx, events); err != nil {
			derr = err
		}
	})
	if derr != nil {
		t.Fatal(derr)
	}
	// The count includes the in-process server's allocations; the client's
	// own share is zero once the pools are warm.
	if allocs > 2 {
		t.Fatalf("Deliver of 100 events: %.1f allocations per call, want at most 2", allocs)
	}
}
