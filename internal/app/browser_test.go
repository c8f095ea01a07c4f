package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/testkit/browsertest"
	"github.com/insertfn/insertfn/internal/testkit/chromiumtest"
	"github.com/insertfn/insertfn/sdk/consent"
)

// The consent the browser test's person has stored (decided on another
// device an hour earlier), the consent platform's choice when the page
// loads (the same), and what the person then chooses in the page.
var (
	browserStored = map[string]bool{"Advertising": true, "Analytics": false, "Functional": true}
	browserAfter  = map[string]bool{"Advertising": false, "Analytics": true, "Functional": true}
)

const browserUser = "u-browser"

// browserBudget is the page's clock (virtual time) for its scenario: the
// scenario needs a few seconds of it, the rest is margin. Chromium runs
// through it at once except while a request is in flight.
const browserBudget = 30 * time.Second

// TestBrowser: Segment's analytics.js behind its consent wrapper, both
// unmodified from npm (internal/testkit/browsertest), in headless Chromium on a
// page from another origin than the server's, sends identify, track and
// page, then a consent change, then more events, and one event stamped
// with stale consent (entry.js's scenario), one request per event and
// batched. Every request gets a 2xx; the consent change is in the store
// before the events after it are checked (they would be dropped
// otherwise); consent-match drops the stale event alone; the webhook
// receives exactly what the page sent, consent included. With an
// allowed_origins that leaves the page out, the page is refused and
// nothing is accepted.
func TestBrowser(t *testing.T) {
	page := browsertest.Serve(t)
	chromiumtest.Path(t)
	fn := consentMatch(t)
	pageOrigin := page.URL // http://127.0.0.1:PORT, as the Origin header writes it

	t.Run("standard", func(t *testing.T) { testBrowserDelivery(t, page, fn, "standard", nil) })
	t.Run("batching", func(t *testing.T) { testBrowserDelivery(t, page, fn, "batching", []string{pageOrigin}) })
	t.Run("refused-origin", func(t *testing.T) { testBrowserRefused(t, page, fn) })
}

// eventSink is a webhook receiver that keeps every event it gets, whole,
// in the order they arrive.
type eventSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []gjson.Result
}

func newEventSink(t *testing.T) *eventSink {
	s := &eventSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.events = append(s.events, gjson.GetBytes(body, "batch").Array()...)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *eventSink) received() []gjson.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// browserHost starts the server with consent-match on source "web",
// restricted to origins when not nil, delivering to out, and stores
// browserStored as browserUser's consent.
func browserHost(t *testing.T, fn config.Function, out *eventSink, origins []string) *Server {
	t.Helper()
	allowed, _ := json.Marshal(origins)
	if origins == nil {
		allowed = []byte("[]")
	}
	y := fmt.Sprintf(`data: %q
consent: {backend: embedded}
delivery: {backoff: {initial: 20ms, max: 200ms, max_attempts: -1}}
functions:
  - {name: consent-match, wasm: %q}
sources:
  - {name: web, write_keys: [%q], allowed_origins: %s, functions: [consent-match]}
destinations:
  - {name: warehouse, type: webhook, url: %q, timeout: 5s}
`, t.TempDir(), fn.Wasm, writeKey, allowed, out.srv.URL)
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatalf("config:\n%s\n%v", y, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("config:\n%s\n%v", y, err)
	}
	h := start(t, c)
	rec := consent.Record{ID: browserUser}
	decided := time.Now().Add(-time.Hour).UnixMilli()
	for _, name := range slices.Sorted(maps.Keys(browserStored)) {
		rec.Categories = append(rec.Categories, consent.Category{Name: name, Consented: browserStored[name], Timestamp: decided})
	}
	if _, err := h.Store().Update(context.Background(), consentstore.Update{Source: "test", Record: rec}); err != nil {
		t.Fatal(err)
	}
	return h
}

// sentEvent is an event as the page sent it.
type sentEvent struct {
	path string // the request's path: /v1/t, /v1/b, ...
	json gjson.Result
}

// pageEvents returns the events of the page's requests to the tracking
// API, by messageId, and the messageIds in the order first sent. A
// messageId sent twice (a retry) is kept once and counted in resent.
func pageEvents(t *testing.T, reqs []browsertest.Request) (byID map[string]sentEvent, order []string, resent int) {
	t.Helper()
	byID = make(map[string]sentEvent)
	for _, r := range reqs {
		u, err := url.Parse(r.URL)
		if err != nil {
			t.Fatalf("the page requested %q: %v", r.URL, err)
		}
		if u.Path == "/v1/m" {
			continue
		}
		body := gjson.Parse(r.Body)
		events := []gjson.Result{body}
		if u.Path == "/v1/b" {
			events = body.Get("batch").Array()
		}
		for _, ev := range events {
			id := ev.Get("messageId").String()
			if _, dup := byID[id]; dup {
				resent++
				continue
			}
			byID[id] = sentEvent{path: u.Path, json: ev}
			order = append(order, id)
		}
	}
	return byID, order, resent
}

// eventName names an event for messages: its type and event or name.
func eventName(ev gjson.Result) string {
	return strings.TrimSpace(ev.Get("type").String() + " " + ev.Get("event").String() + ev.Get("name").String())
}

func prefs(ev gjson.Result) map[string]bool {
	var m map[string]bool
	if err := json.Unmarshal([]byte(ev.Get("context.consent.categoryPreferences").Raw), &m); err != nil {
		return nil
	}
	return m
}

// serverAdded are the fields the server may add to or set on an event
// (README, Ingest), as Segment's API does: receivedAt; timestamp corrected
// for the client's clock, with the client's in originalTimestamp (checked
// apart); sentAt, the client's, used for that correction (a batch's is
// copied into its events); writeKey, the credential, not part of the
// event.
var serverAdded = []string{"receivedAt", "timestamp", "originalTimestamp", "sentAt", "writeKey"}

// eventDiff lists the top-level fields, serverAdded aside, in which got
// differs from sent: one line per field, with both values.
func eventDiff(t *testing.T, sent, got gjson.Result) string {
	t.Helper()
	var s, g map[string]any
	if err := json.Unmarshal([]byte(sent.Raw), &s); err != nil {
		t.Fatalf("the page sent an event that is not a JSON object: %v\n%s", err, sent.Raw)
	}
	if err := json.Unmarshal([]byte(got.Raw), &g); err != nil {
		t.Fatalf("the destination got an event that is not a JSON object: %v\n%s", err, got.Raw)
	}
	keys := make(map[string]bool)
	for k := range s {
		keys[k] = true
	}
	for k := range g {
		keys[k] = true
	}
	var diff []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if slices.Contains(serverAdded, k) {
			continue
		}
		sv, inS := s[k]
		gv, inG := g[k]
		if inS != inG || !reflect.DeepEqual(sv, gv) {
			diff = append(diff, fmt.Sprintf("  %s: sent %s, got %s", k, sent.Get(k).Raw, got.Get(k).Raw))
		}
	}
	return strings.Join(diff, "\n")
}

func testBrowserDelivery(t *testing.T, page *httptest.Server, fn config.Function, mode string, origins []string) {
	out := newEventSink(t)
	h := browserHost(t, fn, out, origins)
	start := time.Now()
	res := browsertest.Load(t, page, browsertest.Params{API: h.Addr().String(), WriteKey: writeKey, Mode: mode,
		UserID: browserUser, Before: browserStored, After: browserAfter}, browserBudget)
	t.Logf("%s: the page ran %v: calls %v", mode, time.Since(start).Round(time.Millisecond), res.Calls)
	if !res.Done || res.Error != "" {
		t.Fatalf("the page did not finish its scenario (done=%v): %s\nits requests: %+v", res.Done, res.Error, res.Requests)
	}

	// What the page saw: every request answered 2xx (a cross-origin fetch
	// sees a status only when the answer allows the page's origin; the
	// header itself is hidden from the page).
	paths := make(map[string]int)
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(writeKey+":"))
	for i, r := range res.Requests {
		u, _ := url.Parse(r.URL)
		paths[r.Method+" "+u.Path]++
		if r.Status < 200 || r.Status > 299 {
			t.Errorf("request %d, %s %s: status %d, error %q, answer %q\nbody %s", i, r.Method, r.URL, r.Status, r.Error, r.Response, r.Body)
		}
		// What makes Chromium preflight every event request: text/plain
		// alone would be a simple request, the Authorization header is not.
		if u.Path != "/v1/m" && (r.Headers["authorization"] != wantAuth || r.Headers["content-type"] != "text/plain") {
			t.Errorf("request %d, %s: headers %v, want Authorization %q and Content-Type text/plain", i, r.URL, r.Headers, wantAuth)
		}
	}
	t.Logf("%s: the page's requests: %v", mode, paths)
	if mode == "batching" {
		for p := range paths {
			if p != "POST /v1/b" && p != "POST /v1/m" {
				t.Errorf("batching: the page sent %s; every event should travel in POST /v1/b", p)
			}
		}
	} else if paths["POST /v1/b"] > 0 {
		t.Errorf("standard: the page sent %d batches", paths["POST /v1/b"])
	}
	if paths["POST /v1/m"] == 0 {
		t.Error("the page sent no metrics (POST /v1/m): the scenario expects analytics.js to report its own")
	}

	sent, order, resent := pageEvents(t, res.Requests)
	if resent > 0 {
		t.Errorf("the library sent %d events again although every request got a 2xx", resent)
	}
	var names []string
	for _, id := range order {
		names = append(names, eventName(sent[id].json))
	}
	wantNames := []string{"identify", "track Product Viewed", "page Product", "track Segment Consent Preference Updated",
		"track Order Completed", "page Checkout", "group", "track Stale Consent"}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("the page sent %q, want %q", names, wantNames)
	}
	// The wrapper stamps each event with the platform's consent at the
	// call: before the change, after it, and the stale event's.
	stale := order[7]
	for i, id := range order {
		want := browserAfter
		if i < 3 || id == stale {
			want = browserStored
		}
		if got := prefs(sent[id].json); !maps.Equal(got, want) {
			t.Errorf("%s was stamped %v, want %v", names[i], got, want)
		}
		if !strings.HasPrefix(id, "ajs-next-") {
			t.Errorf("%s: messageId %q is not analytics.js's", names[i], id)
		}
	}

	waitFor(t, "the page's events to settle", func() bool { return settled(h, len(order)) })
	st := h.Stats()
	t.Logf("%s: server stats: %+v", mode, st)
	if st.Accepted != uint64(len(order)) {
		t.Errorf("the server accepted %d events, the page sent %d", st.Accepted, len(order))
	}
	if st.Preflights == 0 {
		t.Error("the server answered no CORS preflight: the page's requests should have needed one")
	}
	if d := h.Counters().Snapshot().Dropped["Consent mismatch"]; d != 1 {
		t.Errorf("dropped for Consent mismatch: %d, want 1 (the stale event)", d)
	}

	// The store holds the person's new choice, from the page.
	rec, err := h.Store().Get(context.Background(), browserUser)
	if err != nil {
		t.Fatal(err)
	}
	stored := make(map[string]bool)
	for _, c := range rec.Categories {
		stored[c.Name] = c.Consented
	}
	if !maps.Equal(stored, browserAfter) {
		t.Errorf("the store holds %v for %s, want %v", stored, browserUser, browserAfter)
	}
	anon := sent[order[0]].json.Get("anonymousId").String()
	if anon == "" || !slices.Contains(rec.Aliases, anon) {
		t.Errorf("the record's aliases %v lack the page's anonymousId %q", rec.Aliases, anon)
	}

	// The destination got every event but the stale one, once, as sent.
	time.Sleep(200 * time.Millisecond) // a duplicate delivery would show
	got := out.received()
	seen := make(map[string]int)
	for _, ev := range got {
		id := ev.Get("messageId").String()
		seen[id]++
		s, ok := sent[id]
		switch {
		case !ok:
			t.Errorf("the destination got an event the page never sent: %s", ev.Raw)
			continue
		case id == stale:
			t.Errorf("the destination got the stale event: %s", ev.Raw)
		}
		if diff := eventDiff(t, s.json, ev); diff != "" {
			t.Errorf("%s (sent in %s): the destination got another event than the page sent:\n%s", eventName(s.json), s.path, diff)
		}
		if ev.Get("receivedAt").String() == "" {
			t.Errorf("%s: no receivedAt", eventName(s.json))
		}
		if o, ts := ev.Get("originalTimestamp").String(), s.json.Get("timestamp").String(); o != ts {
			t.Errorf("%s: originalTimestamp %q, want the page's timestamp %q", eventName(s.json), o, ts)
		}
	}
	for i, id := range order[:7] {
		if seen[id] != 1 {
			t.Errorf("%s (%s) reached the destination %d times, want once", names[i], id, seen[id])
		}
	}
}

func testBrowserRefused(t *testing.T, page *httptest.Server, fn config.Function) {
	out := newEventSink(t)
	h := browserHost(t, fn, out, []string{"https://shop.example", "https://*.shop.example"})
	res := browsertest.Load(t, page, browsertest.Params{API: h.Addr().String(), WriteKey: writeKey, Mode: "standard",
		UserID: browserUser, Before: browserStored, After: browserAfter}, browserBudget)
	t.Logf("refused: the page ended (done=%v, error %q) after calls %v", res.Done, res.Error, res.Calls)
	if len(res.Requests) == 0 {
		t.Fatal("the page made no request")
	}
	tracking := 0
	outcomes := make(map[string]int)
	for i, r := range res.Requests {
		u, _ := url.Parse(r.URL)
		outcome := fmt.Sprint(r.Status)
		if r.Status == 0 {
			outcome = r.Error
		}
		outcomes[u.Path+": "+outcome]++
		// The library's metrics report carries no write key, so no
		// source's origins apply to it; it is no event either.
		if u.Path == "/v1/m" {
			continue
		}
		tracking++
		// A 403 the page can read (not a refused preflight, a network
		// error the library retries without saying why).
		if r.Status != 403 {
			t.Errorf("request %d, %s: %s from a refused origin; want a 403 the page can read", i, r.URL, outcome)
		}
	}
	if tracking == 0 {
		t.Error("the page sent no event")
	}
	// A 4xx is final for analytics.js: one request per call, no retries.
	if tracking > len(res.Calls) {
		t.Errorf("the page sent %d event requests for %d calls: refusals were retried", tracking, len(res.Calls))
	}
	st := h.Stats()
	t.Logf("refused: what the page's requests got: %v; server stats: %+v", outcomes, st)
	if st.Accepted != 0 || st.Events != 0 {
		t.Errorf("the server took %d events (accepted %d) from a refused origin", st.Events, st.Accepted)
	}
	if st.Rejected.ForbiddenOrigin == 0 {
		t.Error("no request counted as from a forbidden origin")
	}
	if p := h.Counters().Snapshot().Processed; p != 0 {
		t.Errorf("the pipeline processed %d events", p)
	}
	if got := out.received(); len(got) != 0 {
		t.Errorf("the destination got %d events", len(got))
	}
	rec, err := h.Store().Get(context.Background(), browserUser)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rec.Categories {
		if c.Consented != browserStored[c.Name] {
			t.Errorf("the refused page changed the stored consent: %+v", rec.Categories)
		}
	}
}
