package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/insertfn/insertfn/internal/pipeline/destfilter"
	"github.com/insertfn/insertfn/internal/queue/jetstream/jstest"
)

// filterHost is a host's filter store as the app's behaves: known
// destinations, the admin API's changes published first.
type filterHost struct {
	mu      sync.Mutex
	filters map[string][]destfilter.Filter // nil: the configuration's
	known   map[string]bool
	pub     FilterPublisher
}

func (h *filterHost) ApplyFilters(_ context.Context, d string, f []destfilter.Filter) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.known[d] {
		return errors.New("unknown destination " + d)
	}
	h.filters[d] = f
	return nil
}

func (h *filterHost) ApplyReset(_ context.Context, d string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.known[d] {
		return errors.New("unknown destination " + d)
	}
	delete(h.filters, d)
	return nil
}

func (h *filterHost) SetFilterPublisher(p FilterPublisher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pub = p
}

// set is the admin API's PUT: published, then applied here.
func (h *filterHost) set(t *testing.T, d string, f []destfilter.Filter) {
	t.Helper()
	h.mu.Lock()
	pub := h.pub
	h.mu.Unlock()
	if err := pub.PublishFilters(context.Background(), d, f); err != nil {
		t.Fatal(err)
	}
	if err := h.ApplyFilters(context.Background(), d, f); err != nil {
		t.Fatal(err)
	}
}

// names returns the names of d's filters here, "config" for the
// configuration's.
func (h *filterHost) names(d string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.filters[d]
	if !ok {
		return []string{"config"}
	}
	out := []string{}
	for _, x := range f {
		out = append(out, x.Name)
	}
	return out
}

func startFilterHost(t *testing.T, url string, known ...string) *filterHost {
	t.Helper()
	h := &filterHost{filters: map[string][]destfilter.Filter{}, known: map[string]bool{}}
	for _, d := range known {
		h.known[d] = true
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := NewFilters(ctx, nc, "TESTF", 1, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = f.Close()
		nc.Close()
	})
	return h
}

func waitNames(t *testing.T, h *filterHost, d string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(h.names(d), want) {
		if time.Now().After(deadline) {
			t.Fatalf("filters of %q: %q, want %q", d, h.names(d), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFilters: filters set or reset through one host apply on the others;
// a host that starts later takes the cluster's; a destination a host does
// not have is skipped there, the others still applied; a destination's
// name may hold any characters.
func TestFilters(t *testing.T) {
	srv := jstest.Start(t, 1)
	const odd = "sink/ü .*>name"
	a := startFilterHost(t, srv.URL(0), "sink", odd)
	b := startFilterHost(t, srv.URL(0), "sink", odd)
	drop := []destfilter.Filter{{Name: "no-tests", If: "event = 'Test'", Action: destfilter.Drop}}
	a.set(t, "sink", drop)
	waitNames(t, b, "sink", "no-tests")
	a.set(t, odd, []destfilter.Filter{})
	waitNames(t, b, odd)

	a.mu.Lock()
	pub := a.pub
	a.mu.Unlock()
	if err := pub.PublishReset(context.Background(), "sink"); err != nil {
		t.Fatal(err)
	}
	waitNames(t, b, "sink", "config")
	b.set(t, "sink", append(drop, destfilter.Filter{Name: "second", Action: destfilter.Drop, If: "event = 'X'"}))
	waitNames(t, a, "sink", "no-tests", "second")

	// A host without the destination odd: the others' filters still
	// apply to it.
	c := startFilterHost(t, srv.URL(0), "sink")
	if got := c.names("sink"); !slices.Equal(got, []string{"no-tests", "second"}) {
		t.Fatalf("a host that started later has %q", got)
	}
}
