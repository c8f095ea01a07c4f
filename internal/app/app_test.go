package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/internal/delivery"
	"github.com/insertfn/insertfn/internal/ingest"
	"github.com/insertfn/insertfn/internal/pipeline"
	"github.com/insertfn/insertfn/internal/wasmbuild"
)

var builder *wasmbuild.Builder

func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m, &builder)) }

const writeKey = "test-write-key"

// sink is a webhook receiver recording the events it gets, by messageId.
type sink struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]int
	// last is the body of the last batch taken.
	last []byte
	// status, when not 0, is answered instead of 200.
	status int
}

func newSink(t *testing.T) *sink {
	s := &sink{got: make(map[string]int)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.status != 0 {
			w.WriteHeader(s.status)
			return
		}
		for _, ev := range gjson.GetBytes(body, "batch").Array() {
			s.got[ev.Get("messageId").String()]++
		}
		s.last = body
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) setStatus(code int) {
	s.mu.Lock()
	s.status = code
	s.mu.Unlock()
}

func (s *sink) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.got {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func webhookDest(name, url string, categories ...string) config.Destination {
	return config.Destination{Destination: pipeline.Destination{Name: name, Categories: categories},
		Config: delivery.Config{Type: "webhook", WebhookConfig: delivery.WebhookConfig{URL: url, Timeout: 5 * time.Second}}}
}

// baseConfig is a configuration with its data in a temporary directory, a
// source "web" with writeKey and the given functions, and dests.
func baseConfig(t *testing.T, fns []config.Function, sourceFns []string, dests ...config.Destination) *config.Config {
	t.Helper()
	y := fmt.Appendf(nil, "data: %s\ndelivery: {backoff: {initial: 20ms, max: 200ms, max_attempts: -1}}\n", t.TempDir())
	c, err := config.Parse(y)
	if err != nil {
		t.Fatal(err)
	}
	c.Functions = fns
	c.Sources = []config.Source{{Source: ingest.Source{Name: "web", WriteKeys: []string{writeKey}}, Functions: sourceFns}}
	c.Destinations = dests
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func start(t *testing.T, c *config.Config) *Server {
	t.Helper()
	h, err := tryStart(t, c)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// tryStart starts a server of c on loopback listeners, shut down when the
// test ends, or returns Start's error.
func tryStart(t *testing.T, c *config.Config) (*Server, error) {
	t.Helper()
	h, err := Start(context.Background(), c, Options{Listener: loopback(t), AdminListener: loopback(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return h, nil
}

// loopback returns a listener on a free loopback port.
func loopback(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// post sends a request to the host's tracking API and returns the status.
func post(t *testing.T, h *Server, path, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+h.Addr().String()+path, bytes.NewBufferString(body))
	req.SetBasicAuth(writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settled reports whether every destination has decided on n events
// (delivered, filtered, dropped or failed).
func settled(h *Server, n int) bool {
	s := h.Counters().Snapshot()
	if s.Processed < uint64(n) {
		return false
	}
	for _, d := range h.cfg.Destinations {
		ds := s.Destinations[d.Name]
		total := ds.Delivered + ds.Failed + ds.FilteredConsent + ds.FilteredIntegrations
		for _, c := range ds.Dropped {
			total += c
		}
		var dropped uint64
		for _, c := range s.Dropped {
			dropped += c
		}
		if total+dropped < uint64(n) {
			return false
		}
	}
	return true
}

// TestWorkedCases sends the eleven worked cases of consent-routing.md (and
// a twelfth: a repeated category) through the real server and checks which
// webhook sinks receive them.
func TestWorkedCases(t *testing.T) {
	mappings := map[string][][]string{ // facebook, google-ads, amplitude
		"ad+analytics": {{"ad"}, {"ad"}, {"analytics"}},
		"none":         {nil, nil, nil},
		"ad":           {{"ad"}, {"ad"}, nil},
		"overlap":      {{"ad", "analytics"}, {"ad"}, {"analytics"}},
	}
	const fbAmp = `{"facebook":true,"amplitude":false}`
	cases := []struct {
		n                       int
		consent, mapping, integ string
		want                    []string
	}{
		{1, "", "ad+analytics", "", []string{"amplitude", "facebook", "google-ads", "webhook"}},
		{2, `{"categoryPreferences":{}}`, "ad+analytics", "", []string{"webhook"}},
		{3, "", "ad+analytics", fbAmp, []string{"facebook", "google-ads", "webhook"}},
		{4, `{"categoryPreferences":{}}`, "ad+analytics", fbAmp, []string{"webhook"}},
		{5, `{"categoryPreferences":{"ad":true,"analytics":false}}`, "none", fbAmp, []string{"facebook", "google-ads", "webhook"}},
		{6, `{"categoryPreferences":{"ad":true,"analytics":false}}`, "ad", "", []string{"amplitude", "facebook", "google-ads", "webhook"}},
		{7, `{"categoryPreferences":{"ad":true,"analytics":false}}`, "ad+analytics", fbAmp, []string{"facebook", "google-ads", "webhook"}},
		{8, `{"categoryPreferences":{"ad":true,"analytics":false}}`, "ad+analytics", `{"facebook":false,"amplitude":false}`, []string{"google-ads", "webhook"}},
		{9, `{"categoryPreferences":{"ad":true,"analytics":false}}`, "overlap", fbAmp, []string{"google-ads", "webhook"}},
		{10, `{"categoryPreferences":{"ad":true,"analytics":true}}`, "overlap", fbAmp, []string{"facebook", "google-ads", "webhook"}},
		{11, `{"categoryPreferences":{"ad":false,"analytics":true}}`, "overlap", fbAmp, []string{"webhook"}},
		// Not in the contract: of a category the event repeats, the ingest
		// keeps the first copy (at every depth, so that a destination's
		// decoder, which reads the last, reads what was judged).
		{12, `{"categoryPreferences":{"ad":true,"analytics":true,"ad":false}}`, "ad+analytics", "", []string{"amplitude", "facebook", "google-ads", "webhook"}},
		{13, `{"categoryPreferences":{"ad":false,"analytics":true,"ad":true}}`, "ad+analytics", "", []string{"amplitude", "webhook"}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("case%d", c.n), func(t *testing.T) {
			names := []string{"facebook", "google-ads", "amplitude", "webhook"}
			sinks := make(map[string]*sink)
			var dests []config.Destination
			for i, name := range names {
				sinks[name] = newSink(t)
				var cats []string
				if i < 3 {
					cats = mappings[c.mapping][i]
				}
				dests = append(dests, webhookDest(name, sinks[name].srv.URL, cats...))
			}
			h := start(t, baseConfig(t, nil, nil, dests...))
			ev := `{"userId":"u1","event":"Order Completed","messageId":"case"`
			if c.consent != "" {
				ev += `,"context":{"consent":` + c.consent + `}`
			}
			if c.integ != "" {
				ev += `,"integrations":` + c.integ
			}
			if code := post(t, h, "/v1/track", ev+"}"); code != 200 {
				t.Fatalf("POST /v1/track: %d", code)
			}
			waitFor(t, "the event to settle", func() bool { return settled(h, 1) })
			var got []string
			for name, s := range sinks {
				if len(s.ids()) > 0 {
					got = append(got, name)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Errorf("case %d: receivers %v, want %v", c.n, got, c.want)
			}
		})
	}
}

// consentMatch builds the consent-match example into dir and returns its
// function configuration.
func consentMatch(t *testing.T) config.Function {
	t.Helper()
	wasm := builder.Build(t, "../../examples/consent-match")
	path := filepath.Join(t.TempDir(), "consent-match.wasm")
	if err := os.WriteFile(path, wasm, 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Function{Name: "consent-match", Wasm: path}
}

// TestDestinationDown: one sink answers 503 for a while; the other gets
// its events meanwhile; once the first recovers its backlog arrives in
// full.
func TestDestinationDown(t *testing.T) {
	up, down := newSink(t), newSink(t)
	down.setStatus(http.StatusServiceUnavailable)
	h := start(t, baseConfig(t, nil, nil, webhookDest("up", up.srv.URL), webhookDest("down", down.srv.URL)))
	const n = 200
	for i := range n / 50 {
		var b bytes.Buffer
		b.WriteString(`{"batch":[`)
		for j := range 50 {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"type":"track","event":"e","userId":"u%d","messageId":"m%d"}`, j, i*50+j)
		}
		b.WriteString(`]}`)
		if code := post(t, h, "/v1/batch", b.String()); code != 200 {
			t.Fatalf("POST /v1/batch: %d", code)
		}
	}
	waitFor(t, "the up sink to get everything", func() bool { return len(up.ids()) == n })
	if got := len(down.ids()); got != 0 {
		t.Fatalf("the down sink recorded %d events", got)
	}
	// The down destination's first answer may come after the up one has
	// everything: wait for its retries to be counted.
	waitFor(t, "retries counted for the destination that answers 503", func() bool {
		return h.Counters().Snapshot().Destinations["down"].Retried > 0
	})
	down.setStatus(0)
	waitFor(t, "the backlog to arrive", func() bool { return len(down.ids()) == n })
}
