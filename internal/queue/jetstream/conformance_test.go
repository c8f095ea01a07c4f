package jetstream

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/queue"
	"github.com/insertfn/insertfn/internal/queue/jetstream/jstest"
	"github.com/insertfn/insertfn/internal/queue/queuetest"
)

// testAckWait is the AckWait of the tests: how long the items of a host
// that died take to come back.
const testAckWait = time.Second

var prefixes atomic.Int64

// newPrefix returns a stream prefix no other queue of the test process
// uses, so that tests sharing servers do not share queues.
func newPrefix() string { return fmt.Sprintf("T%d", prefixes.Add(1)) }

// testOptions returns the options of a test queue on the servers of urls.
func testOptions(urls []string) Options {
	return Options{
		URLs:            urls,
		Prefix:          newPrefix(),
		AckWait:         testAckWait,
		DuplicateWindow: 10 * time.Second,
		Timeout:         10 * time.Second,
	}
}

// shared is the cluster of three servers that the tests which stop no
// server share (each test's queues have their own prefix): starting one
// takes from a fraction of a second to several on a loaded machine.
var shared struct {
	once sync.Once
	dir  string
	cl   *jstest.Cluster
	err  error
}

// sharedCluster returns the shared cluster, starting it when needed.
func sharedCluster(t testing.TB) *jstest.Cluster {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "jstest")
		if shared.err == nil {
			shared.cl, shared.err = jstest.New(shared.dir, 3, nil)
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.cl
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.cl != nil {
		shared.cl.StopAll()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// openQueue opens a queue with opts, closed at the end of the test.
func openQueue(t testing.TB, opts Options) *Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// TestConformance runs the queue's conformance suite on one server.
func TestConformance(t *testing.T) { conformance(t, jstest.Start(t, 1)) }

// TestConformanceCluster runs it on a cluster of three servers (streams
// of three replicas), the handles of each case's hosts connected to
// different servers.
func TestConformanceCluster(t *testing.T) { conformance(t, sharedCluster(t)) }

// conformance runs the suite on the servers of cl, each handle it opens
// connected to the next server.
func conformance(t *testing.T, cl *jstest.Cluster) {
	var next atomic.Int64
	url := func() []string { return []string{cl.URL(int(next.Add(1)) % cl.N())} }
	queuetest.Run(t, queuetest.Backend{
		Open: func(t testing.TB, maxBytes int64) queue.Queue {
			opts := testOptions(url())
			opts.MaxBytes = maxBytes
			return openQueue(t, opts)
		},
		Reopen: func(t testing.TB, q queue.Queue) queue.Queue {
			opts := q.(*Queue).opts
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			opts.URLs = url()
			return openQueue(t, opts)
		},
		Shared: func(t testing.TB, q queue.Queue) queue.Queue {
			opts := q.(*Queue).opts
			opts.URLs = url()
			return openQueue(t, opts)
		},
		RedeliveryWait: testAckWait,
	})
}
