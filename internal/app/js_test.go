package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/sdk/consent"
)

// jsCheck is a Segment-style JavaScript function: it drops an event whose
// Analytics consent is not the settings' and loops forever on an event
// named "loop".
const jsCheck = `async function onTrack(event, settings) {
  if (event.event === "loop") for (;;) {}
  const prefs = event.context && event.context.consent && event.context.consent.categoryPreferences;
  if (prefs && prefs.Analytics !== settings.analytics) throw new DropEvent('Consent mismatch');
  return event;
}`

// startJS starts a server whose source runs the JavaScript function in
// FILE.js, configured as functions: [{name: check, wasm: FILE.js}]; it
// skips the test in a build without the engine (make js-engine), unless
// INSERTFN_REQUIRE_NODE=1.
func startJS(t *testing.T, code string, dests ...config.Destination) *Server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "check.js")
	if err := os.WriteFile(path, []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	fn := config.Function{Name: "check", Wasm: path, Settings: []byte(`{"analytics":false}`),
		Limits: functions.ManifestLimits{Timeout: functions.Duration{Duration: 200 * time.Millisecond}}}
	return startJSConfig(t, baseConfig(t, []config.Function{fn}, []string{"check"}, dests...))
}

// startJSConfig starts a server of c, whose functions are JavaScript,
// stopped when the test ends; it skips the test in a build without the
// engine (make js-engine), unless INSERTFN_REQUIRE_NODE=1.
func startJSConfig(t *testing.T, c *config.Config) *Server {
	t.Helper()
	h, err := tryStart(t, c)
	if errors.Is(err, runtime.ErrNoJSEngine) {
		if os.Getenv("INSERTFN_REQUIRE_NODE") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestJSFunctionThroughTheServer: a JavaScript function in the
// configuration judges the events of the real server: a DropEvent drops,
// an endless loop is stopped by the time limit (and dropped by the failure
// policy) while the next events flow; a syntax error deployed is refused
// with its file and line, and the live version stays.
func TestJSFunctionThroughTheServer(t *testing.T) {
	out := newSink(t)
	h := startJS(t, jsCheck, webhookDest("out", out.srv.URL))
	events := []string{
		`{"userId":"u1","event":"Order Completed","messageId":"match","context":{"consent":{"categoryPreferences":{"Analytics":false}}}}`,
		`{"userId":"u1","event":"Order Completed","messageId":"mismatch","context":{"consent":{"categoryPreferences":{"Analytics":true}}}}`,
		`{"userId":"u1","event":"loop","messageId":"loop"}`,
		`{"userId":"u1","event":"After the loop","messageId":"after"}`,
	}
	for _, ev := range events {
		if code := post(t, h, "/v1/track", ev); code != 200 {
			t.Fatalf("POST %s: %d", ev, code)
		}
	}
	waitFor(t, "the events to settle", func() bool { return settled(h, len(events)) })
	got := out.ids()
	slices.Sort(got)
	if !slices.Equal(got, []string{"after", "match"}) {
		t.Errorf("delivered %v, want after and match", got)
	}
	s := h.Counters().Snapshot()
	if s.Dropped["Consent mismatch"] != 1 {
		t.Errorf("drops by reason %v, want one Consent mismatch", s.Dropped)
	}
	if fs := s.Functions["check"]; fs.Runs != 4 || fs.Dropped != 1 || fs.Failed != 1 || fs.Delivered != 2 {
		t.Errorf("function counts %+v, want 4 runs: 2 delivered, 1 dropped, 1 failed (the loop)", fs)
	}

	// A syntax error deployed as the admin API deploys (its version
	// store): refused with the file and line, the live version stays.
	ctx := context.Background()
	_, err := h.versions.Deploy(ctx, functions.Manifest{Name: "check", Runtime: functions.RuntimeJS}, []byte("async function onTrack(event) {\n  return event +\n}\n"))
	var refused *functions.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "check.js:3: SyntaxError") {
		t.Errorf("syntax error deployed: %v, want a refusal naming check.js:3", err)
	}
	if live, err := h.registry.Active("check"); err != nil || live.Hash != runtime.Hash([]byte(jsCheck)) {
		t.Errorf("live version after the refused deploy: %v, want the configured file's", err)
	}
	if code := post(t, h, "/v1/track", `{"userId":"u1","event":"Still Live","messageId":"still"}`); code != 200 {
		t.Fatal(code)
	}
	waitFor(t, "the event after the refused upload", func() bool { return slices.Contains(out.ids(), "still") })
}

// TestJSSyntaxErrorInTheConfiguration: a server whose configured
// JavaScript function does not parse does not start, and says where.
func TestJSSyntaxErrorInTheConfiguration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.js")
	if err := os.WriteFile(path, []byte("function onTrack(event) {\n  return event +\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := baseConfig(t, []config.Function{{Name: "check", Wasm: path}}, []string{"check"})
	h, err := Start(context.Background(), c, Options{Listener: loopback(t), AdminListener: loopback(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if errors.Is(err, runtime.ErrNoJSEngine) {
		if os.Getenv("INSERTFN_REQUIRE_NODE") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err == nil {
		_ = h.Shutdown(context.Background())
		t.Fatal("a server started with a function that does not parse")
	}
	if !strings.Contains(err.Error(), "broken.js:3: SyntaxError") {
		t.Errorf("error %q, want it to name broken.js:3", err)
	}
}

// TestJSDeployThroughTheAdminAPI: a JavaScript file uploaded through the
// admin API (its manifest says runtime js, as insertfn deploy sets it for
// a .js file) goes live; without the runtime, the body is refused as not
// a WebAssembly module, saying how to deploy JavaScript.
func TestJSDeployThroughTheAdminAPI(t *testing.T) {
	out := newSink(t)
	h := startJS(t, jsCheck, webhookDest("out", out.srv.URL))
	c := &admin.Client{URL: "http://" + h.AdminAddr().String(), Token: h.AdminToken()}
	ctx := context.Background()
	dropAll := []byte("function onTrack(event) { throw new DropEvent('closed for the day') }")
	_, err := c.Deploy(ctx, functions.Manifest{Name: "check"}, dropAll)
	if err == nil || !strings.Contains(err.Error(), `"runtime": "js"`) {
		t.Errorf("a JavaScript body without runtime js: %v, want a refusal that names the runtime", err)
	}
	info, err := c.Deploy(ctx, functions.Manifest{Name: "check", Runtime: functions.RuntimeJS}, dropAll)
	if err != nil {
		t.Fatal(err)
	}
	if info.Hash != runtime.Hash(dropAll) {
		t.Errorf("live version %s, want the uploaded file's", info.Hash)
	}
	if code := post(t, h, "/v1/track", `{"userId":"u1","event":"Viewed","messageId":"closed"}`); code != 200 {
		t.Fatal(code)
	}
	waitFor(t, "the event to be dropped", func() bool {
		return h.Counters().Snapshot().Dropped["closed for the day"] == 1
	})
	if slices.Contains(out.ids(), "closed") {
		t.Error("the event reached the destination; the uploaded function drops every event")
	}
}

// TestJSFetchExampleThroughTheServer runs examples/consent-match-js-fetch,
// a Segment function that fetches stored consent from the user's consent
// service, in the real server: configured in YAML with its fetch.allow,
// against a local service standing in for theirs.
func TestJSFetchExampleThroughTheServer(t *testing.T) {
	var requests atomic.Int64
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if user, _, _ := r.BasicAuth(); user != "key-1" {
			http.Error(w, "bad key", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v1/consent/u1":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"categoryPreferences":{"Advertising":false,"Analytics":true}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer svc.Close()
	example, err := filepath.Abs(filepath.Join("..", "..", "examples", "consent-match-js-fetch", "index.js"))
	if err != nil {
		t.Fatal(err)
	}
	var fn config.Function
	y := fmt.Sprintf("name: consent\nwasm: %s\nsettings: {consentServiceUrl: %q, apiKey: key-1}\nfetch: {allow: [%q], timeout: 1s}\nlimits: {timeout: 10s}\n",
		example, svc.URL+"/v1/", svc.URL+"/v1/")
	if err := yaml.Unmarshal([]byte(y), &fn); err != nil {
		t.Fatal(err)
	}
	out := newSink(t)
	c := baseConfig(t, []config.Function{fn}, []string{"consent"}, webhookDest("out", out.srv.URL))
	h := startJSConfig(t, c)
	events := []string{
		`{"userId":"u1","event":"Order Completed","messageId":"match","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
		`{"userId":"u1","event":"Order Completed","messageId":"mismatch","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
		`{"userId":"u2","event":"Order Completed","messageId":"no-record","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
	}
	for _, ev := range events {
		if code := post(t, h, "/v1/track", ev); code != 200 {
			t.Fatalf("POST %s: %d", ev, code)
		}
	}
	waitFor(t, "the events to settle", func() bool { return settled(h, len(events)) })
	got := out.ids()
	slices.Sort(got)
	if !slices.Equal(got, []string{"match", "no-record"}) {
		t.Errorf("delivered %v, want match and no-record", got)
	}
	if s := h.Counters().Snapshot(); s.Dropped["Consent mismatch"] != 1 {
		t.Errorf("drops by reason %v, want one Consent mismatch", s.Dropped)
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("the consent service got %d requests, want 3", n)
	}
}

// TestJSFastPathExampleThroughTheServer runs examples/consent-match-js,
// which asks the server's own consent store through
// insertfn.consent.compare, in the real server: a stale event is dropped,
// a matching one delivered, and a consent update sent to the tracking API
// is what the next event is judged by.
func TestJSFastPathExampleThroughTheServer(t *testing.T) {
	example, err := filepath.Abs(filepath.Join("..", "..", "examples", "consent-match-js", "index.js"))
	if err != nil {
		t.Fatal(err)
	}
	out := newSink(t)
	c := baseConfig(t, []config.Function{{Name: "consent-match-js", Wasm: example}}, []string{"consent-match-js"}, webhookDest("out", out.srv.URL))
	h := startJSConfig(t, c)
	if _, err := h.Store().Update(context.Background(), consentstore.Update{Source: "test", Record: consent.Record{ID: "u1",
		Categories: []consent.Category{{Name: "Advertising", Consented: false, Timestamp: 1000}}}}); err != nil {
		t.Fatal(err)
	}
	events := []string{
		`{"userId":"u1","event":"Order Completed","messageId":"match","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
		`{"userId":"u1","event":"Order Completed","messageId":"stale","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
	}
	for _, ev := range events {
		if code := post(t, h, "/v1/track", ev); code != 200 {
			t.Fatalf("POST %s: %d", ev, code)
		}
	}
	waitFor(t, "the events to settle", func() bool { return settled(h, len(events)) })
	// The person says yes to Advertising (Segment's consent update event);
	// the next event with the new consent is delivered.
	if code := post(t, h, "/v1/track", `{"userId":"u1","event":"Segment Consent Preference Updated","messageId":"update",`+
		`"context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`); code != 200 {
		t.Fatal(code)
	}
	if code := post(t, h, "/v1/track", `{"userId":"u1","event":"Order Completed","messageId":"after",`+
		`"context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`); code != 200 {
		t.Fatal(code)
	}
	waitFor(t, "the events to settle", func() bool { return settled(h, len(events)+2) })
	got := out.ids()
	slices.Sort(got)
	if !slices.Equal(got, []string{"after", "match", "update"}) {
		t.Errorf("delivered %v, want after, match and update", got)
	}
	if s := h.Counters().Snapshot(); s.Dropped["Consent mismatch"] != 1 {
		t.Errorf("drops by reason %v, want one Consent mismatch", s.Dropped)
	}
}
