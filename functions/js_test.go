package functions_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/runtime"
)

// jsConsent is a Segment-style function: it drops an event whose Analytics
// consent differs from the settings', stamps its version on the rest.
const jsConsent = `
async function onTrack(event, settings) {
  const prefs = event.context && event.context.consent && event.context.consent.categoryPreferences;
  if (prefs && prefs.Analytics !== settings.analytics) throw new DropEvent('Consent mismatch');
  if (event.event === "loop") for (;;) {}
  event.properties = { version: settings.version };
  return event;
}`

// deployJS deploys a JavaScript function through the version store,
// skipping the test in a build without the engine (unless
// INSERTFN_REQUIRE_NODE=1).
func deployJS(t *testing.T, vs *functions.VersionStore, m functions.Manifest, code string) (functions.VersionInfo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // the engine's first compilation under -race
	defer cancel()
	info, err := vs.Deploy(ctx, m, []byte(code))
	if errors.Is(err, runtime.ErrNoJSEngine) {
		if os.Getenv("INSERTFN_REQUIRE_NODE") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return info, err
}

func jsManifest(version string) functions.Manifest {
	return functions.Manifest{Name: "consent", Wasm: "consent.js",
		Settings: []byte(`{"analytics":false,"version":"` + version + `"}`),
		Limits:   functions.ManifestLimits{Timeout: functions.Duration{Duration: 100 * time.Millisecond}, PoolSize: 1}}
}

const (
	jsMatch    = `{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Analytics":false}}}}`
	jsMismatch = `{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Analytics":true}}}}`
	jsLoop     = `{"type":"track","event":"loop","userId":"u1"}`
)

func TestJSFunctionDeployRunRollback(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	vs, reg := newVersionStore(t, dir)
	v1, err := deployJS(t, vs, jsManifest("1"), jsConsent)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Manifest.Runtime != functions.RuntimeJS {
		t.Errorf("stored manifest's runtime %q, want js (from the file name consent.js)", v1.Manifest.Runtime)
	}

	out := run(t, reg, "consent", jsMismatch)
	if out.Deliver || out.Verdict != runtime.Drop || out.Reason != "Consent mismatch" {
		t.Errorf("mismatch: %+v, want a drop for Consent mismatch", out)
	}
	if got := liveVersion(t, reg, "consent"); got != "1" {
		t.Errorf("live version %q, want 1", got)
	}

	// An endless loop: stopped by the time limit, dropped by the failure
	// policy, and the next event is handled.
	out = run(t, reg, "consent", jsLoop)
	if out.Deliver || out.Kind != runtime.KindTimeout || !out.PolicyApplied {
		t.Errorf("endless loop: %+v, want a Timeout dropped by the policy", out)
	}
	if got := liveVersion(t, reg, "consent"); got != "1" {
		t.Errorf("after the loop: live version %q, want 1", got)
	}

	// A syntax error is refused with its file and line; version 1 stays.
	_, err = deployJS(t, vs, jsManifest("2"), "async function onTrack(event) {\n  return event +\n}\n")
	var refused *functions.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "consent.js:3: SyntaxError") {
		t.Fatalf("syntax error deployed: %v, want a refusal naming consent.js:3", err)
	}
	if got := liveVersion(t, reg, "consent"); got != "1" {
		t.Errorf("after the refused deploy: live version %q, want 1", got)
	}

	v2, err := deployJS(t, vs, jsManifest("2"), jsConsent+"\n// v2\n")
	if err != nil {
		t.Fatal(err)
	}
	if v2.Hash == v1.Hash || liveVersion(t, reg, "consent") != "2" {
		t.Fatalf("v2 not live: %+v", v2)
	}
	if _, err := vs.Rollback(ctx, "consent"); err != nil {
		t.Fatal(err)
	}
	if got := liveVersion(t, reg, "consent"); got != "1" {
		t.Errorf("after rollback: live version %q, want 1", got)
	}

	// A restart finds the JavaScript version in the store, still JavaScript.
	vs2, reg2 := newVersionStore(t, dir)
	if err := vs2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got := liveVersion(t, reg2, "consent"); got != "1" {
		t.Errorf("after a restart: live version %q, want 1", got)
	}
}

func TestManifestRuntime(t *testing.T) {
	for _, tc := range []struct {
		wasm, runtime, want string
		lang                runtime.Language
	}{
		{"fn.wasm", "", "", runtime.WebAssembly},
		{"fn.js", "", "js", runtime.JavaScript},
		{"dir/FN.JS", "", "js", runtime.JavaScript},
		{"fn.txt", "js", "js", runtime.JavaScript},
		{"fn.js", "wasm", "wasm", runtime.WebAssembly},
	} {
		m := functions.Manifest{Name: "f", Wasm: tc.wasm, Runtime: tc.runtime}
		if err := m.Validate(); err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if m.Runtime != tc.want || m.Language() != tc.lang {
			t.Errorf("wasm %q runtime %q: runtime %q, language %v; want %q, %v", tc.wasm, tc.runtime, m.Runtime, m.Language(), tc.want, tc.lang)
		}
	}
	m := functions.Manifest{Name: "f", Runtime: "python"}
	var merr *functions.ManifestError
	if err := m.Validate(); !errors.As(err, &merr) || merr.Key != "runtime" {
		t.Errorf("runtime python: %v, want a ManifestError on runtime", err)
	}
	if got := (&functions.Manifest{Name: "f", Wasm: "a/consent.js"}).File(); got != "consent.js" {
		t.Errorf("File of a/consent.js: %q", got)
	}
	if got := (&functions.Manifest{Name: "f", Wasm: "0123.wasm"}).File(); got != "f.js" {
		t.Errorf("File of a stored version: %q, want f.js", got)
	}
}
