package app

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/testkit/chromiumtest"
	"github.com/insertfn/insertfn/sdk/consent"
)

// The overview's load: overviewMatch events whose consent matches the
// stored record (delivered) and overviewMismatch whose consent does not
// (dropped by consent-match), all of overviewUser: 15 records of the live
// event stream, fewer than its history takes in a second (tap.HistoryRate),
// so that the page shows them all.
const (
	overviewUser     = "u-overview"
	overviewMatch    = 4
	overviewMismatch = 3
)

// UpdateScreenshotEnv names the environment variable that makes
// TestOverviewInBrowser rewrite docs/overview.png.
const UpdateScreenshotEnv = "INSERTFN_UPDATE_SCREENSHOT"

// screenshotSize is the window of the overview's screenshot.
var screenshotSize = image.Point{1280, 2600}

// overviewHost starts a server with consent-match on source "web", a
// warehouse that takes every event and a crm that refuses every event for
// good (its dead letters), stores overviewUser's consent (Advertising
// granted) and sends the load through the ingest; it returns once every
// event has settled.
func overviewHost(t *testing.T) *Server {
	t.Helper()
	warehouse := newSink(t)
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unknown field", http.StatusBadRequest)
	}))
	t.Cleanup(crm.Close)
	h := start(t, baseConfig(t, []config.Function{consentMatch(t)}, []string{"consent-match"},
		webhookDest("warehouse", warehouse.srv.URL), webhookDest("crm", crm.URL)))
	rec := consent.Record{ID: overviewUser, Categories: []consent.Category{
		{Name: "Advertising", Consented: true, Timestamp: time.Now().Add(-time.Hour).UnixMilli()}}}
	if _, err := h.Store().Update(context.Background(), consentstore.Update{Source: "test", Record: rec}); err != nil {
		t.Fatal(err)
	}
	for i := range overviewMatch + overviewMismatch {
		ads := i < overviewMatch
		if code := post(t, h, "/v1/track", trackEvent(fmt.Sprintf("ov-%d", i), `"`+overviewUser+`"`, ads)); code != 200 {
			t.Fatalf("POST /v1/track: %d", code)
		}
	}
	waitFor(t, "the load to settle", func() bool { return settled(h, overviewMatch+overviewMismatch) })
	return h
}

// TestOverviewInBrowser opens the delivery overview of a real server in
// headless Chromium the way a person does with the token at hand:
// http://x:TOKEN@host/admin/overview/. Chromium answers the server's Basic
// challenge with the URL's credentials, the page GET gets a session
// cookie, and the page's own calls (fetch of its data, EventSource of the
// live events, which cannot use the URL's credentials) must authenticate
// with it. The DOM must show the load's numbers: received, delivered,
// dropped "Consent mismatch", the function's runs and live version, the
// crm's dead letters, and the live events. Then a screenshot: a
// non-blank PNG of the window's size, written to docs/overview.png when
// INSERTFN_UPDATE_SCREENSHOT=1.
func TestOverviewInBrowser(t *testing.T) {
	chromiumtest.Path(t)
	h := overviewHost(t)
	if err := h.overview.Sample(); err != nil { // what the recorder reads every few seconds, now
		t.Fatal(err)
	}
	live := h.liveVersions()["consent-match"]
	if live == "" {
		t.Fatal("consent-match has no live version")
	}
	// "#paused": the live events table shows the last records and closes
	// its stream; following, a stream stays open and Chromium's virtual
	// time, which waits for requests in flight, would never run out.
	pageURL := fmt.Sprintf("http://x:%s@%s/admin/overview/#paused", h.AdminToken(), h.AdminAddr())

	run := chromiumtest.Render(t, pageURL, 90*time.Second, "--virtual-time-budget=8000", "--enable-logging=stderr", "--window-size=1280,2600")
	dom := run.DOM
	received := overviewMatch + overviewMismatch
	for _, want := range []string{
		`data-ready="true"`,
		fmt.Sprintf(`<div class="big" id="received">%d</div>`, received),
		fmt.Sprintf(`<div class="big bad" id="dropped">%d</div>`, overviewMismatch),
		fmt.Sprintf(`<li>consent-match: Consent mismatch (%d)</li>`, overviewMismatch),
		fmt.Sprintf(`<div class="box dest" data-destination="warehouse"><h3>warehouse</h3><div class="row" data-key="delivered"><span>Delivered</span><span class="ok">%d</span>`, overviewMatch),
		fmt.Sprintf(`<span>Failed</span><span class="bad">%d</span>`, overviewMatch), // crm
		fmt.Sprintf(`<span data-series="received"><i class="sw0"></i>received (%d)</span>`, received),
		fmt.Sprintf(`<tr data-function="consent-match"><td>consent-match</td><td title="%s">%s</td><td class="num">%d</td><td class="num ok">%d</td><td class="num warn">%d</td>`,
			live, live[:12], received, overviewMatch, overviewMismatch),
		fmt.Sprintf(`<tr data-destination="crm"><td>crm</td><td class="num bad">%d</td><td><button type="button">Replay</button>`, overviewMatch),
		`<span data-series="found (embedded)"><i class="sw0"></i>found (embedded) (`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page does not show %s", want)
		}
	}
	// The live events: each event once, with what became of it at the
	// functions and at each destination.
	for i := range received {
		want := fmt.Sprintf(`<tr class="ev" data-message-id="ov-%d">`, i)
		fate := `<td class="fate-failed">routed → crm failed, warehouse delivered</td></tr>`
		if i >= overviewMatch {
			fate = `<td class="fate-dropped">dropped</td></tr>`
		}
		row, ok := between(dom, want, "</tr>")
		if !ok || !strings.Contains(row+"</tr>", fate) || strings.Count(dom, want) != 1 {
			t.Errorf("live events: ov-%d: %q (%d rows), want one row ending %s", i, row, strings.Count(dom, want), fate)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s\nChromium's log:\n%s", dom, run.Log)
	}
	for _, bad := range []string{"Content Security Policy", "Uncaught"} {
		if strings.Contains(run.Log, bad) {
			t.Errorf("Chromium's log has %q:\n%s", bad, run.Log)
		}
	}

	out := filepath.Join(t.TempDir(), "overview.png")
	update := os.Getenv(UpdateScreenshotEnv) == "1"
	if update {
		out = filepath.Join("..", "..", "docs", "overview.png")
	}
	screenshot(t, pageURL, out)
	checkScreenshot(t, out)
}

// between returns what s holds from start up to end (end included).
func between(s, start, end string) (string, bool) {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return "", false
	}
	in, _, ok := strings.Cut(rest, end)
	return start + in, ok
}

// screenshot saves a PNG of url, as headless Chromium draws it in a
// screenshotSize window, to file.
func screenshot(t *testing.T, url, file string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append(append([]string(nil), chromiumtest.Flags...), "--user-data-dir="+filepath.Join(t.TempDir(), "profile"),
		"--hide-scrollbars", "--virtual-time-budget=8000",
		fmt.Sprintf("--window-size=%d,%d", screenshotSize.X, screenshotSize.Y), "--screenshot="+file, url)
	cmd := exec.CommandContext(ctx, chromiumtest.Path(t), args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, log.String())
	}
}

// checkScreenshot fails the test unless file is a PNG of screenshotSize
// with more than a few colours (a page, not a blank window).
func checkScreenshot(t *testing.T, file string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: not a PNG: %v", file, err)
	}
	if got := img.Bounds().Size(); got != screenshotSize {
		t.Errorf("%s is %v, want %v", file, got, screenshotSize)
	}
	colours := make(map[[4]uint32]bool)
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
		}
	}
	if len(colours) < 20 {
		t.Errorf("%s has %d colours: a blank page, not the overview", file, len(colours))
	}
}

// TestOverviewOutlivesRestart: the per-minute history one server kept
// (flows and the recorder's series) is there after a restart on the same
// data directory, through the admin API's data.json.
func TestOverviewOutlivesRestart(t *testing.T) {
	h := overviewHost(t)
	cfg := h.cfg
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir(), "overview", "history.json")); err != nil {
		t.Fatalf("no history saved at shutdown: %v", err)
	}

	h2 := start(t, cfg)
	f := h2.Overview().Flow("web", time.Now().Add(-time.Hour), time.Now())
	if f.Received != overviewMatch+overviewMismatch || len(f.Dropped) != 1 || f.Dropped[0].Count != overviewMismatch {
		t.Errorf("flows after the restart: %+v", f)
	}
	code, body := adminGet(t, h2, "/admin/overview/data.json?minutes=60", h2.AdminToken())
	for _, want := range []string{
		fmt.Sprintf(`"results":{"delivered":%d,"dropped":%d}`, overviewMatch, overviewMismatch),
		fmt.Sprintf(`"dead_now":%d`, overviewMatch),
		`"name":"found (embedded)","total":`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("data.json after the restart: %d, lacks %s\n%s", code, want, body)
		}
	}
}
