package admin

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Browser sessions: see the package documentation, Authentication.
const (
	// SessionCookie is the name of the session cookie.
	SessionCookie = "insertfn_admin"
	// SessionTTL is how long a session lasts after its login.
	SessionTTL = 8 * time.Hour
	// MaxSessions bounds the sessions kept at once; a login past it ends
	// the session that would end first.
	MaxSessions = 256
	// PageHeader is the header the admin pages send with their calls: a
	// cookie-authenticated POST, PUT, PATCH or DELETE needs it, or an
	// Origin or Sec-Fetch-Site header that says the call comes from the
	// admin API's own origin.
	PageHeader = "X-Insertfn-Admin"
	// DefaultLanding is where a login without a next page leads.
	DefaultLanding = "/admin/overview/"
)

// sessions are the browser sessions, by the hash of their id (a lookup
// then reveals nothing about the ids through its timing). Safe for
// concurrent use.
type sessions struct {
	mu     sync.Mutex
	expiry map[[sha256.Size]byte]time.Time
}

func newSessions() *sessions {
	return &sessions{expiry: make(map[[sha256.Size]byte]time.Time)}
}

// start opens a session that ends at now+SessionTTL and returns its id.
func (s *sessions) start(now time.Time) string {
	id := rand.Text() // 128 bits from crypto/rand
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, end := range s.expiry {
		if !now.Before(end) {
			delete(s.expiry, k)
		}
	}
	for len(s.expiry) >= MaxSessions {
		var first [sha256.Size]byte
		var firstEnd time.Time
		for k, end := range s.expiry {
			if firstEnd.IsZero() || end.Before(firstEnd) {
				first, firstEnd = k, end
			}
		}
		delete(s.expiry, first)
	}
	s.expiry[sha256.Sum256([]byte(id))] = now.Add(SessionTTL)
	return id
}

// valid reports whether id names a session that has not ended at now.
func (s *sessions) valid(id string, now time.Time) bool {
	if id == "" {
		return false
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	end, ok := s.expiry[k]
	if ok && !now.Before(end) {
		delete(s.expiry, k)
		return false
	}
	return ok
}

// end ends the session id, if there is one.
func (s *sessions) end(id string) {
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	delete(s.expiry, k)
	s.mu.Unlock()
}

// credential says how a request authenticated.
type credential int

const (
	noCredential credential = iota
	bearerCredential
	basicCredential
	cookieCredential
)

// authenticate returns how r authenticated: the token (as a bearer token
// or the password of Basic auth, compared in constant time), else a
// session cookie.
func (a *Admin) authenticate(r *http.Request) credential {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		how := bearerCredential
		switch {
		case strings.EqualFold(scheme, "Bearer"):
		case strings.EqualFold(scheme, "Basic"):
			_, pass, ok := r.BasicAuth()
			if !ok {
				return noCredential
			}
			tok, how = pass, basicCredential
		default:
			return noCredential
		}
		if a.tokenMatches(tok) {
			return how
		}
		return noCredential
	}
	if a.sessions.valid(sessionID(r), a.now()) {
		return cookieCredential
	}
	return noCredential
}

// tokenMatches compares tok with the admin token in constant time (of
// their hashes, so that the length does not leak either).
func (a *Admin) tokenMatches(tok string) bool {
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], a.tokenHash[:]) == 1
}

func sessionID(r *http.Request) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// setSession starts a session and sets its cookie on w.
func (a *Admin) setSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: a.sessions.start(a.now()), Path: "/admin",
		MaxAge: int(SessionTTL / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// unsafe reports whether r's method may change something.
func unsafe(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// sameOrigin reports whether r shows that it comes from a page of the
// admin API's own origin: Sec-Fetch-Site "same-origin", an Origin of the
// same host, or (from a browser that sends neither) PageHeader, which a
// page of another origin cannot send without a CORS preflight the admin
// API never grants. A Sec-Fetch-Site or Origin that names another site
// always refuses.
func sameOrigin(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	if site != "" && site != "same-origin" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
	}
	return site == "same-origin" || r.Header.Get(PageHeader) != ""
}

// crossSite reports whether r says it comes from another site (a login
// form posted from a page elsewhere); a request that says nothing, like
// curl's, is not.
func crossSite(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return true
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err != nil || !strings.EqualFold(u.Host, r.Host)
	}
	return false
}

// wantsPage reports whether r is a browser navigating to a page: a GET
// that accepts HTML.
func wantsPage(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// landing returns the page a login leads to: next when it is a page of
// the admin API (never another site), else DefaultLanding.
func landing(next string) string {
	u, err := url.Parse(next)
	if next == "" || err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/admin/") ||
		strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") || u.Path == "/admin/login" {
		return DefaultLanding
	}
	return u.RequestURI()
}

// POST /admin/login (form: token, next): exchanges the admin token for a
// session cookie and leads to next; GET /admin/login: the form.
func (a *Admin) login(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		a.loginForm(w, http.StatusOK, r.URL.Query().Get("next"), "")
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "login: use GET for the form, POST to log in")
		return
	}
	if crossSite(r) {
		writeError(w, http.StatusForbidden, "login: refused a login posted from another site; open /admin/login on the admin address")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "login: want a form with the field token (application/x-www-form-urlencoded): "+err.Error())
		return
	}
	next := r.PostForm.Get("next")
	if !a.tokenMatches(r.PostForm.Get("token")) {
		a.log.Warn("admin: a login with a wrong token", "remote", r.RemoteAddr)
		a.loginForm(w, http.StatusUnauthorized, next, "That is not the admin token. Paste the token from admin.token, INSERTFN_ADMIN_TOKEN or DATA/admin-token.")
		return
	}
	a.setSession(w, r)
	http.Redirect(w, r, landing(next), http.StatusSeeOther)
}

// POST /admin/logout: ends the session of the request's cookie.
func (a *Admin) logout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "logout: use POST")
		return
	}
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "logout: refused a request that does not come from the admin pages (no same-origin Origin, Sec-Fetch-Site or "+PageHeader+" header)")
		return
	}
	if id := sessionID(r); id != "" {
		a.sessions.end(id)
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/admin", MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	if r.Header.Get(PageHeader) != "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
}

// loginPage is the login form: no script, its style allowed by hash.
var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>insertfn · log in</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; color: #1d2330; background: #f7f8fa; display: grid; place-items: center; min-height: 90vh; margin: 0; }
  form { background: #fff; border: 1px solid #d5d9e0; border-radius: 8px; padding: 1.2rem 1.4rem; width: min(26rem, 90vw); }
  h1 { font-size: 1.2rem; margin: 0 0 .8rem; }
  label { display: block; margin-bottom: .3rem; }
  input[type=password] { width: 100%; box-sizing: border-box; font: inherit; padding: .35rem .5rem; border: 1px solid #b8bfcc; border-radius: 5px; }
  button { margin-top: .8rem; font: inherit; padding: .3rem 1rem; border: 1px solid #2f6fdf; background: #2f6fdf; color: #fff; border-radius: 5px; cursor: pointer; }
  .error { color: #c4272f; margin: 0 0 .6rem; }
  .muted { color: #6b7385; font-size: .85rem; margin-top: .8rem; }
</style>
</head>
<body>
<form method="post" action="/admin/login">
  <h1>insertfn admin</h1>
  {{if .Error}}<p class="error" id="login-error">{{.Error}}</p>{{end}}
  <label for="token">Admin token</label>
  <input type="password" id="token" name="token" autocomplete="current-password" autofocus required>
  <input type="hidden" name="next" value="{{.Next}}">
  <button type="submit">Log in</button>
  <p class="muted">The token is admin.token in the configuration, INSERTFN_ADMIN_TOKEN, or the one the server generated in DATA/admin-token. The session lasts 8 hours.</p>
</form>
</body>
</html>
`))

// loginCSP allows the login page's inline style (by hash) and its form.
var loginCSP = func() string {
	var b bytes.Buffer
	loginPage.Execute(&b, struct{ Next, Error string }{})
	_, rest, _ := bytes.Cut(b.Bytes(), []byte("<style>"))
	style, _, _ := bytes.Cut(rest, []byte("</style>"))
	sum := sha256.Sum256(style)
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
}()

// loginForm answers with the login form, leading to next, saying msg.
func (a *Admin) loginForm(w http.ResponseWriter, status int, next, msg string) {
	var b bytes.Buffer
	if err := loginPage.Execute(&b, struct{ Next, Error string }{landing(next), msg}); err != nil {
		writeError(w, http.StatusInternalServerError, "login: the form: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", loginCSP)
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
