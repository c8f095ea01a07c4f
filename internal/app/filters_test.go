package app

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/internal/pipeline/destfilter"
	"github.com/insertfn/insertfn/internal/pipeline/tap"
)

// TestDestinationFilters: a destination's filters, through the real
// server: an event one filter drops never reaches that destination but
// reaches another; a drop_properties filter removes the fields from what
// the destination gets; the counts, the metrics and the live debugger
// name the filter.
func TestDestinationFilters(t *testing.T) {
	ads, archive := newSink(t), newSink(t)
	adsDest := webhookDest("ads", ads.srv.URL)
	adsDest.Filters = []destfilter.Filter{
		{Name: "no-internal", If: `match(context.traits.email, '*@example.com')`, Action: destfilter.Drop},
		{Name: "no-pii", If: `type = 'track'`, Action: destfilter.DropProperties, Fields: map[string][]string{"properties": {"email"}}},
		{Name: "off", Action: destfilter.Drop, Disabled: true},
	}
	c := baseConfig(t, nil, nil, adsDest, webhookDest("archive", archive.srv.URL))
	h := start(t, c)
	watch := &tailWatch{name: "all"}
	watch.follow(t, h)

	if code := post(t, h, "/v1/track", `{"userId":"u1","messageId":"internal","event":"Viewed","context":{"traits":{"email":"staff@example.com"}}}`); code != 200 {
		t.Fatalf("status %d", code)
	}
	if code := post(t, h, "/v1/track", `{"userId":"u2","messageId":"customer","event":"Viewed","properties":{"email":"c@shop.test","sku":"x"},"context":{"traits":{"email":"c@shop.test"}}}`); code != 200 {
		t.Fatalf("status %d", code)
	}
	waitFor(t, "the archive to get both events", func() bool { return len(archive.ids()) == 2 })
	waitFor(t, "ads to get the customer's event", func() bool { return len(ads.ids()) == 1 })
	time.Sleep(100 * time.Millisecond) // anything wrongly sent would have arrived with the rest
	if got := ads.ids(); len(got) != 1 || got[0] != "customer" {
		t.Errorf("ads got %v, want only the customer's event: the internal one is filtered", got)
	}
	ads.mu.Lock()
	body := ads.last
	ads.mu.Unlock()
	if gjson.GetBytes(body, "batch.0.properties.email").Exists() || gjson.GetBytes(body, "batch.0.properties.sku").String() != "x" {
		t.Errorf("ads got %s: the email should be dropped, the sku kept", body)
	}

	s := h.Counters().Snapshot()
	if n := s.Destinations["ads"].FilteredByFilter["no-internal"]; n != 1 || s.Destinations["archive"].Delivered != 2 {
		t.Errorf("counters: ads filtered by no-internal %d (want 1), archive delivered %d (want 2)", n, s.Destinations["archive"].Delivered)
	}
	metrics := scrape(t, h)
	if !strings.Contains(metrics, `insertfn_destination_events_filtered_by_filter_total{destination="ads",filter="no-internal"} 1`) {
		t.Errorf("/metrics does not count the filter:\n%s", grepLines(metrics, "filter"))
	}
	f := h.Overview().Flow("web", time.Now().Add(-time.Hour), time.Now())
	found := false
	for _, d := range f.Destinations {
		if d.Name == "ads" && len(d.FilteredByFilter) == 1 && d.FilteredByFilter[0].Filter == "no-internal" && d.FilteredByFilter[0].Count == 1 {
			found = true
		}
	}
	if !found {
		t.Errorf("the overview does not show ads filtered by no-internal: %+v", f.Destinations)
	}
	h.Tap().Offer(sentinel(watch.name))
	if err := <-watch.done; err != errEndOfWatch {
		t.Fatal(err)
	}
	var fate string
	for _, r := range watch.records() {
		if r.MessageID == "internal" && r.Stage == "pipeline" {
			for _, d := range r.Destinations {
				if d.Name == "ads" {
					fate = string(d.Fate) + " " + d.Filter
				}
			}
		}
	}
	if fate != "filtered_filter no-internal" {
		t.Errorf("the live debugger says ads: %q, want filtered_filter no-internal", fate)
	}
}

// scrape returns h's /metrics page.
func scrape(t *testing.T, h *Server) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+h.AdminAddr().String()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+h.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// sentinel is the record that ends the watch called name.
func sentinel(name string) *tap.Record {
	return &tap.Record{Time: time.Now(), Stage: tap.StagePipeline, Source: "web", Type: "track", MessageID: sentinelID(name), Fate: tap.Routed}
}
