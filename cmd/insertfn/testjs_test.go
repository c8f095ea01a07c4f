package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// skipWithoutJSEngine skips a test of JavaScript functions in a build
// without the engine (make js-engine), unless INSERTFN_REQUIRE_NODE=1.
func skipWithoutJSEngine(t *testing.T, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "make js-engine") {
		if os.Getenv("INSERTFN_REQUIRE_NODE") == "1" {
			t.Fatal(stderr)
		}
		t.Skip(stderr)
	}
}

const jsTestFunction = `async function onTrack(event, settings) {
  const prefs = event.context.consent.categoryPreferences;
  console.log("Analytics", prefs.Analytics);
  if (prefs.Analytics !== settings.analytics) throw new DropEvent('Consent mismatch');
  event.properties.checked = true;
  return event;
}`

func TestTestJavaScriptFunction(t *testing.T) {
	fn := writeFile(t, "consent.js", jsTestFunction)
	event := `{"type":"track","event":"Order Completed","userId":"u1","properties":{},"context":{"consent":{"categoryPreferences":{"Analytics":false}}}}`
	args := []string{"test", fn, "--json", "--cache-dir", cacheDir, "--event", event}
	code, stdout, stderr := runCLI(t, append(args, "--settings", `{"analytics":false}`)...)
	skipWithoutJSEngine(t, stderr)
	if code != 0 || !strings.Contains(stdout, `"verdict":"deliver"`) || !strings.Contains(stdout, `"checked":true`) ||
		!strings.Contains(stdout, "Analytics false") {
		t.Errorf("matching consent: exit %d\nstdout: %s\nstderr: %s\nwant deliver, the changed event and the log line", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, append(args, "--settings", `{"analytics":true}`)...)
	if code != 0 || !strings.Contains(stdout, `"verdict":"drop"`) || !strings.Contains(stdout, `"reason":"Consent mismatch"`) {
		t.Errorf("mismatch: exit %d\nstdout: %s\nstderr: %s\nwant a drop for Consent mismatch", code, stdout, stderr)
	}
}

func TestTestJavaScriptSyntaxError(t *testing.T) {
	fn := writeFile(t, "broken.js", "function onTrack(event) {\n  return event +\n}\n")
	code, stdout, stderr := runCLI(t, "test", fn, "--cache-dir", cacheDir, "--event", `{"type":"track"}`)
	skipWithoutJSEngine(t, stderr)
	if code != exitUsage || !strings.Contains(stderr, "broken.js:3: SyntaxError") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s\nwant exit %d and an error naming broken.js:3", code, stdout, stderr, exitUsage)
	}
}

// TestTestJavaScriptConsentMatch runs the JavaScript consent-match example
// (examples/consent-match-js) as the Go one is run: against stored
// consent, through the host's comparison.
func TestTestJavaScriptConsentMatch(t *testing.T) {
	fn := filepath.Join("..", "..", "examples", "consent-match-js", "index.js")
	for _, tc := range []struct{ event, verdict, reason string }{
		{"event.json", "deliver", ""},
		{"event-mismatch.json", "drop", "Consent mismatch"},
	} {
		code, stdout, stderr := runCLI(t, "test", fn, "--json", "--cache-dir", cacheDir,
			"--event", testdata(tc.event), "--consent", testdata("consent.ndjson"))
		skipWithoutJSEngine(t, stderr)
		var res testResult
		if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 0 {
			t.Fatalf("%s: exit %d, %v\nstdout: %s\nstderr: %s", tc.event, code, err, stdout, stderr)
		}
		if res.Verdict != tc.verdict || res.Reason != tc.reason {
			t.Errorf("%s: %s %q, want %s %q", tc.event, res.Verdict, res.Reason, tc.verdict, tc.reason)
		}
	}
}

// TestTestJavaScriptFetch runs the fetching example
// (examples/consent-match-js-fetch) as its user tries it before deploying:
// against their consent service (here a local one), with --fetch-allow;
// without it, the fetch is refused and the error names the setting.
func TestTestJavaScriptFetch(t *testing.T) {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/consent/u1" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"categoryPreferences":{"Advertising":false}}`)
	}))
	defer svc.Close()
	fn := filepath.Join("..", "..", "examples", "consent-match-js-fetch", "index.js")
	settings := fmt.Sprintf(`{"consentServiceUrl":%q,"apiKey":"k"}`, svc.URL+"/v1/")
	mismatch := `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`
	args := []string{"test", fn, "--json", "--cache-dir", cacheDir, "--event", mismatch, "--settings", settings, "--timeout", "10s"}

	code, stdout, stderr := runCLI(t, append(args, "--fetch-allow", svc.URL+"/v1/")...)
	skipWithoutJSEngine(t, stderr)
	var res testResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 0 || res.Verdict != "drop" || res.Reason != "Consent mismatch" {
		t.Errorf("with --fetch-allow: exit %d, %v\nstdout: %s\nstderr: %s\nwant a drop for Consent mismatch", code, err, stdout, stderr)
	}
	if len(res.Logs) != 1 || !strings.Contains(res.Logs[0].Message, "Advertising is true in the event, false stored") {
		t.Errorf("logs %+v", res.Logs)
	}

	code, stdout, stderr = runCLI(t, args...)
	res = testResult{}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != exitFail || res.ErrorKind != "FetchForbidden" ||
		!strings.Contains(res.Reason, "fetch.allow") {
		t.Errorf("without --fetch-allow: exit %d, %v\nstdout: %s\nstderr: %s\nwant a FetchForbidden error naming fetch.allow", code, err, stdout, stderr)
	}
}
