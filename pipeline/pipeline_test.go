package pipeline

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/delivery"
	"github.com/insertfn/insertfn/queue"
)

// sink is a webhook receiver that records the messageIds it got and can be
// told to fail.
type sink struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     map[string]int
	failing atomic.Bool
}

func newSink(t *testing.T) *sink {
	s := &sink{got: make(map[string]int)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if s.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		for _, ev := range gjson.GetBytes(body, "batch").Array() {
			s.got[ev.Get("messageId").String()]++
		}
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func (s *sink) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[id] > 0
}

func webhook(t *testing.T, url string) delivery.Sink {
	w, err := delivery.NewWebhook(delivery.WebhookConfig{URL: url, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func event(id string, ads, analytics bool) []byte {
	return []byte(`{"type":"track","event":"Viewed","userId":"u1","messageId":"` + id + `","context":{"consent":{"categoryPreferences":{"Advertising":` +
		map[bool]string{true: "true", false: "false"}[ads] + `,"Analytics":` + map[bool]string{true: "true", false: "false"}[analytics] + `}}}}`)
}

// TestPipelineDelivers: accepted events reach the sinks their consent
// allows; mismatched ones reach none; a destination that is down keeps its
// backlog and gets it in full once it recovers, without holding up the
// other destination.
func TestPipelineDelivers(t *testing.T) {
	proc, _ := newProcessor(t)
	q, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ads, analytics, archive := newSink(t), newSink(t), newSink(t)
	ads.failing.Store(true)
	p, err := New(q, proc, []delivery.Sink{webhook(t, ads.srv.URL), webhook(t, analytics.srv.URL), webhook(t, archive.srv.URL)},
		Options{Backoff: delivery.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, MaxAttempts: -1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { p.Run(ctx); close(ran) }()

	// 50 matching events (ads yes, analytics no) and 10 stale ones.
	var evs [][]byte
	for i := range 50 {
		evs = append(evs, event("ok-"+string(rune('a'+i%26))+string(rune('a'+i/26)), true, false))
	}
	for i := range 10 {
		evs = append(evs, event("stale-"+string(rune('a'+i)), true, true))
	}
	if err := p.Accept(context.Background(), "web", evs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the archive to get the 50 matching events", func() bool { return archive.count() == 50 })
	if analytics.count() != 0 {
		t.Errorf("analytics got %d events; consent refused them all", analytics.count())
	}
	if archive.has("stale-a") {
		t.Error("a stale event reached the archive")
	}
	if ads.count() != 0 {
		t.Errorf("the failing ads sink recorded %d events", ads.count())
	}
	st, err := q.Stats(DestinationTopic("ads"))
	if err != nil || st.Ready+st.InFlight+st.Retrying != 50 {
		t.Errorf("ads backlog while down: %+v, %v; want 50 waiting", st, err)
	}
	ads.failing.Store(false)
	waitFor(t, "the ads backlog to arrive", func() bool { return ads.count() == 50 })

	cancel()
	<-ran
	f := p.Overview().Flow("web", time.Now().Add(-time.Hour), time.Now())
	want := fmt.Sprintf("%+v", []DestinationFlow{
		{Name: "ads", Delivered: 50, Dropped: []Drop{}},
		{Name: "analytics", FilteredConsent: 50, Dropped: []Drop{}},
		{Name: "archive", Delivered: 50, Dropped: []Drop{}},
	})
	if f.Received != 60 || len(f.Dropped) != 1 || f.Dropped[0] != (Drop{Function: "consent-match", Reason: "Consent mismatch", Count: 10}) ||
		fmt.Sprintf("%+v", f.Destinations) != want {
		t.Errorf("overview = %+v\nwant 60 received, 10 dropped by consent-match, destinations %s", f, want)
	}
	if got := p.Overview().Sources(); len(got) != 1 || got[0] != "web" {
		t.Errorf("overview sources %v", got)
	}
	s := proc.Counters().Snapshot()
	if s.Dropped["Consent mismatch"] != 10 || s.Destinations["ads"].Delivered != 50 || s.Destinations["archive"].Delivered != 50 {
		t.Errorf("counters %+v", s)
	}
}

// TestPipelineResumes: events accepted before a stop are delivered by the
// next run over the same queue.
func TestPipelineResumes(t *testing.T) {
	proc, _ := newProcessor(t)
	path := filepath.Join(t.TempDir(), queue.DirName)
	q, err := queue.Open(path, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	archive := newSink(t)
	sinks := []delivery.Sink{webhook(t, archive.srv.URL), webhook(t, archive.srv.URL), webhook(t, archive.srv.URL)}
	p, err := New(q, proc, sinks, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Accept(context.Background(), "web", [][]byte{event("m1", true, false), event("m2", true, false)}); err != nil {
		t.Fatal(err)
	}
	q.Close() // never ran
	q, err = queue.Open(path, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	p, _ = New(q, proc, sinks, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	waitFor(t, "both events", func() bool { return archive.has("m1") && archive.has("m2") })
}

func TestInboxEncoding(t *testing.T) {
	var enc encoder
	big := []byte(`{"a":"` + strings.Repeat("x", encoderChunk) + `"}`)
	for round := range 2 { // the second reuses the chunks after reset
		var items [][]byte
		var want []string
		for i := range 300 { // more than a chunk
			ev := fmt.Appendf(nil, `{"a":%d,"pad":"%s"}`, i, strings.Repeat("p", 1000))
			if i == 150 {
				ev = big
			}
			items = append(items, enc.item("web", ev))
			want = append(want, string(ev))
		}
		for i, b := range items {
			src, ev, err := DecodeItem(b)
			if err != nil || src != "web" || string(ev) != want[i] {
				t.Fatalf("round %d: item %d decodes as %q %.40q %v", round, i, src, ev, err)
			}
		}
		enc.reset()
	}
	for _, bad := range [][]byte{nil, {1, 5, 'a'}, []byte(`{"a":1}`)} {
		if _, _, err := DecodeItem(bad); err == nil {
			t.Errorf("DecodeItem(%q) accepted a truncated item", bad)
		}
	}
}
