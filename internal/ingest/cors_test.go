package ingest

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// browserDo runs a request with an Origin header through s's handler and
// returns the response; method "" is POST.
func browserDo(t *testing.T, s *Server, method, path, origin string, header map[string]string, body string) *fasthttp.Response {
	t.Helper()
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	if method == "" {
		method = "POST"
	}
	req.Header.SetMethod(method)
	req.SetRequestURI(path)
	req.Header.SetContentType("text/plain")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	req.SetBodyString(body)
	ctx.Init(&req, nil, nil)
	s.Handler()(&ctx)
	var resp fasthttp.Response
	ctx.Response.CopyTo(&resp)
	return &resp
}

func TestPreflight(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	for _, path := range []string{"/v1/t", "/v1/batch", "/v1/b", "/v1/m"} {
		resp := browserDo(t, s, "OPTIONS", path, "https://shop.example", map[string]string{
			"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}, "")
		h := &resp.Header
		if resp.StatusCode() != 204 || string(h.Peek("Access-Control-Allow-Origin")) != "https://shop.example" ||
			!strings.Contains(string(h.Peek("Access-Control-Allow-Methods")), "POST") ||
			string(h.Peek("Access-Control-Allow-Headers")) != "authorization,content-type" ||
			string(h.Peek("Access-Control-Max-Age")) != PreflightMaxAge || !strings.Contains(string(h.Peek("Vary")), "Origin") {
			t.Errorf("OPTIONS %s answered %d %s", path, resp.StatusCode(), h.String())
		}
	}
	// Not a route: 404, as for any method.
	if resp := browserDo(t, s, "OPTIONS", "/v2/t", "https://shop.example", nil, ""); resp.StatusCode() != 404 {
		t.Errorf("OPTIONS /v2/t answered %d", resp.StatusCode())
	}
	if s.Stats().Preflights != 4 {
		t.Errorf("Stats.Preflights = %d, want 4", s.Stats().Preflights)
	}
}

func TestCORSOnEveryAnswer(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	auth := map[string]string{"Authorization": basic(testKey, "")}
	for _, c := range []struct {
		name, path string
		header     map[string]string
		body       string
		status     int
	}{
		{"accepted", "/v1/t", auth, `{"userId":"u","event":"e"}`, 200},
		{"beacon: writeKey in the body", "/v1/p", nil, `{"writeKey":"` + testKey + `","anonymousId":"a"}`, 200},
		{"batch", "/v1/b", nil, `{"writeKey":"` + testKey + `","batch":[{"type":"track","userId":"u","event":"e"}],"sentAt":"2024-05-01T12:00:00Z"}`, 200},
		{"invalid event", "/v1/t", auth, `{"userId":"u"}`, 400},
		{"unknown key", "/v1/t", map[string]string{"Authorization": basic("nope", "")}, `{"userId":"u","event":"e"}`, 401},
		{"not a route", "/v1/x", auth, `{}`, 404},
		{"client metrics", "/v1/m", nil, `{"series":[{"type":"Counter","metric":"analytics_js.invoke","value":1,"tags":{}}]}`, 200},
	} {
		resp := browserDo(t, s, "", c.path, "http://localhost:3000", c.header, c.body)
		if resp.StatusCode() != c.status || string(resp.Header.Peek("Access-Control-Allow-Origin")) != "http://localhost:3000" ||
			string(resp.Header.Peek("Access-Control-Expose-Headers")) != "Retry-After" {
			t.Errorf("%s: answered %d with Access-Control-Allow-Origin %q; want %d and the origin", c.name, resp.StatusCode(), resp.Header.Peek("Access-Control-Allow-Origin"), c.status)
		}
	}
	if n := len(rec.events()); n != 3 {
		t.Errorf("accepted %d events, want 3 (client metrics are not events)", n)
	}
	// A server's library sends no Origin: no CORS headers.
	if resp := browserDo(t, s, "", "/v1/track", "", auth, `{"userId":"u","event":"e"}`); len(resp.Header.Peek("Access-Control-Allow-Origin")) != 0 {
		t.Errorf("an answer without Origin carries Access-Control-Allow-Origin")
	}
}

func TestAllowedOrigins(t *testing.T) {
	rec := &recorder{}
	s, err := New(Config{}, []Source{
		{Name: "shop", WriteKeys: []string{"k-shop"}, AllowedOrigins: []string{"https://shop.example", "https://*.shop.example:8443"}},
		{Name: "open", WriteKeys: []string{"k-open"}},
	}, rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key, origin string
		status      int
	}{
		{"k-shop", "https://shop.example", 200},
		{"k-shop", "https://www.shop.example:8443", 200},
		{"k-shop", "https://a.b.shop.example:8443", 200},
		{"k-shop", "https://www.shop.example", 403},      // the pattern has a port
		{"k-shop", "https://evilshop.example:8443", 403}, // not a subdomain
		{"k-shop", "http://shop.example", 403},
		{"k-shop", "https://shop.example.evil", 403},
		{"k-shop", "", 200}, // no Origin: not a browser
		{"k-open", "https://anywhere.example", 200},
	} {
		resp := browserDo(t, s, "", "/v1/t", c.origin, map[string]string{"Authorization": basic(c.key, "")}, `{"userId":"u","event":"e"}`)
		if resp.StatusCode() != c.status {
			t.Errorf("%s from %q: answered %d %s, want %d", c.key, c.origin, resp.StatusCode(), resp.Body(), c.status)
		}
		if c.status == 403 && !strings.Contains(string(resp.Body()), "allowed_origins") {
			t.Errorf("%s from %q: the 403 does not say what to change: %s", c.key, c.origin, resp.Body())
		}
	}
	if got := s.Stats().Rejected.ForbiddenOrigin; got != 4 {
		t.Errorf("Stats.Rejected.ForbiddenOrigin = %d, want 4", got)
	}

	// Preflights carry no key: they pass, so that the request itself gets
	// the 403 the page can read (a refused preflight is a network error,
	// which analytics.js retries ten times without saying why).
	restricted, err := New(Config{}, []Source{{Name: "shop", WriteKeys: []string{"k"}, AllowedOrigins: []string{"https://shop.example"}}}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if resp := browserDo(t, restricted, "OPTIONS", "/v1/t", "https://evil.example", nil, ""); resp.StatusCode() != 204 {
		t.Errorf("preflight answered %d", resp.StatusCode())
	}
	resp := browserDo(t, restricted, "", "/v1/t", "https://evil.example", map[string]string{"Authorization": basic("k", "")}, `{"userId":"u","event":"e"}`)
	if resp.StatusCode() != 403 || string(resp.Header.Peek("Access-Control-Allow-Origin")) != "https://evil.example" {
		t.Errorf("a refused origin's request answered %d with %q; want a 403 the page can read", resp.StatusCode(), resp.Header.Peek("Access-Control-Allow-Origin"))
	}
}

func TestCheckOrigin(t *testing.T) {
	for _, o := range []string{"*", "https://shop.example", "http://localhost:3000", "https://*.example.com", "http://127.0.0.1:8080",
		"https://xn--bcher-kva.example", "https://shop.example:8443", "https://*.co.uk", "http://[::1]", "http://[::1]:8080"} {
		if err := CheckOrigin(o); err != nil {
			t.Errorf("CheckOrigin(%q) = %v", o, err)
		}
	}
	for _, o := range []string{"", "shop.example", "https://shop.example/", "https://shop.example/path", "ftp://x", "https://Shop.example",
		"https://a*.example.com", "https://*.*.example", "https://user@shop.example", "https://*", "https://*.com", "https://*.example.com.",
		"https://shop.example:443", "http://shop.example:80", "https://shop.example:", "https://shop.example:0443", "https://shop.example:99999",
		"https://bücher.example"} {
		if err := CheckOrigin(o); err == nil {
			t.Errorf("CheckOrigin(%q) accepted it", o)
		}
	}
	if _, err := New(Config{}, []Source{{Name: "s", WriteKeys: []string{"k"}, AllowedOrigins: []string{"https://ok.example", "https://bad.example/"}}}, &recorder{}); err == nil ||
		!strings.Contains(err.Error(), "allowed_origins[1]") {
		t.Errorf("New with a bad origin: %v", err)
	}
}
