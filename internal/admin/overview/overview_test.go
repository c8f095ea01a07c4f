package overview

import (
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/insertfn/insertfn/internal/pipeline"
	"github.com/insertfn/insertfn/internal/testkit/chromiumtest"
)

// flows returns an overview holding a known account for source "web".
func flows(t *testing.T) *pipeline.Overview {
	t.Helper()
	o := pipeline.NewOverview(0)
	o.Add(pipeline.Flow{Source: "web", Received: 120,
		Dropped: []pipeline.Drop{{Function: "consent-match", Reason: "Consent mismatch", Count: 20}},
		Destinations: []pipeline.DestinationFlow{
			{Name: "Google Ads", Delivered: 70, Failed: 2, FilteredConsent: 28},
			{Name: "Amplitude", Delivered: 60, FilteredConsent: 30, FilteredIntegrations: 10},
		}})
	return o
}

// fakeMetrics are the metric families the recorder reads, in a registry
// of their own.
type fakeMetrics struct {
	reg      *prometheus.Registry
	runs     *prometheus.CounterVec
	errs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	lookups  *prometheus.CounterVec
	dead     *prometheus.GaugeVec
}

func newFakeMetrics(t *testing.T) *fakeMetrics {
	t.Helper()
	m := &fakeMetrics{reg: prometheus.NewRegistry(),
		runs:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "insertfn_function_events_total"}, []string{"function", "result"}),
		errs:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "insertfn_function_errors_total"}, []string{"function", "kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "insertfn_function_duration_seconds", Buckets: []float64{0.001, 0.002, 0.004}}, []string{"function"}),
		lookups:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "insertfn_consent_lookups_total"}, []string{"backend", "result"}),
		dead:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "insertfn_destination_queue_items"}, []string{"destination", "state"}),
	}
	m.reg.MustRegister(m.runs, m.errs, m.duration, m.lookups, m.dead)
	return m
}

// clock is a settable time for an Overview.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestOverview(t *testing.T, cfg Config) (*Overview, *clock) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{time.Now().Truncate(time.Minute).Add(10 * time.Second)}
	o.now = c.now
	return o, c
}

// TestRecorderMinutes: what the totals grew by goes to the minute of the
// reading; a total that went down (the process restarted, the counters
// began again) counts whole; a gauge keeps its last value.
func TestRecorderMinutes(t *testing.T) {
	m := newFakeMetrics(t)
	o, c := newTestOverview(t, Config{Flows: pipeline.NewOverview(0), Metrics: m.reg})
	runs := m.runs.WithLabelValues("consent-match", "delivered")
	runs.Add(5)
	m.dead.WithLabelValues("ads", "dead").Set(3)
	if err := o.Sample(); err != nil {
		t.Fatal(err)
	}
	runs.Add(2)
	c.t = c.t.Add(30 * time.Second) // still 10:00
	o.Sample()
	c.t = c.t.Add(time.Minute) // 10:01
	runs.Add(4)
	m.dead.WithLabelValues("ads", "dead").Set(1)
	o.Sample()

	// A new process: its counter starts again, from zero.
	m2 := newFakeMetrics(t)
	m2.runs.WithLabelValues("consent-match", "delivered").Add(3)
	o.rec.gather = m2.reg
	c.t = c.t.Add(time.Minute) // 10:02
	o.Sample()

	lo := c.t.Unix()/60 - 2
	got := o.rec.series(kindRuns, lo, lo+2, 0)[seriesKey{kindRuns, "consent-match", "delivered"}]
	if want := []float64{7, 4, 3}; !equal(got, want) {
		t.Errorf("runs per minute %v, want %v", got, want)
	}
	dead := o.rec.series(kindDead, lo, lo+2, math.NaN())[seriesKey{Kind: kindDead, A: "ads"}]
	if dead[0] != 3 || dead[1] != 1 || !math.IsNaN(dead[2]) {
		t.Errorf("dead letters per minute %v, want [3 1 NaN]", dead)
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestQuantile(t *testing.T) {
	bs := []bucket{{0.004, 10}, {0.001, 2}, {0.002, 6}, {math.Inf(1), 10}}
	if q := quantile(0.5, bs); math.Abs(q-0.00175) > 1e-12 {
		t.Errorf("p50 = %v, want 0.00175 (rank 5 of 10, 3/4 into (1ms, 2ms])", q)
	}
	if q := quantile(0.99, bs); math.Abs(q-0.00395) > 1e-12 {
		t.Errorf("p99 = %v, want 0.00395 (rank 9.9, 3.9/4 into (2ms, 4ms])", q)
	}
	if q := quantile(0.99, []bucket{{0.001, 0}, {math.Inf(1), 4}}); q != 0.001 {
		t.Errorf("p99 in the +Inf bucket = %v, want the highest finite bound", q)
	}
	if q := quantile(0.5, []bucket{{0.001, 0}, {math.Inf(1), 0}}); !math.IsNaN(q) {
		t.Errorf("no observations: %v, want NaN", q)
	}
}

// TestData: the charts' data of a window: the source's flows minute by
// minute, the configured destinations even without events, arrays that
// encode as JSON arrays, and null for a minute without timed runs.
func TestData(t *testing.T) {
	f := pipeline.NewOverview(0)
	o, _ := newTestOverview(t, Config{Flows: f, Destinations: []string{"ads", "idle"}})
	o.now = time.Now // the pipeline's overview counts on the real clock
	f.Add(pipeline.Flow{Source: "web", Received: 3,
		Dropped:      []pipeline.Drop{{Function: "consent-match", Reason: "Consent mismatch", Count: 1}},
		Destinations: []pipeline.DestinationFlow{{Name: "ads", Delivered: 2}}})
	d := o.Data("web", 60)
	if d.Minutes != 60 || len(d.Received) != 60 || d.From.Second() != 0 {
		t.Fatalf("window: %d minutes from %v, %d values", d.Minutes, d.From, len(d.Received))
	}
	var received, delivered uint64
	for i := range d.Received {
		received += d.Received[i]
		delivered += d.Destinations[0].Delivered[i]
	}
	if d.Flow.Received != 3 || received != 3 || len(d.Dropped) != 1 || d.Dropped[0].Name != "consent-match: Consent mismatch" || d.Dropped[0].Total != 1 {
		t.Errorf("flows: %+v, received %d, dropped %+v", d.Flow, received, d.Dropped)
	}
	if len(d.Destinations) != 2 || d.Destinations[0].Name != "ads" || delivered != 2 || d.Destinations[1].Name != "idle" {
		t.Errorf("destinations: %+v", d.Destinations)
	}
	b, err := json.Marshal(o.Data("none", 5))
	if err != nil {
		t.Fatalf("Data does not encode: %v", err)
	}
	for _, want := range []string{`"dropped":[]`, `"functions":[]`, `"consent_lookups":[]`, `"dead":[null,null,null,null,null]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("data of a source without events lacks %s: %s", want, b)
		}
	}
}

// TestDataFromRecorder: the recorder's series in Data, on one clock.
func TestDataFromRecorder(t *testing.T) {
	m := newFakeMetrics(t)
	o, c := newTestOverview(t, Config{Flows: pipeline.NewOverview(0), Metrics: m.reg, Destinations: []string{"ads"},
		Live: func() map[string]string { return map[string]string{"consent-match": "abc123", "unused": "def456"} }})
	m.runs.WithLabelValues("consent-match", "delivered").Add(2)
	m.runs.WithLabelValues("consent-match", "dropped").Add(1)
	m.errs.WithLabelValues("consent-match", "Timeout").Add(1)
	for range 4 {
		m.duration.WithLabelValues("consent-match").Observe(0.0015)
	}
	m.lookups.WithLabelValues("embedded", "found").Add(2)
	m.lookups.WithLabelValues("embedded", "not_found").Add(1)
	m.dead.WithLabelValues("ads", "dead").Set(4)
	o.Sample()
	c.t = c.t.Add(time.Minute)
	d := o.Data("web", 60)

	if len(d.Functions) != 2 || d.Functions[0].Name != "consent-match" || d.Functions[1].Name != "unused" {
		t.Fatalf("functions: %+v", d.Functions)
	}
	fn := d.Functions[0]
	if fn.Version != "abc123" || fn.Runs[58] != 3 || fn.Results["delivered"] != 2 || fn.Results["dropped"] != 1 {
		t.Errorf("consent-match: version %q, runs %v, results %v", fn.Version, fn.Runs[58], fn.Results)
	}
	if len(fn.Errors) != 1 || fn.Errors[0].Name != "Timeout" || fn.Errors[0].Total != 1 {
		t.Errorf("errors: %+v", fn.Errors)
	}
	if p := float64(fn.P50Window); math.Abs(p-1.5) > 1e-9 {
		t.Errorf("p50 over the window %v ms, want 1.5 (all four in (1ms, 2ms])", p)
	}
	if p := float64(fn.P50[58]); math.Abs(p-1.5) > 1e-9 || !math.IsNaN(float64(fn.P50[59])) {
		t.Errorf("p50 per minute: %v then %v, want 1.5 then none", fn.P50[58], fn.P50[59])
	}
	if d.Functions[1].Version != "def456" || len(d.Functions[1].Errors) != 0 {
		t.Errorf("a live function without runs: %+v", d.Functions[1])
	}
	if len(d.Destinations) != 1 || d.Destinations[0].DeadNow != 4 || float64(d.Destinations[0].Dead[58]) != 4 || !math.IsNaN(float64(d.Destinations[0].Dead[59])) {
		t.Errorf("dead letters: %+v", d.Destinations)
	}
	if len(d.ConsentLookups) != 2 || d.ConsentLookups[0].Name != "found (embedded)" || d.ConsentLookups[0].Total != 2 || d.ConsentLookups[1].Name != "not_found (embedded)" {
		t.Errorf("consent lookups: %+v", d.ConsentLookups)
	}
}

// TestHistoryKept: the history one overview saves is what another reads
// at start; an unreadable file is logged and ignored.
func TestHistoryKept(t *testing.T) {
	dir := t.TempDir()
	m := newFakeMetrics(t)
	f := flows(t)
	o, c := newTestOverview(t, Config{Flows: f, Metrics: m.reg, Dir: dir})
	m.runs.WithLabelValues("consent-match", "delivered").Add(9)
	o.Sample()
	if err := o.Save(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want the history alone (no temporary file left)", len(entries))
	}

	f2 := pipeline.NewOverview(0)
	o2, err := New(Config{Flows: f2, Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if got := f2.Flow("web", time.Now().Add(-time.Hour), time.Now()); got.Received != 120 || len(got.Destinations) != 2 {
		t.Errorf("flows after restart: %+v", got)
	}
	lo := c.t.Unix() / 60
	if got := o2.rec.series(kindRuns, lo, lo, 0)[seriesKey{kindRuns, "consent-match", "delivered"}]; !equal(got, []float64{9}) {
		t.Errorf("runs after restart: %v, want [9]", got)
	}

	os.WriteFile(filepath.Join(dir, HistoryFile), []byte(`{"version":1,"flows":[{"source":`), 0o600)
	var logged strings.Builder
	f3 := pipeline.NewOverview(0)
	if _, err := New(Config{Flows: f3, Dir: dir, Logger: slog.New(slog.NewTextHandler(&logged, nil))}); err != nil {
		t.Fatalf("a corrupt history stopped New: %v", err)
	}
	if !strings.Contains(logged.String(), "cannot be read") || len(f3.Sources()) != 0 {
		t.Errorf("corrupt history: logged %q, sources %v", logged.String(), f3.Sources())
	}
}

func TestHandler(t *testing.T) {
	o, _ := newTestOverview(t, Config{Flows: flows(t)})
	o.now = time.Now
	srv := httptest.NewServer(o.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/flow.json?minutes=15")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Sources []string      `json:"sources"`
		Flow    pipeline.Flow `json:"flow"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got.Sources) != 1 || got.Flow.Source != "web" || got.Flow.Received != 120 || got.Flow.Dropped[0].Count != 20 ||
		len(got.Flow.Destinations) != 2 || got.Flow.Destinations[1].Name != "Google Ads" || got.Flow.Destinations[1].FilteredConsent != 28 {
		t.Errorf("flow.json = %+v", got)
	}
	for _, bad := range []string{"/flow.json?minutes=0", "/flow.json?minutes=x", "/flow.json?minutes=99999999", "/data.json?minutes=1441"} {
		r, _ := http.Get(srv.URL + bad)
		r.Body.Close()
		if r.StatusCode != 400 {
			t.Errorf("%s: %d, want 400", bad, r.StatusCode)
		}
	}
	r, _ := http.Get(srv.URL + "/data.json?minutes=1440")
	var d Data
	json.NewDecoder(r.Body).Decode(&d)
	r.Body.Close()
	if r.StatusCode != 200 || d.Minutes != 1440 || len(d.Received) != 1440 || d.Flow.Received != 120 {
		t.Errorf("data.json of a day: %d, %d minutes, received %d", r.StatusCode, d.Minutes, d.Flow.Received)
	}
	r, _ = http.Get(srv.URL + "/")
	r.Body.Close()
	csp := r.Header.Get("Content-Security-Policy")
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(csp, "script-src 'sha256-") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("page: %d %s, CSP %q", r.StatusCode, r.Header.Get("Content-Type"), csp)
	}
}

// TestPageInChromium loads the page in headless Chromium, under its
// Content-Security-Policy, and checks what a person sees: the counts of
// the flow, per destination, and the charts.
func TestPageInChromium(t *testing.T) {
	o, _ := newTestOverview(t, Config{Flows: flows(t), Destinations: []string{"Google Ads", "Amplitude"}})
	o.now = time.Now
	mux := http.NewServeMux()
	mux.Handle("/admin/overview/", http.StripPrefix("/admin/overview", o.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// The page's scripts fill it in: give them virtual time before the DOM
	// is printed.
	run := chromiumtest.Render(t, srv.URL+"/admin/overview/", time.Minute, "--virtual-time-budget=5000", "--enable-logging=stderr")
	dom := run.DOM
	for _, want := range []string{
		`data-ready="true"`,
		`<div class="big" id="received">120</div>`,
		`<div class="big bad" id="dropped">20</div>`,
		`<li>consent-match: Consent mismatch (20)</li>`,
		`data-destination="Google Ads"`,
		`<span>Filtered by end user consent</span><span class="warn">28</span>`,
		`<span>Filtered by integrations object</span><span class="warn">10</span>`,
		`<span>Delivered</span><span class="ok">70</span>`,
		`<span>Failed</span><span class="bad">2</span>`,
		`<figure data-chart="Received">`,
		`<span data-series="received"><i class="sw0"></i>received (120)</span>`,
		`<figure data-chart="Destination Google Ads">`,
		`<span data-series="delivered"><i class="sw0"></i>delivered (70)</span>`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page does not show %s\n%s", want, dom)
		}
	}
	if strings.Contains(run.Log, "Content Security Policy") {
		t.Errorf("the page breaks its own Content-Security-Policy:\n%s", run.Log)
	}
}
