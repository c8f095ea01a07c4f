package queue_test

import (
	"path/filepath"
	"testing"

	"github.com/insertfn/insertfn/internal/queue"
	"github.com/insertfn/insertfn/internal/queue/queuetest"
)

// TestConformance runs the queue's conformance suite on Pebble, with the
// default options (SyncInterval, as insertfn runs). A restart closes the
// queue and opens its directory again. There is no second host: one
// process holds a directory's lock.
func TestConformance(t *testing.T) {
	queuetest.Run(t, queuetest.Backend{
		Open: func(t testing.TB, maxBytes int64) queue.Queue {
			q, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{MaxBytes: maxBytes})
			if err != nil {
				t.Fatal(err)
			}
			return q
		},
		Reopen: func(t testing.TB, q queue.Queue) queue.Queue {
			p := q.(*queue.Pebble)
			_, limit := p.Usage() // the bound it was opened with
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			q, err := queue.Open(p.Path(), queue.Options{MaxBytes: limit})
			if err != nil {
				t.Fatal(err)
			}
			return q
		},
	})
}
