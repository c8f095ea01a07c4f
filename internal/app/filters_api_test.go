package app

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/pipeline/destfilter"
)

// TestFiltersThroughTheAdminAPI: filters set through the admin API apply
// to the next events; a list that does not compile is refused with the
// filter, key and FQL position, and the filters in place stay; the ones
// set outlive a restart and win over the configuration's, until DELETE
// gives the configuration's back.
func TestFiltersThroughTheAdminAPI(t *testing.T) {
	ads, archive := newSink(t), newSink(t)
	adsDest := webhookDest("ads", ads.srv.URL)
	adsDest.Filters = []destfilter.Filter{{Name: "from-config", If: `event = 'Configured'`, Action: destfilter.Drop}}
	cfg := baseConfig(t, nil, nil, adsDest, webhookDest("archive", archive.srv.URL))
	h := start(t, cfg)
	ctx := context.Background()
	client := &admin.Client{URL: "http://" + h.AdminAddr().String(), Token: h.AdminToken()}

	set := []destfilter.Filter{{Name: "no-internal", If: `match(context.traits.email, '*@example.com')`, Action: destfilter.Drop}}
	if _, err := client.SetFilters(ctx, "ads", set); err != nil {
		t.Fatal(err)
	}
	post(t, h, "/v1/track", `{"userId":"u1","messageId":"internal","event":"Viewed","context":{"traits":{"email":"staff@example.com"}}}`)
	post(t, h, "/v1/track", `{"userId":"u2","messageId":"configured","event":"Configured"}`)
	waitFor(t, "the archive to get both events", func() bool { return len(archive.ids()) == 2 })
	waitFor(t, "ads to decide on both", func() bool { return adsDecided(h) == 2 })
	if got := ads.ids(); len(got) != 1 || got[0] != "configured" {
		t.Errorf("ads got %v, want only the event the configuration's filter (now replaced) would drop", got)
	}

	// A bad list: refused with the key, the filter and the position; the
	// filters set above stay.
	code, body := adminDo(t, h, "PUT", "/admin/destinations/ads/filters",
		`[{"name":"ok","if":"type = 'track'","action":"drop"},{"name":"broken","if":"type = = 'x'","action":"drop"}]`)
	for _, want := range []string{`filters[1].if: fql: at position 7: expected`, `(filter \"broken\")`, `"pos":7`, `the ones in place stay`} {
		if code != 422 || !strings.Contains(body, want) {
			t.Errorf("PUT of a filter that does not parse: %d %s\nwant 422 containing %s", code, body, want)
		}
	}
	if code, body := adminDo(t, h, "PUT", "/admin/destinations/ads/filters", `{"name":"x"}`); code != 400 || !strings.Contains(body, "want a JSON list of filters") {
		t.Errorf("PUT of an object: %d %s, want 400", code, body)
	}
	if code, _ := adminDo(t, h, "PUT", "/admin/destinations/nowhere/filters", `[]`); code != 404 {
		t.Errorf("PUT for a destination that does not exist: %d, want 404", code)
	}
	got, err := client.GetFilters(ctx, "ads")
	if err != nil || len(got) != 1 || got[0].Name != "no-internal" {
		t.Fatalf("after the refused PUT: %+v, %v; want no-internal still", got, err)
	}
	post(t, h, "/v1/track", `{"userId":"u3","messageId":"internal-2","event":"Viewed","context":{"traits":{"email":"boss@example.com"}}}`)
	waitFor(t, "the archive to get the third event", func() bool { return len(archive.ids()) == 3 })
	waitFor(t, "ads to decide on it", func() bool { return adsDecided(h) == 3 })
	if n := h.Counters().Snapshot().Destinations["ads"].FilteredByFilter["no-internal"]; n != 2 {
		t.Errorf("ads filtered by no-internal %d times, want 2: the refused PUT must not change what applies", n)
	}

	// A restart: the filters set through the API apply, not the
	// configuration's.
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	h = start(t, cfg)
	client.URL, client.Token = "http://"+h.AdminAddr().String(), h.AdminToken()
	if got, err := client.GetFilters(ctx, "ads"); err != nil || len(got) != 1 || got[0].Name != "no-internal" || got[0].If != set[0].If {
		t.Errorf("after a restart: %+v, %v; want the filters set through the API", got, err)
	}
	if got, err := client.GetFilters(ctx, "archive"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("archive's filters: %#v, %v; want an empty list", got, err)
	}

	// DELETE: the configuration's again, also after the next restart.
	got, err = client.ResetFilters(ctx, "ads")
	if err != nil || len(got) != 1 || got[0].Name != "from-config" {
		t.Fatalf("DELETE: %+v, %v; want the configuration's filter", got, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir(), "filters", "ads.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file of the filters set through the API is still there: %v", err)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	h = start(t, cfg)
	client.URL, client.Token = "http://"+h.AdminAddr().String(), h.AdminToken()
	if got, err := client.GetFilters(ctx, "ads"); err != nil || len(got) != 1 || got[0].Name != "from-config" {
		t.Errorf("after DELETE and a restart: %+v, %v; want the configuration's filter", got, err)
	}
}

// adsDecided returns how many events destination ads got or filtered.
func adsDecided(h *Server) uint64 {
	d := h.Counters().Snapshot().Destinations["ads"]
	n := d.Delivered
	for _, c := range d.FilteredByFilter {
		n += c
	}
	return n
}

// TestFiltersFileThatNoLongerCompiles: at start, a kept file whose filters
// do not compile leaves the configuration's in place (and the server
// starts).
func TestFiltersFileThatNoLongerCompiles(t *testing.T) {
	ads := newSink(t)
	adsDest := webhookDest("ads", ads.srv.URL)
	adsDest.Filters = []destfilter.Filter{{Name: "from-config", If: `event = 'x'`, Action: destfilter.Drop}}
	cfg := baseConfig(t, nil, nil, adsDest)
	dir := filepath.Join(cfg.DataDir(), "filters")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	bad := `{"destination":"ads","updated":"` + time.Now().UTC().Format(time.RFC3339) + `","filters":[{"name":"f","if":"a = = 1","action":"drop"}]}`
	if err := os.WriteFile(filepath.Join(dir, "ads.json"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	h := start(t, cfg)
	if got, ok := h.proc.Filters("ads"); !ok || len(got) != 1 || got[0].Name != "from-config" {
		t.Errorf("filters: %+v; want the configuration's", got)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ads.json")); err != nil || string(b) != bad {
		t.Errorf("the file was changed or removed (%v): the operator's filters must stay to be fixed", err)
	}
}
