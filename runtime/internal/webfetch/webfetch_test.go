package webfetch

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestAllowList(t *testing.T) {
	c, err := New(Policy{Allow: []string{"https://consent.internal/v1/", "http://Cache.Internal:8080/users", "https://api.example.com:443"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url   string
		allow bool
	}{
		{"https://consent.internal/v1/users/7", true},
		{"https://consent.internal/v1/", true},
		{"https://CONSENT.internal:443/v1/x?y=1#frag", true},
		{"https://consent.internal/v1", false}, // the prefix ends in a slash
		{"https://consent.internal/v2/users", false},
		{"http://consent.internal/v1/users", false}, // another scheme
		{"https://consent.internal:8443/v1/users", false},
		{"https://consent.internal.evil.example/v1/users", false},
		{"https://x@consent.internal/v1/users", false},
		{"https://consent.internal@evil.example/v1/users", false},
		{"https://consent.internal/v1/../admin", false},
		{"https://consent.internal/v1/%2e%2e/admin", false},
		{"https://consent.internal/v1/%2E%2e/admin", false},
		{"https://consent.internal/v1/..%2fadmin", false},
		{"https://consent.internal/v1/a%2F..%2F..%2Fadmin", false},
		{"https://consent.internal/v1/a%5C..%5Cadmin", false},
		{"https://consent.internal/v1/users/a%2Fb", true}, // an id with a slash, encoded
		{"https://consent.internal/v1/users/..x", true},
		{"https://consent.internal/v1/.%2e/admin", false},
		{"https://consent.internal/v1/a\\..\\admin", false},
		{"http://cache.internal:8080/users", true},
		{"http://cache.internal:8080/users/9", true},
		{"http://cache.internal:8080/usersx", false},
		{"http://cache.internal/users", false}, // the default port is another port
		{"https://api.example.com/anything", true},
		{"https://api.example.com", true},
		{"ftp://consent.internal/v1/", false},
		{"/v1/users", false},
		{"not a url", false},
		{"https://[::1]/v1/", false},
	}
	for _, tt := range tests {
		_, err := c.check(tt.url)
		var fe *ForbiddenError
		if tt.allow && err != nil {
			t.Errorf("%s: refused: %v", tt.url, err)
		}
		if !tt.allow && !errors.As(err, &fe) {
			t.Errorf("%s: allowed (err %v)", tt.url, err)
		}
		if fe != nil && !strings.Contains(fe.Error(), "fetch.allow") {
			t.Errorf("%s: the error does not name the setting: %v", tt.url, fe)
		}
	}
}

func TestPolicyErrorsNameTheSetting(t *testing.T) {
	for _, tt := range []struct {
		p    Policy
		want string
	}{
		{Policy{Allow: []string{"consent.internal/v1"}}, "fetch.allow[0]"},
		{Policy{Allow: []string{"https://ok/", "https://u:p@x/"}}, "fetch.allow[1]"},
		{Policy{Allow: []string{"https://x/?q=1"}}, "fetch.allow[0]"},
		{Policy{Allow: []string{"https://x/a/../b"}}, "fetch.allow[0]"},
		{Policy{Timeout: -1}, "fetch.timeout"},
		{Policy{MaxResponseBytes: -1}, "fetch.max_response_bytes"},
		{Policy{MaxRequests: -1}, "fetch.max_requests"},
	} {
		_, err := New(tt.p)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err %v, want one naming %s", tt.p, err, tt.want)
		}
	}
}

func TestFetch(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/users/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("X-Seen", r.Method+" "+r.Header.Get("Authorization")+" "+string(body))
		w.WriteHeader(201)
		io.WriteString(w, `{"id":"`+strings.TrimPrefix(r.URL.Path, "/v1/users/")+`"}`)
	})
	mux.HandleFunc("/v1/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/v1/users/moved", http.StatusSeeOther)
	})
	mux.HandleFunc("/v1/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/admin", http.StatusFound)
	})
	mux.HandleFunc("/v1/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Second)
	})
	mux.HandleFunc("/v1/big", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 5000))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := New(Policy{Allow: []string{srv.URL + "/v1/"}, Timeout: 300 * time.Millisecond, MaxResponseBytes: 4096, MaxRequests: 5})
	if err != nil {
		t.Fatal(err)
	}
	var n Counter
	resp, err := c.Fetch(time.Time{}, &n, &Request{Method: "POST", URL: srv.URL + "/v1/users/7", Header: [][2]string{{"Authorization", "Basic eDp5"}, {"Host", "evil"}}, Body: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 201 || string(resp.Body) != `{"id":"7"}` || resp.StatusText != "Created" || resp.Redirected {
		t.Errorf("response %+v", resp)
	}
	if got := header(resp, "x-seen"); got != "POST Basic eDp5 hi" {
		t.Errorf("the server saw %q", got)
	}

	resp, err = c.Fetch(time.Time{}, &n, &Request{Method: "POST", URL: srv.URL + "/v1/moved", Body: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Redirected || resp.URL != srv.URL+"/v1/users/moved" || strings.TrimSpace(header(resp, "x-seen")) != "GET" {
		t.Errorf("after a 303: %+v", resp)
	}

	_, err = c.Fetch(time.Time{}, &n, &Request{URL: srv.URL + "/v1/away"})
	var fe *ForbiddenError
	if !errors.As(err, &fe) || !strings.Contains(fe.URL, "/admin") {
		t.Errorf("a redirect out of the allow-list: %v", err)
	}

	resp, err = c.Fetch(time.Time{}, &n, &Request{URL: srv.URL + "/v1/away", Redirect: "manual"})
	if err != nil || resp.Status != 302 || header(resp, "location") != "/admin" {
		t.Errorf("a manual redirect: %+v %v", resp, err)
	}

	start := time.Now()
	_, err = c.Fetch(time.Time{}, &n, &Request{URL: srv.URL + "/v1/slow"})
	if err == nil || !strings.Contains(err.Error(), "fetch.timeout") {
		t.Errorf("a slow answer: %v", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("the timeout took %s", d)
	}

	n.Reset()
	_, err = c.Fetch(time.Time{}, &n, &Request{URL: srv.URL + "/v1/big"})
	if err == nil || !strings.Contains(err.Error(), "fetch.max_response_bytes") {
		t.Errorf("a large answer: %v", err)
	}

	n.Reset()
	for i := range 6 {
		_, err = c.Fetch(time.Time{}, &n, &Request{URL: srv.URL + "/v1/users/1"})
		if (i < 5) != (err == nil) {
			t.Errorf("request %d: %v", i, err)
		}
	}
	if !errors.Is(err, ErrTooManyRequests) {
		t.Errorf("past max_requests: %v", err)
	}

	// The event's deadline, earlier than the timeout, ends the request.
	n.Reset()
	start = time.Now()
	_, err = c.Fetch(time.Now().Add(50*time.Millisecond), &n, &Request{URL: srv.URL + "/v1/slow"})
	if !errors.Is(err, ErrEventTimeLimit) || time.Since(start) > 250*time.Millisecond+time.Second {
		t.Errorf("the event's deadline: %v after %s", err, time.Since(start))
	}
}

func header(r *Response, name string) string {
	for _, h := range r.Header {
		if h[0] == name {
			return h[1]
		}
	}
	return ""
}

func TestNothingAllowed(t *testing.T) {
	c, err := New(Policy{})
	if err != nil {
		t.Fatal(err)
	}
	var n Counter
	_, err = c.Fetch(time.Time{}, &n, &Request{URL: "https://example.com/"})
	var fe *ForbiddenError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "may not fetch anything") {
		t.Errorf("err %v", err)
	}
}
