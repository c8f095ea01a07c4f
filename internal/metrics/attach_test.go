package metrics_test

import (
	"path/filepath"
	"testing"

	"github.com/insertfn/insertfn/internal/metrics"
	"github.com/insertfn/insertfn/internal/queue"
)

// TestAttach: metrics made before the parts exist read them once attached.
func TestAttach(t *testing.T) {
	m, err := metrics.New(metrics.Sources{}, metrics.Options{OmitRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lookup(t, m.Registry(), "insertfn_queue_limit_bytes"); ok {
		t.Fatal("a queue metric before anything was attached")
	}
	q, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	m.Attach(metrics.Sources{Queue: q, Destinations: []string{"ads"}})
	if v := value(t, m.Registry(), "insertfn_queue_limit_bytes"); v != 1<<20 {
		t.Errorf("queue limit after Attach = %v, want %d", v, 1<<20)
	}
}
