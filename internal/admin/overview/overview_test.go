package overview

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/internal/pipeline"

	"github.com/insertfn/insertfn/internal/testkit/chromiumtest"
)

// overview returns an overview holding a known account for source "web".
func overview(t *testing.T) *pipeline.Overview {
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

func TestFlowJSON(t *testing.T) {
	srv := httptest.NewServer(Handler(overview(t)))
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
	for _, bad := range []string{"0", "x", "99999999"} {
		r, _ := http.Get(srv.URL + "/flow.json?minutes=" + bad)
		r.Body.Close()
		if r.StatusCode != 400 {
			t.Errorf("minutes=%s: %d, want 400", bad, r.StatusCode)
		}
	}
	r, _ := http.Get(srv.URL + "/")
	r.Body.Close()
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Errorf("page: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
}

// TestPageInChromium loads the page in headless Chromium and checks what a
// person sees: the counts of the flow, per destination.
func TestPageInChromium(t *testing.T) {
	srv := httptest.NewServer(Handler(overview(t)))
	defer srv.Close()
	// The page's scripts fill it in: give them virtual time before the DOM
	// is printed.
	dom := chromiumtest.DumpDOM(t, srv.URL+"/", "--virtual-time-budget=5000")
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
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page does not show %s\n%s", want, dom)
		}
	}
}
