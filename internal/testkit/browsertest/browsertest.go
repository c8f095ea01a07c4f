// Package browsertest runs Segment's browser library, analytics.js
// (@segment/analytics-next) behind its consent wrapper
// (@segment/analytics-consent-tools), unmodified, in headless Chromium
// against a server of the test's.
//
// The npm packages are build inputs only: package.json pins them,
// package-lock.json pins their checksums, and `make browser-bundle` fetches
// them (npm ci, into node_modules here, never committed) and bundles
// entry.js with esbuild into bin/browsertest/bundle.js. [Serve] serves
// page.html and that bundle from a loopback listener of their own, so the
// page's origin is not the server's; [Load] opens the page in Chromium and
// reads back what it did. entry.js documents the scenario the page plays.
package browsertest

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/testkit/chromiumtest"
)

//go:embed page.html
var page []byte

// BundlePath is where `make browser-bundle` writes the bundle, relative to
// the module's root.
const BundlePath = "bin/browsertest/bundle.js"

// Bundle returns the built bundle. Without it the test is skipped, or fails
// when [chromiumtest.RequireEnv] is "1" (as in CI).
func Bundle(t testing.TB) []byte {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, BundlePath))
	if err != nil {
		msg := fmt.Sprintf("the browser bundle is missing (%v): run `make browser-bundle` (needs node and npm: apt-get install -y nodejs npm)", err)
		if os.Getenv(chromiumtest.RequireEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; " + chromiumtest.RequireEnv + "=1 makes this a failure")
	}
	return b
}

// moduleRoot returns the nearest directory above the working directory
// (a test's package directory) that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("browsertest: no go.mod above the working directory: run the test with go test inside the module")
		}
		dir = parent
	}
}

// Serve starts a web server on a loopback port of its own that serves the
// page at / and the bundle at /bundle.js (from [Bundle]: the test is
// skipped or fails without it). It is closed when the test ends.
func Serve(t testing.TB) *httptest.Server {
	t.Helper()
	bundle := Bundle(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write(page)
		case "/bundle.js":
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			w.Write(bundle)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Params are what the page is told (entry.js reads them from its query).
type Params struct {
	// API is the insertfn server's host:port.
	API string
	// WriteKey is the source's write key.
	WriteKey string
	// Mode is "standard" (a request per event) or "batching".
	Mode string
	// UserID is the userId the page identifies.
	UserID string
	// Before is the consent platform's categories when the page loads,
	// After the categories the person then chooses.
	Before, After map[string]bool
}

// Result is the page's account of its run.
type Result struct {
	// Done is true once the scenario ended, well or not.
	Done bool `json:"done"`
	// Error is why the scenario stopped early, empty when it did not.
	Error string `json:"error"`
	// Requests are every fetch the page made, in order.
	Requests []Request `json:"requests"`
	// Calls name the analytics calls the page made, in order.
	Calls []string `json:"calls"`
}

// Request is one fetch the page made and its outcome.
type Request struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"` // lower-case names
	Body    string            `json:"body"`
	// Status is the answer's status, 0 when fetch failed (Error says why:
	// a refused CORS preflight or an answer without
	// Access-Control-Allow-Origin is a TypeError).
	Status int    `json:"status"`
	Error  string `json:"error"`
	// Response is the answer's body.
	Response string `json:"response"`
}

var resultRE = regexp.MustCompile(`(?s)<pre id="result">(.*?)</pre>`)

// Load opens the page srv serves in headless Chromium with p, lets the
// page's clock run for budget (virtual time: Chromium advances it at once
// when nothing but timers is pending, and holds it while a request is in
// flight), and returns what the page reports. It fails the test when the
// page reports nothing readable, and logs Chromium's console output.
func Load(t testing.TB, srv *httptest.Server, p Params, budget time.Duration) Result {
	t.Helper()
	before, _ := json.Marshal(p.Before)
	after, _ := json.Marshal(p.After)
	q := url.Values{"api": {p.API}, "key": {p.WriteKey}, "mode": {p.Mode}, "user": {p.UserID},
		"before": {string(before)}, "after": {string(after)}}
	run := chromiumtest.Render(t, srv.URL+"/?"+q.Encode(), budget+90*time.Second,
		fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds()), "--enable-logging=stderr", "--v=0")
	t.Logf("chromium ran %v", run.Took.Round(time.Millisecond))
	var console []string
	for _, line := range strings.Split(run.Log, "\n") {
		if strings.Contains(line, "CONSOLE") || strings.Contains(line, "Uncaught") {
			console = append(console, line)
		}
	}
	const maxConsole = 10
	if n := len(console); n > maxConsole {
		console = append(console[:maxConsole], fmt.Sprintf("... and %d more", n-maxConsole))
	}
	if len(console) > 0 {
		t.Logf("the page's console:\n%s", strings.Join(console, "\n"))
	}
	m := resultRE.FindStringSubmatch(run.DOM)
	if m == nil {
		t.Fatalf("the page has no <pre id=\"result\">; chromium printed:\n%s\nits log:\n%s", run.DOM, run.Log)
	}
	var r Result
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &r); err != nil {
		t.Fatalf("the page's result is not JSON (%v):\n%s", err, m[1])
	}
	return r
}
