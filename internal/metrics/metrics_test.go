package metrics_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/ingest"
	"github.com/insertfn/insertfn/internal/metrics"
	"github.com/insertfn/insertfn/internal/pipeline"
	"github.com/insertfn/insertfn/internal/queue"
	"github.com/insertfn/insertfn/internal/wasmbuild"
	"github.com/insertfn/insertfn/runtime"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"
)

// newRegistry returns a registry with the verdicts guest deployed as each
// of names (policy drop: a failing function drops the event).
func newRegistry(t *testing.T, names ...string) *functions.Registry {
	t.Helper()
	eng, err := runtime.NewEngine(runtime.Config{CacheDir: wasmbuild.CompilationCache()})
	if err != nil {
		t.Fatal(err)
	}
	reg := functions.NewRegistry(eng, nil)
	t.Cleanup(func() {
		reg.Close(context.Background())
		eng.Close(context.Background())
	})
	wasm := builder.Build(t, "../../functions/testdata/verdicts")
	for _, n := range names {
		m := functions.Manifest{Name: n, Settings: []byte(`{"version":"1"}`), Limits: functions.ManifestLimits{PoolSize: 1}}
		if _, err := reg.Deploy(context.Background(), m, wasm); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

func openQueue(t *testing.T) queue.Queue {
	t.Helper()
	q, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{Sync: queue.SyncNever, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// request serves one request on srv's handler and returns the status.
func request(srv *ingest.Server, method, path, auth, body string) int {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	if auth != "" {
		ctx.Request.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(auth+":")))
	}
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.SetBodyString(body)
	srv.Handler()(&ctx)
	return ctx.Response.StatusCode()
}

// TestScrapeAfterKnownEvents runs a known set of events through a real
// processor (with real functions), server and queue, and checks every
// exposed count, and that per destination the counts add up: events that
// reached routing = delivered + failed + dropped + filtered.
func TestScrapeAfterKnownEvents(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t, "src", "dst")
	counters := pipeline.NewCounters()
	proc, err := pipeline.NewProcessor(reg, nil,
		[]pipeline.Source{{Name: "web", Functions: []string{"src"}}, {Name: "app"}},
		[]pipeline.Destination{{Name: "a", Categories: []string{"Advertising"}}, {Name: "b", Functions: []string{"dst"}}},
		counters)
	if err != nil {
		t.Fatal(err)
	}
	events := []struct{ source, event string }{
		{"web", `{"type":"track","event":"e1","verdict":"deliver"}`},                                                 // a, b delivered
		{"web", `{"type":"track","event":"e2","verdict":"drop"}`},                                                    // src drops: "asked to drop"
		{"web", `{"type":"track","event":"e3","verdict":"invalid"}`},                                                 // src drops: InvalidEventPayload
		{"web", `{"type":"track","event":"e4","verdict":"error"}`},                                                   // src fails, policy drop: FunctionError
		{"app", `{"type":"track","event":"e5","verdict":"drop"}`},                                                    // a gets it; dst drops it for b
		{"app", `{"type":"track","event":"e6","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`}, // a filtered by consent; b gets it
		{"app", `{"type":"track","event":"e7","integrations":{"b":false}}`},                                          // a gets it; b filtered by integrations
	}
	var res pipeline.Result
	outputs := map[string]int{}
	for _, e := range events {
		if err := proc.Process(ctx, e.source, []byte(e.event), &res); err != nil {
			t.Fatalf("%s: %v", e.event, err)
		}
		for i, out := range res.Outputs {
			if out != nil {
				outputs[proc.Destinations()[i].Name]++
			}
		}
	}
	if outputs["a"] != 3 || outputs["b"] != 2 {
		t.Fatalf("outputs = %v, want a:3 b:2", outputs)
	}
	counters.Delivered("a", 3)
	counters.Delivered("b", 1)
	counters.Failed("b", 1)

	srv, err := ingest.New(ingest.Config{}, []ingest.Source{{Name: "web", WriteKeys: []string{"wk"}}},
		ingest.AccepterFunc(func(context.Context, string, [][]byte) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		method, path, auth, body string
		status                   int
	}{
		{"POST", "/v1/batch", "wk", `{"batch":[{"type":"track","event":"x","userId":"u1"},{"type":"identify","userId":"u1"}]}`, 200},
		{"POST", "/v1/track", "wk", `{"type":"track","userId":"u1"}`, 400}, // no event name: invalid
		{"POST", "/v1/track", "nope", `{}`, 401},
		{"GET", "/v1/track", "", ``, 405},
		{"POST", "/nowhere", "", ``, 404},
	} {
		if got := request(srv, r.method, r.path, r.auth, r.body); got != r.status {
			t.Fatalf("%s %s: status %d, want %d", r.method, r.path, got, r.status)
		}
	}

	q := openQueue(t)
	if err := q.Append(ctx, queue.InboxTopic, []byte("12345")); err != nil {
		t.Fatal(err)
	}
	if err := q.Append(ctx, queue.DestinationTopic("a"), []byte("a1"), []byte("a22"), []byte("a333")); err != nil {
		t.Fatal(err)
	}
	if err := q.Append(ctx, queue.DestinationTopic("gone"), []byte("g")); err != nil {
		t.Fatal(err)
	}
	c := q.Consumer(queue.DestinationTopic("a"))
	items, err := c.Next(ctx, 2, 0) // a1 and a22 in flight
	if err != nil || len(items) != 2 {
		t.Fatalf("next: %v, %d items", err, len(items))
	}
	if err := c.Dead(ctx, items[1], "test"); err != nil { // a22 dead
		t.Fatal(err)
	}

	m, err := metrics.New(metrics.Sources{Counters: counters, Server: srv, Queue: q, Functions: reg,
		Destinations: []string{"a", "b"}}, metrics.Options{OmitRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	g := m.Registry()
	for _, w := range []struct {
		name   string
		labels []string
		want   float64
	}{
		// Ingest.
		{"insertfn_ingest_requests_total", nil, 5},
		{"insertfn_ingest_events_total", nil, 3},
		{"insertfn_ingest_events_accepted_total", nil, 2},
		{"insertfn_ingest_events_duplicates_total", nil, 0},
		{"insertfn_ingest_events_invalid_total", nil, 1},
		{"insertfn_ingest_requests_rejected_total", []string{"reason", "unauthorized"}, 1},
		{"insertfn_ingest_requests_rejected_total", []string{"reason", "method_not_allowed"}, 1},
		{"insertfn_ingest_requests_rejected_total", []string{"reason", "not_found"}, 1},
		{"insertfn_ingest_requests_rejected_total", []string{"reason", "malformed"}, 0},
		{"insertfn_ingest_requests_rejected_total", []string{"reason", "backpressure"}, 0},
		// Pipeline.
		{"insertfn_pipeline_events_processed_total", nil, 7},
		{"insertfn_pipeline_events_dropped_total", []string{"reason", "asked to drop"}, 1},
		{"insertfn_pipeline_events_dropped_total", []string{"reason", "InvalidEventPayload"}, 1},
		{"insertfn_pipeline_events_dropped_total", []string{"reason", "FunctionError"}, 1},
		{"insertfn_consent_updates_total", nil, 0},
		{"insertfn_destination_events_delivered_total", []string{"destination", "a"}, 3},
		{"insertfn_destination_events_delivered_total", []string{"destination", "b"}, 1},
		{"insertfn_destination_events_failed_total", []string{"destination", "a"}, 0},
		{"insertfn_destination_events_failed_total", []string{"destination", "b"}, 1},
		{"insertfn_destination_events_filtered_total", []string{"destination", "a", "reason", "consent"}, 1},
		{"insertfn_destination_events_filtered_total", []string{"destination", "a", "reason", "integrations"}, 0},
		{"insertfn_destination_events_filtered_total", []string{"destination", "b", "reason", "consent"}, 0},
		{"insertfn_destination_events_filtered_total", []string{"destination", "b", "reason", "integrations"}, 1},
		{"insertfn_destination_events_dropped_total", []string{"destination", "b", "reason", "asked to drop"}, 1},
		{"insertfn_function_events_total", []string{"function", "src", "result", "delivered"}, 1},
		{"insertfn_function_events_total", []string{"function", "src", "result", "dropped"}, 2},
		{"insertfn_function_events_total", []string{"function", "src", "result", "failed"}, 1},
		{"insertfn_function_events_total", []string{"function", "dst", "result", "delivered"}, 2},
		{"insertfn_function_events_total", []string{"function", "dst", "result", "dropped"}, 1},
		{"insertfn_function_events_total", []string{"function", "dst", "result", "failed"}, 0},
		// Runtime pools.
		{"insertfn_function_invocations_total", []string{"function", "src"}, 4},
		{"insertfn_function_invocations_total", []string{"function", "dst"}, 3},
		{"insertfn_function_instances_discarded_total", []string{"function", "src"}, 0},
		// Queue.
		{"insertfn_inbox_queue_items", []string{"state", "ready"}, 1},
		{"insertfn_inbox_queue_bytes", []string{"state", "ready"}, 5},
		{"insertfn_destination_queue_items", []string{"destination", "a", "state", "ready"}, 1},
		{"insertfn_destination_queue_bytes", []string{"destination", "a", "state", "ready"}, 4},
		{"insertfn_destination_queue_items", []string{"destination", "a", "state", "in_flight"}, 1},
		{"insertfn_destination_queue_bytes", []string{"destination", "a", "state", "in_flight"}, 2},
		{"insertfn_destination_queue_items", []string{"destination", "a", "state", "dead"}, 1},
		{"insertfn_destination_queue_bytes", []string{"destination", "a", "state", "dead"}, 3},
		{"insertfn_destination_queue_items", []string{"destination", "a", "state", "retrying"}, 0},
		{"insertfn_destination_queue_items", []string{"destination", "b", "state", "ready"}, 0}, // configured, no topic yet
		{"insertfn_destination_queue_items", []string{"destination", "gone", "state", "ready"}, 1},
		{"insertfn_queue_used_bytes", nil, 5 + 2 + 3 + 4 + 1 + 5*queue.ItemOverhead},
		{"insertfn_queue_limit_bytes", nil, 1 << 20},
	} {
		if got := value(t, g, w.name, w.labels...); got != w.want {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.want)
		}
	}
	if n := series(t, g, "insertfn_pipeline_events_dropped_total"); n != 3 {
		t.Errorf("%d source drop reasons exposed, want 3", n)
	}
	for _, name := range []string{"src", "dst"} {
		v, err := reg.Active(name)
		if err != nil {
			t.Fatal(err)
		}
		st := v.Function().Stats()
		if got := value(t, g, "insertfn_function_instances_idle", "function", name); got != float64(st.Idle) {
			t.Errorf("%s: idle %v, want %d", name, got, st.Idle)
		}
		if got := value(t, g, "insertfn_function_instances_started_total", "function", name); got != float64(st.Started) || got < 1 {
			t.Errorf("%s: started %v, want %d (at least 1)", name, got, st.Started)
		}
	}

	// Per destination, what reached routing adds up.
	routed := value(t, g, "insertfn_pipeline_events_processed_total")
	for _, l := range []string{"asked to drop", "InvalidEventPayload", "FunctionError"} {
		routed -= value(t, g, "insertfn_pipeline_events_dropped_total", "reason", l)
	}
	for _, d := range []string{"a", "b"} {
		sum := value(t, g, "insertfn_destination_events_delivered_total", "destination", d) +
			value(t, g, "insertfn_destination_events_failed_total", "destination", d) +
			value(t, g, "insertfn_destination_events_filtered_total", "destination", d, "reason", "consent") +
			value(t, g, "insertfn_destination_events_filtered_total", "destination", d, "reason", "integrations")
		if v, ok := lookup(t, g, "insertfn_destination_events_dropped_total", "destination", d, "reason", "asked to drop"); ok {
			sum += v
		}
		if sum != routed {
			t.Errorf("destination %s: delivered+failed+filtered+dropped = %v, want %v routed", d, sum, routed)
		}
	}

	// The counters are read at scrape time: a change shows in the next
	// scrape.
	counters.Delivered("a", 2)
	if got := value(t, g, "insertfn_destination_events_delivered_total", "destination", "a"); got != 5 {
		t.Errorf("after 2 more deliveries: %v, want 5", got)
	}
}

// TestHandlerServesExposition scrapes the handler over HTTP.
func TestHandlerServesExposition(t *testing.T) {
	counters := pipeline.NewCounters()
	counters.Delivered("webhook", 7)
	m, err := metrics.New(metrics.Sources{Counters: counters}, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(m.Handler())
	defer ts.Close()
	res, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	for _, want := range []string{
		`insertfn_destination_events_delivered_total{destination="webhook"} 7`,
		"# TYPE insertfn_destination_events_delivered_total counter",
		"go_goroutines ", // runtime metrics unless omitted
		"promhttp_metric_handler_requests_total",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

// TestNilSources: every part may be left out.
func TestNilSources(t *testing.T) {
	m, err := metrics.New(metrics.Sources{}, metrics.Options{OmitRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, m.Registry(), "insertfn_"); len(got) != 0 {
		t.Errorf("metrics with no sources: %v", got)
	}
}

// TestLint checks every metric name, help and label against Prometheus'
// conventions, with every metric family present.
func TestLint(t *testing.T) {
	ctx := context.Background()
	counters := pipeline.NewCounters()
	reg := newRegistry(t, "f")
	proc, err := pipeline.NewProcessor(reg, nil, []pipeline.Source{{Name: "web", Functions: []string{"f"}}},
		[]pipeline.Destination{{Name: "d", Functions: []string{"f"}}}, counters)
	if err != nil {
		t.Fatal(err)
	}
	var res pipeline.Result
	for _, ev := range []string{`{"verdict":"drop"}`, `{"verdict":"deliver"}`} {
		if err := proc.Process(ctx, "web", []byte(ev), &res); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := ingest.New(ingest.Config{}, []ingest.Source{{Name: "web", WriteKeys: []string{"wk"}}},
		ingest.AccepterFunc(func(context.Context, string, [][]byte) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	counters.Delivered("d", 1)
	counters.Failed("d", 0)
	q := openQueue(t)
	m, err := metrics.New(metrics.Sources{Counters: counters, Server: srv, Queue: q, Functions: reg, Destinations: []string{"d"}},
		metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	obs := m.Observer()
	obs.ObserveFunction("f", &functions.Outcome{Result: runtime.Result{Verdict: runtime.Fail, Kind: runtime.KindTrap, Duration: 1000}, Attempts: 2})
	obs.ObserveEvents("web", "track", 1)
	store := m.InstrumentStore(mapStore{}, "memory")
	store.Get(ctx, "x")

	want := []string{
		"insertfn_ingest_requests_total", "insertfn_ingest_requests_rejected_total", "insertfn_ingest_events_total",
		"insertfn_ingest_events_accepted_total", "insertfn_ingest_events_duplicates_total", "insertfn_ingest_events_invalid_total",
		"insertfn_events_received_total",
		"insertfn_pipeline_events_processed_total", "insertfn_pipeline_events_dropped_total",
		"insertfn_consent_updates_total", "insertfn_consent_updates_rejected_total",
		"insertfn_destination_events_delivered_total", "insertfn_destination_events_failed_total",
		"insertfn_destination_events_filtered_total",
		"insertfn_destination_queue_items", "insertfn_destination_queue_bytes", "insertfn_inbox_queue_items",
		"insertfn_inbox_queue_bytes", "insertfn_queue_used_bytes", "insertfn_queue_limit_bytes",
		"insertfn_function_events_total", "insertfn_function_invocations_total", "insertfn_function_instances_started_total",
		"insertfn_function_instances_discarded_total", "insertfn_function_instances_recycled_total",
		"insertfn_function_instances_idle", "insertfn_function_duration_seconds", "insertfn_function_errors_total",
		"insertfn_function_retries_total", "insertfn_consent_lookups_total", "insertfn_consent_lookup_duration_seconds",
	}
	got := names(t, m.Registry(), "insertfn_")
	for _, w := range want {
		found := false
		for _, n := range got {
			found = found || n == w
		}
		if !found {
			t.Errorf("metric %s not exposed", w)
		}
	}
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestDropReasonsBounded: reasons are free text a function chooses; past
// MaxReasons they are summed under one series, and the ones admitted
// keep their series.
func TestDropReasonsBounded(t *testing.T) {
	ctx := context.Background()
	counters := pipeline.NewCounters()
	reg := newRegistry(t, "f")
	proc, err := pipeline.NewProcessor(reg, nil, []pipeline.Source{{Name: "web", Functions: []string{"f"}}},
		[]pipeline.Destination{{Name: "d"}}, counters)
	if err != nil {
		t.Fatal(err)
	}
	m, err := metrics.New(metrics.Sources{Counters: counters}, metrics.Options{MaxReasons: 2, OmitRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	var res pipeline.Result
	process := func(ev string) {
		t.Helper()
		if err := proc.Process(ctx, "web", []byte(ev), &res); err != nil {
			t.Fatal(err)
		}
	}
	process(`{"verdict":"invalid"}`) // InvalidEventPayload
	process(`{"verdict":"drop"}`)    // asked to drop
	g := m.Registry()
	value(t, g, "insertfn_pipeline_events_dropped_total", "reason", "asked to drop") // admits both
	process(`{"verdict":"error"}`)                                                   // FunctionError: a third reason
	process(`{"verdict":"error"}`)
	process(`{"verdict":"drop"}`)
	for _, w := range []struct {
		reason string
		want   float64
	}{{"InvalidEventPayload", 1}, {"asked to drop", 2}, {metrics.OtherReason, 2}} {
		if got := value(t, g, "insertfn_pipeline_events_dropped_total", "reason", w.reason); got != w.want {
			t.Errorf("reason %q: %v, want %v", w.reason, got, w.want)
		}
	}
	if n := series(t, g, "insertfn_pipeline_events_dropped_total"); n != 3 {
		t.Errorf("%d series, want 3", n)
	}
}

func TestNewRejectsBadBuckets(t *testing.T) {
	for _, b := range [][]float64{{}, {1, 1}, {2, 1}} {
		if _, err := metrics.New(metrics.Sources{}, metrics.Options{FunctionBuckets: b}); err == nil {
			t.Errorf("function buckets %v accepted", b)
		}
		if _, err := metrics.New(metrics.Sources{}, metrics.Options{LookupBuckets: b}); err == nil {
			t.Errorf("lookup buckets %v accepted", b)
		}
	}
}

// TestPrivateRegistries: two Metrics in one process do not share series.
func TestPrivateRegistries(t *testing.T) {
	a, err := metrics.New(metrics.Sources{}, metrics.Options{OmitRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := metrics.New(metrics.Sources{}, metrics.Options{OmitRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	a.Observer().ObserveEvents("web", "track", 1)
	if got := value(t, a.Registry(), "insertfn_events_received_total", "source", "web", "type", "track"); got != 1 {
		t.Errorf("a: %v, want 1", got)
	}
	if _, ok := lookup(t, b.Registry(), "insertfn_events_received_total", "source", "web", "type", "track"); ok {
		t.Error("b sees a's series")
	}
}

// TestConfiguredDestinationsStartAtZero: a destination's series exist
// before its first event.
func TestConfiguredDestinationsStartAtZero(t *testing.T) {
	m, err := metrics.New(metrics.Sources{Counters: pipeline.NewCounters(), Destinations: []string{"x"}},
		metrics.Options{OmitRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		name   string
		labels []string
	}{
		{"insertfn_destination_events_delivered_total", []string{"destination", "x"}},
		{"insertfn_destination_events_failed_total", []string{"destination", "x"}},
		{"insertfn_destination_events_filtered_total", []string{"destination", "x", "reason", "consent"}},
		{"insertfn_destination_events_filtered_total", []string{"destination", "x", "reason", "integrations"}},
	} {
		if got := value(t, m.Registry(), w.name, w.labels...); got != 0 {
			t.Errorf("%s%v = %v, want 0", w.name, w.labels, got)
		}
	}
}
