package admin

import (
	"bytes"
	"encoding/json"
	"testing"
)

func FuzzParseManifest(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"settings":{"a":1},"limits":{"timeout":"250ms","pool_size":2},"on_error":"deliver","retries":-1}`,
		`{"name":"f"}`, `{"name":"g"}`, `{"wasm":"x"}`, `{"limits":{"timeout":5}}`, `{"settings":[1]}`, `{} {}`, `{"on_error":"x"}`,
	} {
		f.Add("f", s)
	}
	f.Fuzz(func(t *testing.T, name, header string) {
		m, err := parseManifest(name, header)
		if err != nil {
			return
		}
		if m.Name != name || m.Wasm != "" {
			t.Fatalf("accepted %q for %q: %+v", header, name, m)
		}
		if m.Validate() != nil {
			t.Fatalf("accepted an invalid manifest %q: %+v", header, m)
		}
	})
}

func FuzzParseTestRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"track","event":"x"}`, `{"event":{"type":"track"},"settings":{},"consent":[]}`,
		`{"event":{},"consent":"{\"id\":\"u\"}\n"}`, `{"event":{},"settings":null}`, `[]`, ``, `{"event":{},"x":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseTestRequest(body)
		if err != nil {
			return
		}
		ev := bytes.TrimSpace(req.Event)
		if len(ev) == 0 || ev[0] != '{' || !json.Valid(ev) {
			t.Fatalf("accepted %q with event %q", body, req.Event)
		}
		if s := bytes.TrimSpace(req.Settings); req.Settings != nil && (len(s) == 0 || s[0] != '{') {
			t.Fatalf("accepted %q with settings %q", body, req.Settings)
		}
	})
}
