package functions_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/insertfn/insertfn/functions"
)

// TestManifestYAMLIsJSON: the configuration's YAML and a JSON manifest
// decode into the same Manifest, and its JSON is what it always was.
func TestManifestYAMLIsJSON(t *testing.T) {
	const js = `{"name":"consent-match","wasm":"f.wasm","settings":{"missingRecord":"pass","n":[1,2]},"limits":{"memory_pages":256,"timeout":"250ms","pool_size":2},"on_error":"deliver","retries":-1}`
	var fromJSON functions.Manifest
	if err := json.Unmarshal([]byte(js), &fromJSON); err != nil {
		t.Fatal(err)
	}
	var fromYAML functions.Manifest
	dec := yaml.NewDecoder(strings.NewReader(`
name: consent-match
wasm: f.wasm
settings: {missingRecord: pass, n: [1, 2]}
limits: {memory_pages: 256, timeout: 250ms, pool_size: 2}
on_error: deliver
retries: -1
`))
	dec.KnownFields(true)
	if err := dec.Decode(&fromYAML); err != nil {
		t.Fatal(err)
	}
	for _, m := range []functions.Manifest{fromJSON, fromYAML} {
		b, err := json.Marshal(m)
		if err != nil || string(b) != js {
			t.Errorf("JSON of %+v:\n%s (%v), want\n%s", m, b, err, js)
		}
	}
	if fromYAML.Limits.Timeout.Duration != 250*time.Millisecond || fromYAML.Limits.Runtime().Timeout != 250*time.Millisecond {
		t.Errorf("timeout %v", fromYAML.Limits.Timeout)
	}
	// Back to YAML and in again.
	y, err := yaml.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	var again functions.Manifest
	if err := yaml.Unmarshal(y, &again); err != nil {
		t.Fatalf("%s: %v", y, err)
	}
	if a, b := mustJSON(t, again), mustJSON(t, fromYAML); a != b {
		t.Errorf("YAML round trip:\n%s\n%s", a, b)
	}
	// An empty manifest stays empty in JSON.
	if got := mustJSON(t, functions.Manifest{Name: "f"}); got != `{"name":"f","wasm":""}` {
		t.Errorf("empty manifest JSON %s", got)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestManifestErrorsNameTheKey(t *testing.T) {
	for _, c := range []struct {
		m    functions.Manifest
		keys []string
	}{
		{functions.Manifest{Name: "bad name", Wasm: "f.wasm"}, []string{"name"}},
		{functions.Manifest{Name: "f", Wasm: "f.wasm", OnError: "explode"}, []string{"on_error"}},
		{functions.Manifest{Name: "f", Wasm: "f.wasm", Settings: []byte(`[1]`)}, []string{"settings"}},
		{functions.Manifest{Name: "f"}, []string{"wasm"}},
		{functions.Manifest{Name: "-f"}, []string{"name", "wasm"}},
		{functions.Manifest{Name: "f", Wasm: "f.wasm"}, nil},
		{functions.Manifest{Name: "f", Wasm: "f.wasm", Fetch: functions.ManifestFetch{Allow: []string{"https://c.internal/"}}}, []string{"fetch.allow"}},
		{functions.Manifest{Name: "f", Wasm: "f.js", Fetch: functions.ManifestFetch{Allow: []string{"https://c.internal/", "c.internal/v1"}}}, []string{"fetch.allow[1]"}},
		{functions.Manifest{Name: "f", Wasm: "f.js", Fetch: functions.ManifestFetch{MaxRequests: -1}}, []string{"fetch.max_requests"}},
		{functions.Manifest{Name: "f", Wasm: "f.js", Fetch: functions.ManifestFetch{Allow: []string{"https://c.internal/v1/"}}}, nil},
	} {
		err := c.m.ValidateFile()
		var keys []string
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			var me *functions.ManifestError
			if errors.As(e, &me) {
				keys = append(keys, me.Key)
			} else if e != nil {
				t.Errorf("%+v: %v is not a *ManifestError", c.m, e)
			}
		}
		if strings.Join(keys, ",") != strings.Join(c.keys, ",") {
			t.Errorf("%+v: keys %q (%v), want %q", c.m, keys, err, c.keys)
		}
	}
	// The registry's own check does not ask for a path: an upload carries
	// the module.
	m := functions.Manifest{Name: "f"}
	if err := m.Validate(); err != nil {
		t.Errorf("Validate without wasm: %v", err)
	}
}
