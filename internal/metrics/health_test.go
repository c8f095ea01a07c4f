package metrics_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/metrics"
	"github.com/insertfn/insertfn/internal/queue"
	"github.com/insertfn/insertfn/sdk/consent"
)

// flakyStore fails while down is set.
type flakyStore struct {
	down    atomic.Bool
	lookups atomic.Int64
	lastID  atomic.Value
}

func (s *flakyStore) Get(_ context.Context, id string) (*consent.Record, error) {
	s.lookups.Add(1)
	s.lastID.Store(id)
	if s.down.Load() {
		return nil, errBroken
	}
	return nil, consent.ErrNotFound
}

// hangingStore ignores ctx and answers only when released.
type hangingStore struct{ release chan struct{} }

func (s hangingStore) Get(context.Context, string) (*consent.Record, error) {
	<-s.release
	return nil, consent.ErrNotFound
}

func probe(t *testing.T, h http.HandlerFunc) (int, metrics.Readiness, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest("GET", "/readyz", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	var rd metrics.Readiness
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &rd); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
	}
	return rec.Code, rd, string(body)
}

func TestHealthz(t *testing.T) {
	h := metrics.NewHealth(metrics.HealthConfig{Store: &flakyStore{}})
	rec := httptest.NewRecorder()
	h.Healthz(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Errorf("healthz: %d %q", rec.Code, rec.Body)
	}
}

func TestReadyzFollowsTheStore(t *testing.T) {
	store := &flakyStore{}
	q := openQueue(t)
	h := metrics.NewHealth(metrics.HealthConfig{Store: store, Queue: q, Timeout: 5 * time.Second})

	code, rd, body := probe(t, h.Readyz)
	if code != 200 || !rd.Ready || len(rd.Checks) != 2 {
		t.Fatalf("store up: %d %s", code, body)
	}
	if got := store.lastID.Load(); got != metrics.DefaultProbeID {
		t.Errorf("probe id %v, want %s", got, metrics.DefaultProbeID)
	}

	store.down.Store(true)
	code, rd, body = probe(t, h.Readyz)
	if code != 503 || rd.Ready || len(rd.NotReady) != 1 || rd.NotReady[0] != metrics.CheckConsentStore {
		t.Fatalf("store down: %d %s", code, body)
	}
	if !strings.Contains(body, errBroken.Error()) {
		t.Errorf("body does not say why: %s", body)
	}
	for _, c := range rd.Checks {
		if c.Name == metrics.CheckQueue && !c.OK {
			t.Errorf("queue not ready: %s", c.Error)
		}
	}

	store.down.Store(false)
	if code, _, body := probe(t, h.Readyz); code != 200 {
		t.Fatalf("store back: %d %s", code, body)
	}

	// The queue's writes were acknowledged: nothing piles up.
	st, err := q.Stats(queue.HealthTopic)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready+st.InFlight+st.Retrying+st.Dead != 0 {
		t.Errorf("health topic holds items after the checks: %+v", st)
	}
}

func TestReadyzStoreTimeout(t *testing.T) {
	release := make(chan struct{})
	h := metrics.NewHealth(metrics.HealthConfig{Store: hangingStore{release}, Timeout: 20 * time.Millisecond})
	code, rd, body := probe(t, h.Readyz)
	if code != 503 || !strings.Contains(rd.Checks[0].Error, "no answer") {
		t.Fatalf("hanging store: %d %s", code, body)
	}
	// The lookup still hangs: the next probe does not start another.
	code, rd, body = probe(t, h.Readyz)
	if code != 503 || !strings.Contains(rd.Checks[0].Error, "previous") {
		t.Fatalf("still hanging: %d %s", code, body)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _, body = probe(t, h.Readyz)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("released store never ready: %d %s", code, body)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReadyzQueue(t *testing.T) {
	q := openQueue(t)
	h := metrics.NewHealth(metrics.HealthConfig{Queue: q})
	if code, _, body := probe(t, h.Readyz); code != 200 {
		t.Fatalf("open queue: %d %s", code, body)
	}
	q.Close()
	code, rd, body := probe(t, h.Readyz)
	if code != 503 || len(rd.NotReady) != 1 || rd.NotReady[0] != metrics.CheckQueue {
		t.Fatalf("closed queue: %d %s", code, body)
	}
}

func TestReadyzFunctions(t *testing.T) {
	reg := newRegistry(t, "present")
	h := metrics.NewHealth(metrics.HealthConfig{Functions: reg, FunctionNames: []string{"present", "missing"}})
	code, rd, body := probe(t, h.Readyz)
	if code != 503 || rd.NotReady[0] != metrics.CheckFunctions || !strings.Contains(rd.Checks[0].Error, "missing") ||
		strings.Contains(rd.Checks[0].Error, "present") {
		t.Fatalf("a missing function: %d %s", code, body)
	}
	h = metrics.NewHealth(metrics.HealthConfig{Functions: reg, FunctionNames: []string{"present"}})
	if code, _, body := probe(t, h.Readyz); code != 200 {
		t.Fatalf("all present: %d %s", code, body)
	}
	if err := reg.Remove(context.Background(), "present"); err != nil {
		t.Fatal(err)
	}
	if code, _, body := probe(t, h.Readyz); code != 503 {
		t.Fatalf("removed: %d %s", code, body)
	}
	// Functions named but no registry: not ready rather than a panic.
	h = metrics.NewHealth(metrics.HealthConfig{FunctionNames: []string{"f"}})
	if code, _, body := probe(t, h.Readyz); code != 503 {
		t.Fatalf("no registry: %d %s", code, body)
	}
}

func TestReadyzNothingConfigured(t *testing.T) {
	code, rd, body := probe(t, metrics.NewHealth(metrics.HealthConfig{}).Readyz)
	if code != 200 || !rd.Ready || len(rd.Checks) != 0 {
		t.Fatalf("%d %s", code, body)
	}
}
