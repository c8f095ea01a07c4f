package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/ingest"
	"github.com/insertfn/insertfn/internal/pipeline/tap"
	"github.com/insertfn/insertfn/sdk/consent"
)

// tailWatch is one tail stream of a test: the records it got, until the
// sentinel record published for it.
type tailWatch struct {
	name  string
	query admin.TailQuery
	mu    sync.Mutex
	got   []*tap.Record
	done  chan error
}

// sentinelID is the messageId of the record that ends watch name.
func sentinelID(name string) string { return "end-" + name }

// follow opens w's stream on h's admin API; it runs until w's sentinel
// arrives.
func (w *tailWatch) follow(t *testing.T, h *Server) {
	t.Helper()
	c := &admin.Client{URL: "http://" + h.AdminAddr().String(), Token: h.AdminToken()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // against hanging
	t.Cleanup(cancel)
	w.done = make(chan error, 1)
	before := h.Tap().Watchers()
	go func() {
		w.done <- c.Tail(ctx, w.query, func(m admin.TailMessage) error {
			if m.Record == nil {
				return fmt.Errorf("missed %d records", m.Missed)
			}
			if m.Record.MessageID == sentinelID(w.name) {
				return errEndOfWatch
			}
			if !strings.HasPrefix(m.Record.MessageID, "end-") {
				w.mu.Lock()
				w.got = append(w.got, m.Record)
				w.mu.Unlock()
			}
			return nil
		})
	}()
	waitFor(t, w.name+"'s subscription", func() bool { return h.Tap().Watchers() > before })
}

// records returns what w got.
func (w *tailWatch) records() []*tap.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.got)
}

var errEndOfWatch = errors.New("the end of the watch")

// key names a record: its messageId, stage and destination.
func key(r *tap.Record) string {
	if r.Stage == tap.StageDelivery {
		return r.MessageID + " " + string(r.Fate) + " to " + r.Destination
	}
	return r.MessageID + " " + string(r.Fate)
}

// TestTailThroughTheServer: GET /admin/tail on a running server tells
// what became of events sent through the real ingest: dropped by
// consent-match for a consent mismatch (the function and reason),
// routed with a destination filtered by consent (the category) and one
// by the integrations object, delivered (a delivery record per
// destination with the event's messageId), a consent preference update;
// and its filters (source, type, user, fate) keep only what they name.
func TestTailThroughTheServer(t *testing.T) {
	events, ads, amp := newSink(t), newSink(t), newSink(t)
	c := baseConfig(t, []config.Function{consentMatch(t)}, []string{"consent-match"},
		webhookDest("events", events.srv.URL), webhookDest("ads", ads.srv.URL, "Advertising"), webhookDest("amp", amp.srv.URL))
	c.Sources = append(c.Sources, config.Source{Source: ingest.Source{Name: "app", WriteKeys: []string{"app-key"}}})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	h := start(t, c)
	if _, err := h.Store().Update(context.Background(), consentstore.Update{Source: "test", Record: consent.Record{ID: "u123",
		Categories: []consent.Category{{Name: "Advertising", Consented: false, Timestamp: 1000}, {Name: "Analytics", Consented: true, Timestamp: 1000}}}}); err != nil {
		t.Fatal(err)
	}

	watches := []*tailWatch{
		{name: "all", query: admin.TailQuery{Filter: tap.Filter{Full: true}}},
		{name: "source", query: admin.TailQuery{Filter: tap.Filter{Source: "app"}}},
		{name: "type", query: admin.TailQuery{Filter: tap.Filter{Type: "identify"}}},
		{name: "user", query: admin.TailQuery{Filter: tap.Filter{User: "u123"}}},
		{name: "fate", query: admin.TailQuery{Filter: tap.Filter{Fate: tap.Dropped}}},
		{name: "consent", query: admin.TailQuery{Filter: tap.Filter{Fate: tap.FilteredConsent}}},
	}
	for _, w := range watches {
		w.follow(t, h)
	}

	prefs := func(ads bool) string {
		return fmt.Sprintf(`"context":{"consent":{"categoryPreferences":{"Advertising":%t,"Analytics":true}}}`, ads)
	}
	for _, ev := range []struct{ path, body string }{
		// Agrees with u123's stored consent: ads (Advertising) filtered by
		// consent, delivered to events and amp.
		{"/v1/track", `{"userId":"u123","event":"Order Completed","messageId":"m-delivered",` + prefs(false) + `}`},
		// Stale consent: consent-match drops it.
		{"/v1/track", `{"userId":"u123","event":"Order Completed","messageId":"m-dropped",` + prefs(true) + `}`},
		// The integrations object refuses amp.
		{"/v1/track", `{"userId":"u123","event":"Order Completed","messageId":"m-integ","integrations":{"amp":false},` + prefs(false) + `}`},
		// u456 gives consent: the store is updated, then the event flows.
		{"/v1/track", `{"userId":"u456","event":"Segment Consent Preference Updated","messageId":"m-consent",` + prefs(true) + `}`},
		{"/v1/identify", `{"userId":"u999","messageId":"m-identify","traits":{"plan":"pro"}}`},
	} {
		if code := post(t, h, ev.path, ev.body); code != 200 {
			t.Fatalf("POST %s: %d", ev.path, code)
		}
	}
	if code := postAs(t, h, "app-key", "/v1/track", `{"anonymousId":"a1","event":"Opened","messageId":"m-app"}`); code != 200 {
		t.Fatalf("POST from app: %d", code)
	}

	// What the stream of everything must tell, by messageId, stage and
	// destination.
	want := []string{
		"m-delivered routed", "m-delivered delivered to events", "m-delivered delivered to amp",
		"m-dropped dropped",
		"m-integ routed", "m-integ delivered to events",
		"m-consent routed", "m-consent delivered to events", "m-consent delivered to ads", "m-consent delivered to amp",
		"m-identify routed", "m-identify delivered to events", "m-identify delivered to ads", "m-identify delivered to amp",
		"m-app routed", "m-app delivered to events", "m-app delivered to ads", "m-app delivered to amp",
	}
	slices.Sort(want)
	all := watches[0]
	waitFor(t, "every record", func() bool { return len(all.records()) >= len(want) })
	// The sentinels, one for each watch and published after every record
	// of the events, matching that watch's filter: a watch that has its
	// sentinel has had everything before it.
	for _, w := range watches {
		r := &tap.Record{Time: time.Now(), Stage: tap.StagePipeline, Source: "web", Type: "track", UserID: "u123", MessageID: sentinelID(w.name), Fate: tap.Dropped,
			Destinations: []tap.DestinationFate{{Name: "ads", Fate: tap.FilteredConsent}}}
		if w.query.Filter.Source != "" {
			r.Source = w.query.Filter.Source
		}
		if w.query.Filter.Type != "" {
			r.Type = w.query.Filter.Type
		}
		h.Tap().Offer(r)
	}
	for _, w := range watches {
		if err := <-w.done; !errors.Is(err, errEndOfWatch) {
			t.Fatalf("watch %s: %v", w.name, err)
		}
	}
	waitFor(t, "the subscriptions to close", func() bool { return h.Tap().Watchers() == 0 })

	byKey := make(map[string]*tap.Record)
	var got []string
	for _, r := range all.records() {
		byKey[key(r)] = r
		got = append(got, key(r))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	dropped := byKey["m-dropped dropped"]
	if dropped.Function != "consent-match" || dropped.Reason != "Consent mismatch" || len(dropped.Destinations) != 0 ||
		dropped.Source != "web" || dropped.Type != "track" || dropped.Event != "Order Completed" || dropped.UserID != "u123" {
		t.Errorf("the dropped event: %+v, want consent-match's Consent mismatch and no destination", dropped)
	}
	fates := func(r *tap.Record) string {
		var s []string
		for _, d := range r.Destinations {
			s = append(s, fmt.Sprintf("%s:%s%v", d.Name, d.Fate, d.Categories))
		}
		return strings.Join(s, " ")
	}
	for k, want := range map[string]string{
		"m-delivered routed": "events:queued[] ads:filtered_consent[Advertising] amp:queued[]",
		"m-integ routed":     "events:queued[] ads:filtered_consent[Advertising] amp:filtered_integrations[]",
		"m-consent routed":   "events:queued[] ads:queued[] amp:queued[]",
	} {
		if got := fates(byKey[k]); got != want {
			t.Errorf("%s: destinations %s, want %s", k, got, want)
		}
	}
	if u := byKey["m-consent routed"].ConsentUpdate; u != tap.ConsentApplied {
		t.Errorf("the consent preference event: consent update %q, want %q", u, tap.ConsentApplied)
	}
	for _, k := range []string{"m-delivered delivered to events", "m-delivered delivered to amp"} {
		r := byKey[k]
		if r.Stage != tap.StageDelivery || r.MessageID != "m-delivered" || r.Attempt != 1 || r.UserID != "u123" || r.Source != "web" {
			t.Errorf("%s: %+v, want a first delivery of m-delivered", k, r)
		}
	}
	if p := byKey["m-delivered routed"].Payload; !strings.Contains(string(p), `"messageId":"m-delivered"`) {
		t.Errorf("a full stream's record without its event: payload %s", p)
	}

	for _, c := range []struct {
		watch string
		want  []string
	}{
		{"source", []string{"m-app delivered to ads", "m-app delivered to amp", "m-app delivered to events", "m-app routed"}},
		{"type", []string{"m-identify delivered to ads", "m-identify delivered to amp", "m-identify delivered to events", "m-identify routed"}},
		{"user", []string{"m-delivered delivered to amp", "m-delivered delivered to events", "m-delivered routed", "m-dropped dropped", "m-integ delivered to events", "m-integ routed"}},
		{"fate", []string{"m-dropped dropped"}},
		{"consent", []string{"m-delivered routed", "m-integ routed"}},
	} {
		var keys []string
		for _, w := range watches {
			if w.name != c.watch {
				continue
			}
			for _, r := range w.records() {
				keys = append(keys, key(r))
				if r.Payload != nil {
					t.Errorf("watch %s: %s came with its payload, not asked for", c.watch, key(r))
				}
			}
		}
		slices.Sort(keys)
		if !slices.Equal(keys, c.want) {
			t.Errorf("watch %s: %v, want %v", c.watch, keys, c.want)
		}
	}
}

// postAs sends a request to the host's tracking API with write key key
// and returns the status.
func postAs(t *testing.T, h *Server, key, path, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+h.Addr().String()+path, strings.NewReader(body))
	req.SetBasicAuth(key, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
