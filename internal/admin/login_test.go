package admin_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/internal/admin"
)

// browser sends requests as a browser would: no redirects followed, the
// given cookie and headers.
func (e *env) browser(method, path string, form url.Values, cookie *http.Cookie, header ...string) (*http.Response, string) {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := *e.srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == admin.SessionCookie {
			return c
		}
	}
	return nil
}

// TestLogin: the form, a wrong token, the session cookie a right one
// gets and where the login leads.
func TestLogin(t *testing.T) {
	e := newEnv(t)
	resp, body := e.browser("GET", "/admin/login?next=/admin/dead/hook", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `<form method="post" action="/admin/login">`) ||
		!strings.Contains(body, `name="next" value="/admin/dead/hook"`) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("GET /admin/login: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Security-Policy"), body)
	}

	resp, body = e.browser("POST", "/admin/login", url.Values{"token": {"wrong-token-0123456789abcdef"}}, nil)
	if resp.StatusCode != 401 || sessionCookie(resp) != nil || !strings.Contains(body, "That is not the admin token") {
		t.Errorf("a wrong token: %d, cookie %v\n%s", resp.StatusCode, sessionCookie(resp), body)
	}
	resp, _ = e.browser("POST", "/admin/login", url.Values{"token": {token}}, nil, "Origin", "https://evil.example")
	if resp.StatusCode != 403 || sessionCookie(resp) != nil {
		t.Errorf("a login posted from another site: %d, cookie %v; want 403 and no session", resp.StatusCode, sessionCookie(resp))
	}

	for next, want := range map[string]string{
		"":                         admin.DefaultLanding,
		"/admin/dead/hook?after=1": "/admin/dead/hook?after=1",
		"https://evil.example/":    admin.DefaultLanding,
		"//evil.example/admin/":    admin.DefaultLanding,
		"/elsewhere":               admin.DefaultLanding,
	} {
		resp, _ := e.browser("POST", "/admin/login", url.Values{"token": {token}, "next": {next}}, nil)
		c := sessionCookie(resp)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want || c == nil {
			t.Errorf("login with next %q: %d to %q, cookie %v; want 303 to %q with a session", next, resp.StatusCode, resp.Header.Get("Location"), c, want)
			continue
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/admin" || c.MaxAge != int(admin.SessionTTL.Seconds()) || c.Secure {
			t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/admin, Max-Age 8h, not Secure over plain HTTP", c)
		}
	}
}

// TestSessionCookie: the cookie authenticates reads; a change needs proof
// that it comes from the admin pages; logout ends the session.
func TestSessionCookie(t *testing.T) {
	e := newEnv(t)
	resp, _ := e.browser("POST", "/admin/login", url.Values{"token": {token}}, nil)
	c := sessionCookie(resp)
	if c == nil {
		t.Fatal("no session cookie")
	}
	if resp, body := e.browser("GET", "/admin/dead/hook", nil, c); resp.StatusCode != 200 || !strings.Contains(body, `"destination":"hook"`) {
		t.Errorf("GET with the cookie: %d %s", resp.StatusCode, body)
	}
	forged := &http.Cookie{Name: admin.SessionCookie, Value: strings.ToUpper(c.Value[:1]) + c.Value[1:] + "X"}
	if resp, _ := e.browser("GET", "/admin/dead/hook", nil, forged); resp.StatusCode != 401 {
		t.Errorf("GET with a made-up session id: %d, want 401", resp.StatusCode)
	}

	const replay = "/admin/dead/hook/replay"
	for _, tc := range []struct {
		name   string
		header []string
		want   int
	}{
		{"no proof", nil, 403},
		{"page header", []string{admin.PageHeader, "page"}, 200},
		{"same-origin Origin", []string{"Origin", e.srv.URL}, 200},
		{"Sec-Fetch-Site same-origin", []string{"Sec-Fetch-Site", "same-origin"}, 200},
		{"another Origin, page header", []string{"Origin", "https://evil.example", admin.PageHeader, "page"}, 403},
		{"cross-site, page header", []string{"Sec-Fetch-Site", "cross-site", admin.PageHeader, "page"}, 403},
		{"same-site, page header", []string{"Sec-Fetch-Site", "same-site", admin.PageHeader, "page"}, 403},
		{"null Origin", []string{"Origin", "null", admin.PageHeader, "page"}, 403},
	} {
		if resp, body := e.browser("POST", replay, nil, c, tc.header...); resp.StatusCode != tc.want {
			t.Errorf("%s: POST %s with the cookie: %d %s, want %d", tc.name, replay, resp.StatusCode, body, tc.want)
		}
	}
	// Tools with the token are not asked for any of it.
	if st, b := e.call("POST", replay, nil); st != 200 {
		t.Errorf("POST with the bearer token: %d %s", st, b)
	}

	if resp, _ := e.browser("POST", "/admin/logout", nil, c); resp.StatusCode != 403 {
		t.Errorf("logout without proof it comes from the pages: %d, want 403", resp.StatusCode)
	}
	resp, _ = e.browser("POST", "/admin/logout", nil, c, admin.PageHeader, "page")
	if out := sessionCookie(resp); resp.StatusCode != 204 || out == nil || out.MaxAge >= 0 {
		t.Errorf("logout: %d, cookie %+v; want 204 and the cookie removed", resp.StatusCode, out)
	}
	if resp, _ := e.browser("GET", "/admin/dead/hook", nil, c); resp.StatusCode != 401 {
		t.Errorf("GET with the cookie after logout: %d, want 401", resp.StatusCode)
	}
}

// TestBrowserWithoutCredentials: a browser's page GET without credentials
// gets a Basic challenge (a URL's credentials answer it) and the login
// form; the same GET with the token as the Basic password gets a session
// for the page's own calls; a tool's call stays JSON.
func TestBrowserWithoutCredentials(t *testing.T) {
	e := newEnv(t)
	const accept = "text/html,application/xhtml+xml,*/*;q=0.8"
	resp, body := e.browser("GET", "/admin/dead/hook?after=0", nil, nil, "Accept", accept)
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `name="next" value="/admin/dead/hook?after=0"`) {
		t.Errorf("page GET without credentials: %d %q %q\n%s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), resp.Header.Get("Content-Type"), body)
	}
	if strings.Contains(body, "hook\"") {
		t.Error("the login form shows data")
	}
	resp, body = e.browser("GET", "/admin/dead/hook", nil, nil)
	if resp.StatusCode != 401 || body != `{"error":"unauthorized"}`+"\n" || strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("a tool's GET without credentials: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}

	basic := "Basic " + basicAuth("x", token)
	resp, _ = e.browser("GET", "/admin/dead/hook", nil, nil, "Authorization", basic, "Accept", accept)
	c := sessionCookie(resp)
	if resp.StatusCode != 200 || c == nil {
		t.Fatalf("page GET with the token as Basic password: %d, cookie %v; want 200 and a session", resp.StatusCode, c)
	}
	if resp, _ := e.browser("GET", "/admin/dead/hook", nil, c); resp.StatusCode != 200 {
		t.Errorf("the page's call with the session it got: %d", resp.StatusCode)
	}
	if resp, _ := e.browser("GET", "/admin/dead/hook", nil, c, "Authorization", basic, "Accept", accept); sessionCookie(resp) != nil {
		t.Error("a page GET that already has a session got another")
	}
	if resp, _ := e.browser("GET", "/admin/dead/hook", nil, nil, "Authorization", basic); sessionCookie(resp) != nil {
		t.Error("a tool's Basic-authenticated call got a session cookie")
	}
	if resp, _ := e.browser("GET", "/admin/dead/hook", nil, nil, "Authorization", "Basic "+basicAuth("x", "wrong-token-0123456789abcdef"), "Accept", accept); resp.StatusCode != 401 || sessionCookie(resp) != nil {
		t.Errorf("page GET with a wrong Basic password: %d", resp.StatusCode)
	}
}

func basicAuth(user, pass string) string {
	r, _ := http.NewRequest("GET", "http://x/", nil)
	r.SetBasicAuth(user, pass)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}
