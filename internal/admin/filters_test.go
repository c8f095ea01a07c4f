package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/pipeline/destfilter"
	"github.com/insertfn/insertfn/internal/pipeline/fql"
)

// memFilters is a FilterStore in memory, with one destination "ads".
type memFilters struct {
	mu      sync.Mutex
	filters []destfilter.Filter
	sets    int
}

func (m *memFilters) Filters(dest string) ([]destfilter.Filter, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.filters), dest == "ads"
}

func (m *memFilters) SetFilters(_ context.Context, dest string, f []destfilter.Filter) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if dest != "ads" {
		return errors.New("no such destination")
	}
	m.filters = slices.Clone(f)
	m.sets++
	return nil
}

func (m *memFilters) ResetFilters(context.Context, string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.filters = nil
	return nil
}

// filtersEnv returns an admin API over store (nil: none) and a client.
func filtersEnv(t *testing.T, store admin.FilterStore) *admin.Client {
	t.Helper()
	cs := consentstore.New(consentstore.NewMemory(), consentstore.Options{})
	t.Cleanup(func() { cs.Close() })
	reg, vs := newRegistry(t, newEngine(t), cs, filepath.Join(t.TempDir(), "functions"))
	deps := admin.Deps{Registry: reg, Versions: vs, Destinations: []string{"ads"}}
	if store != nil {
		deps.Filters = store
	}
	a, err := admin.New(admin.Config{Token: token}, deps)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &admin.Client{URL: srv.URL, Token: token}
}

func TestFiltersAPI(t *testing.T) {
	ctx := context.Background()
	store := &memFilters{filters: []destfilter.Filter{{Name: "first", If: "type = 'page'", Action: destfilter.Drop}}}
	c := filtersEnv(t, store)

	got, err := c.GetFilters(ctx, "ads")
	if err != nil || len(got) != 1 || got[0].Name != "first" {
		t.Fatalf("GET: %+v, %v", got, err)
	}
	set := []destfilter.Filter{
		{Name: "keep-track", If: "type = 'track'", Action: destfilter.Keep},
		{Name: "no-email", Action: destfilter.DropProperties, Fields: map[string][]string{"properties": {"email"}}},
	}
	if got, err = c.SetFilters(ctx, "ads", set); err != nil || len(got) != 2 {
		t.Fatalf("PUT: %+v, %v", got, err)
	}
	if got, _ := store.Filters("ads"); len(got) != 2 || got[1].Fields["properties"][0] != "email" {
		t.Errorf("the store holds %+v, want the list set", got)
	}

	// Every problem, each with its filter and key; the if's position.
	_, err = c.SetFilters(ctx, "ads", []destfilter.Filter{
		{Name: "bad-if", If: "event = 'a' and", Action: destfilter.Drop},
		{Name: "bad-action", Action: "explode"},
	})
	var apiErr *admin.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 422 {
		t.Fatalf("PUT of bad filters: %v, want a 422", err)
	}
	for _, want := range []string{
		`destination "ads": the filters are refused (the ones in place stay)`,
		`filters[0].if: fql: at position 15: expected a value`, `(filter "bad-if")`,
		`filters[1].action: "explode"`, `(filter "bad-action")`,
	} {
		if !strings.Contains(apiErr.Message, want) {
			t.Errorf("the refusal %q does not say %q", apiErr.Message, want)
		}
	}
	if store.sets != 1 {
		t.Errorf("the store was set %d times, want 1: a refused list must not reach it", store.sets)
	}
	req, _ := http.NewRequest("PUT", c.URL+"/admin/destinations/ads/filters", strings.NewReader(`[{"name":"x","if":"a = = 1","action":"drop"}]`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body admin.FilterError
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if len(body.Problems) != 1 || body.Problems[0].Pos == nil || *body.Problems[0].Pos != 4 ||
		body.Problems[0].Key != "filters[0].if" || body.Problems[0].Filter != "x" || body.Problems[0].Index != 0 {
		t.Errorf("problems %+v, want filters[0].if of x at position 4", body.Problems)
	}

	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/admin/destinations/nowhere/filters", "", 404},
		{"PUT", "/admin/destinations/nowhere/filters", "[]", 404},
		{"PUT", "/admin/destinations/ads/filters", `[{"name":"x","action":"drop","iff":"a"}]`, 400},
		{"PUT", "/admin/destinations/ads/filters", `[] []`, 400},
		{"PUT", "/admin/destinations/ads/filters", `null`, 400},
		{"DELETE", "/admin/destinations/ads/filters", "", 200},
	} {
		req, _ := http.NewRequest(tc.method, c.URL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s %s: %d, want %d", tc.method, tc.path, tc.body, resp.StatusCode, tc.status)
		}
	}
	if got, _ := store.Filters("ads"); len(got) != 0 {
		t.Errorf("after DELETE the store holds %+v", got)
	}

	// A destination's filters, tried on an event.
	store.SetFilters(ctx, "ads", set)
	res, err := c.TestFilter(ctx, admin.FilterTestRequest{Destination: "ads", Event: []byte(`{"type":"page"}`)})
	if err != nil || res.Delivered == nil || *res.Delivered || res.DroppedBy != "keep-track" {
		t.Errorf("test of ads's filters: %+v, %v; want dropped by keep-track", res, err)
	}
}

// TestFiltersAPIWithoutStore: without a filter store the filter calls
// answer 501, and trying an expression still works.
func TestFiltersAPIWithoutStore(t *testing.T) {
	c := filtersEnv(t, nil)
	_, err := c.GetFilters(context.Background(), "ads")
	var apiErr *admin.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 501 {
		t.Errorf("GET without a store: %v, want 501", err)
	}
	res, err := c.TestFilter(context.Background(), admin.FilterTestRequest{If: "type = 'track'", Event: []byte(`{"type":"track"}`)})
	if err != nil || res.Match == nil || !*res.Match || string(res.IR) != `["=","type",{"value":"track"}]` {
		t.Errorf("test: %+v, %v", res, err)
	}
	_, err = c.TestFilter(context.Background(), admin.FilterTestRequest{If: "type = ", Event: []byte(`{}`)})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 422 || !strings.Contains(apiErr.Message, "at position 7") {
		t.Errorf("test of an expression that does not parse: %v, want 422 with its position", err)
	}
}

// TestTestFilters: an expression's answer and why; a list's outcome filter
// by filter, each on the event as the ones before it left it.
func TestTestFilters(t *testing.T) {
	ev := []byte(`{"type":"track","userId":"u1","event":"Signed Up","properties":{"email":"a@b.c","plan":"pro"}}`)
	res, err := admin.TestFilters(admin.FilterTestRequest{If: `contains(properties.email, '@') and properties.plan = 'free'`, Event: ev})
	if err != nil || *res.Match || len(res.Steps) != 2 || string(res.Steps[1].Result) != "false" ||
		string(res.Steps[1].Fields[0].Value) != `"pro"` {
		t.Errorf("if: %+v, %v; want no match, the plan compared read as \"pro\"", res, err)
	}

	res, err = admin.TestFilters(admin.FilterTestRequest{Event: ev, Filters: []destfilter.Filter{
		{Name: "off", Action: destfilter.Drop, Disabled: true},
		{Name: "pii", If: "type = 'track'", Action: destfilter.DropProperties, Fields: map[string][]string{"properties": {"email"}}},
		{Name: "pages", If: "type = 'page'", Action: destfilter.Drop},
		{Name: "emails", If: "properties.email != null", Action: destfilter.Keep},
		{Name: "after", Action: destfilter.Drop},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, f := range res.Filters {
		outcomes = append(outcomes, f.Name+":"+f.Outcome)
	}
	// emails drops: pii removed the email before it looked.
	if want := "off:disabled pii:changed pages:passed emails:dropped"; strings.Join(outcomes, " ") != want {
		t.Errorf("outcomes %v, want %s", outcomes, want)
	}
	if *res.Delivered || res.DroppedBy != "emails" || string(res.Event) != "null" {
		t.Errorf("result %+v, want dropped by emails", res)
	}

	res, err = admin.TestFilters(admin.FilterTestRequest{Event: ev, Filters: []destfilter.Filter{
		{Name: "pii", Action: destfilter.DropProperties, Fields: map[string][]string{"properties": {"email"}}},
	}})
	if err != nil || !*res.Delivered || gjson.GetBytes(res.Event, "properties.email").Exists() || gjson.GetBytes(res.Event, "properties.plan").String() != "pro" {
		t.Errorf("result %+v, %v; want delivered without the email", res, err)
	}

	var se *fql.SyntaxError
	if _, err := admin.TestFilters(admin.FilterTestRequest{If: "a = = 1", Event: ev}); !errors.As(err, &se) || se.Pos != 4 {
		t.Errorf("an if that does not parse: %v, want a SyntaxError at 4", err)
	}
	for _, req := range []admin.FilterTestRequest{
		{If: "a = 1", Event: []byte(`[1]`)},
		{If: "a = 1", Event: []byte(`{"a":`)},
		{Event: ev},
		{If: "a = 1", Filters: []destfilter.Filter{}, Event: ev},
	} {
		if _, err := admin.TestFilters(req); err == nil {
			t.Errorf("%+v: no error", req)
		}
	}
}
