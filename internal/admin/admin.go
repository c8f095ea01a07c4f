// Package admin is insertfn's admin API: deploying, listing, activating,
// rolling back, deleting and testing functions; reading and changing the
// consent store; listing, replaying and purging dead letters; the live
// event stream (GET /admin/tail, see [TailHandler]). It runs on
// its own listener (default 127.0.0.1:8081), apart from the event
// listener, and every call needs a bearer token.
//
// It is built on net/http, not fasthttp like the event server: the admin
// API is not the hot path (a few calls a minute, not thousands of events a
// second), and net/http gives a standard mux with method and path patterns
// ("PUT /admin/functions/{name}"), http.MaxBytesReader, httptest and a
// client in the standard library, which the CLI uses through [Client].
//
// # Authentication
//
// Tools authenticate every request, /metrics and /debug/pprof/ included, with
// "Authorization: Bearer TOKEN" (or the token as the password of Basic
// auth, any user name); only the probes in [Deps.Public] (/healthz,
// /readyz) answer without it. The token is compared in constant time (of
// hashes, so its length does not leak either). The token is
// [Config.Token], or else the environment variable [Config.TokenEnv]
// names, and must be at least [MinTokenLen] bytes.
//
// A person's browser logs in instead: GET /admin/login is a form where
// the token is pasted; POST /admin/login (form fields token and next)
// exchanges it for a session cookie ([SessionCookie]: HttpOnly,
// SameSite=Strict, Path=/admin, Secure when the request came over TLS)
// that lasts [SessionTTL], and leads to next (a page under /admin/, by
// default [DefaultLanding]). The session authenticates every /admin call
// the pages make, fetch and EventSource alike. POST /admin/logout ends
// it. Sessions are random ids kept in memory (at most [MaxSessions]; a
// restart ends them all).
//
// A page opened with the token in its URL (http://x:TOKEN@host/admin/...)
// works too: a browser's GET of a page without credentials gets 401 with
// a Basic challenge, which the browser answers with the URL's
// credentials (or asks the person for them, the token as the password;
// cancelling shows the login form, which is the 401's body), and a page
// GET authenticated by Basic auth also sets a session cookie, which the
// page's own calls then carry.
//
// Cookies are sent by the browser whoever asks, so a cookie-authenticated
// POST, PUT, PATCH or DELETE must show that it comes from the admin
// pages, beyond what SameSite=Strict already refuses: a Sec-Fetch-Site or
// Origin header naming another site is refused with 403, and one of
// Sec-Fetch-Site "same-origin", an Origin of the admin API's own host or
// the [PageHeader] header (which another origin cannot send without a
// CORS preflight that is never granted) is required. A login posted from
// another site is refused too. Calls with the token carry no such
// ambient authority and are not checked.
//
// A request without credentials, or with wrong ones, gets 401 and the
// fixed body {"error":"unauthorized"} (a browser's page GET: the login
// form): nothing about the data or the routes leaks (credentials are
// checked before routing).
//
// Without a token the admin API is never open: on a non-loopback address
// [New] refuses to start; on a loopback address it generates a random
// token, which [Admin.Token] returns and [Admin.TokenGenerated] reports,
// for the host to show the operator or write to a file only they can
// read. (A loopback listener without any token would let every local
// process and every browser page that reaches 127.0.0.1 change what runs
// on every event.)
//
// Prometheus sends bearer tokens (authorization.credentials_file in a
// scrape config), so /metrics is behind the token like the rest.
//
// # Errors
//
// Every error is JSON, {"error": "..."}, with the status saying the kind:
// 400 malformed request, 401 no or wrong credentials, 403 a
// cookie-authenticated change that does not come from the admin pages, 404 no such function,
// version, record, destination or dead letter, 409 a conflict (nothing to
// roll back to, a function in use, a read-only store), 413 body too large
// (wasm 32 MiB, other bodies 16 MiB), 422 a module or manifest the
// registry refused (the old version stays live) or filters that do not
// compile (the filters in place stay; see [FilterError]), 501 a part the host did
// not configure, 503 the consent store or queue unavailable.
package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/queue"
	"github.com/insertfn/insertfn/runtime"
)

// Defaults of [Config].
const (
	DefaultListen   = "127.0.0.1:8081"
	DefaultTokenEnv = "INSERTFN_ADMIN_TOKEN"
	// MinTokenLen is the shortest token accepted, in bytes.
	MinTokenLen = 16
)

// Body limits.
const (
	// MaxWasmBytes bounds an uploaded module.
	MaxWasmBytes = 32 << 20
	// MaxBodyBytes bounds every other request body.
	MaxBodyBytes = 16 << 20
)

// Config configures the admin API. The zero value listens on
// [DefaultListen] and reads the token from [DefaultTokenEnv].
type Config struct {
	// Listen is the address of the admin listener (default
	// 127.0.0.1:8081).
	Listen string `yaml:"listen" json:"listen,omitempty"`
	// Token is the bearer token every call needs. Empty: the environment
	// variable TokenEnv names.
	Token string `yaml:"token" json:"token,omitempty"`
	// TokenEnv names the environment variable holding the token when
	// Token is empty (default INSERTFN_ADMIN_TOKEN).
	TokenEnv string `yaml:"token_env" json:"token_env,omitempty"`
}

// Deps are what the admin API works on. Registry and Versions are
// required; a nil Store, Queue or Engine turns the calls that need it
// into 501 answers.
type Deps struct {
	// Registry runs the functions.
	Registry *functions.Registry
	// Versions stores the deployed versions and makes them live in
	// Registry (it must be over the same registry).
	Versions *functions.VersionStore
	// Store is the consent store of /admin/consent.
	Store *consentstore.Store
	// Queue holds the destinations' dead letters.
	Queue queue.Queue
	// Destinations are the names of the configured destinations: the
	// ones /admin/dead knows.
	Destinations []string
	// Engine loads a function's stored wasm again to test it with other
	// settings or consent records (POST /admin/functions/{name}/test);
	// nil: such tests are refused.
	Engine *runtime.Engine
	// Filters holds the destinations' filters of
	// /admin/destinations/{name}/filters; nil: those calls answer 501
	// (POST /admin/filters/test of an expression or a list works without).
	Filters FilterStore
	// FunctionUsers, when set, returns what uses a function (sources and
	// destinations that name it); DELETE of a function in use is then
	// refused with 409 rather than failing its events.
	FunctionUsers func(name string) []string
	// Metrics, when set, is mounted at /metrics (behind the token).
	Metrics http.Handler
	// Handlers are more routes behind the token, by http.ServeMux pattern
	// (for example "GET /admin/overview"); they must not clash with the
	// admin API's own.
	Handlers map[string]http.Handler
	// Public are routes served without the token, by exact path: the
	// liveness and readiness probes ("/healthz", "/readyz") that an
	// orchestrator calls without credentials. Keep them free of data.
	Public map[string]http.Handler
	// Logger receives one line per change (deploy, activate, rollback,
	// delete, import, replay, purge) and per failure; nil: slog.Default().
	Logger *slog.Logger
}

// Admin is the admin API: an http.Handler. It is safe for concurrent use.
type Admin struct {
	cfg       Config
	deps      Deps
	log       *slog.Logger
	token     string
	tokenHash [sha256.Size]byte
	generated bool
	dests     map[string]bool
	mux       *http.ServeMux
	sessions  *sessions
	now       func() time.Time
}

// New checks cfg and deps and returns the admin API.
//
// # Results
//   - the handler;
//   - an error when a required dependency is missing, the token is too
//     short, or no token is configured for a non-loopback Listen.
func New(cfg Config, deps Deps) (*Admin, error) {
	if deps.Registry == nil || deps.Versions == nil {
		return nil, errors.New("admin: Deps.Registry and Deps.Versions are required")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.TokenEnv == "" {
		cfg.TokenEnv = DefaultTokenEnv
	}
	a := &Admin{cfg: cfg, deps: deps, log: deps.Logger, dests: make(map[string]bool), sessions: newSessions(), now: time.Now}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.token = cfg.Token
	if a.token == "" {
		a.token = os.Getenv(cfg.TokenEnv)
	}
	switch {
	case a.token == "" && !loopback(cfg.Listen):
		return nil, fmt.Errorf("admin: listen %s is not a loopback address and no token is configured: set admin.token or the environment variable %s (at least %d characters), or listen on 127.0.0.1", cfg.Listen, cfg.TokenEnv, MinTokenLen)
	case a.token == "":
		a.token, a.generated = rand.Text(), true
	case len(a.token) < MinTokenLen:
		return nil, fmt.Errorf("admin: the token is %d characters: use at least %d (for example: openssl rand -hex 32)", len(a.token), MinTokenLen)
	}
	a.tokenHash = sha256.Sum256([]byte(a.token))
	for _, d := range deps.Destinations {
		a.dests[d] = true
	}
	if err := a.routes(); err != nil {
		return nil, err
	}
	return a, nil
}

// loopback reports whether a listen address only accepts connections from
// this machine.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Listen returns the address the admin API is configured to listen on.
func (a *Admin) Listen() string { return a.cfg.Listen }

// Token returns the token calls need: the configured one, or the one New
// generated.
func (a *Admin) Token() string { return a.token }

// TokenGenerated reports whether New generated the token (none was
// configured): the host should tell the operator where to find it.
func (a *Admin) TokenGenerated() bool { return a.generated }

func (a *Admin) routes() (err error) {
	mux := http.NewServeMux()
	defer func() {
		// ServeMux panics on a clashing pattern: say which as an error.
		if r := recover(); r != nil {
			err = fmt.Errorf("admin: routes: %v", r)
		}
	}()
	mux.HandleFunc("PUT /admin/functions/{name}", a.deployFunction)
	mux.HandleFunc("GET /admin/functions", a.listFunctions)
	mux.HandleFunc("GET /admin/functions/{name}", a.getFunction)
	mux.HandleFunc("POST /admin/functions/{name}/activate", a.activateFunction)
	mux.HandleFunc("POST /admin/functions/{name}/rollback", a.rollbackFunction)
	mux.HandleFunc("DELETE /admin/functions/{name}", a.deleteFunction)
	mux.HandleFunc("POST /admin/functions/{name}/test", a.testFunction)

	mux.HandleFunc("GET /admin/consent/{id}", a.getConsent)
	mux.HandleFunc("PUT /admin/consent/{id}", a.putConsent)
	mux.HandleFunc("PATCH /admin/consent/{id}", a.patchConsent)
	mux.HandleFunc("DELETE /admin/consent/{id}", a.deleteConsent)
	mux.HandleFunc("GET /admin/consent/{id}/history", a.consentHistory)
	mux.HandleFunc("POST /admin/consent/import", a.importConsent)

	mux.HandleFunc("GET /admin/dead/{destination}", a.listDead)
	mux.HandleFunc("POST /admin/dead/{destination}/replay", a.replayDead)
	mux.HandleFunc("DELETE /admin/dead/{destination}", a.purgeDead)

	mux.HandleFunc("GET /admin/destinations/{name}/filters", a.getFilters)
	mux.HandleFunc("PUT /admin/destinations/{name}/filters", a.putFilters)
	mux.HandleFunc("DELETE /admin/destinations/{name}/filters", a.resetFilters)
	mux.HandleFunc("POST /admin/filters/test", a.testFilters)

	if a.deps.Metrics != nil {
		mux.Handle("GET /metrics", a.deps.Metrics)
	}
	// Profiles of the running server (Go's net/http/pprof): `go tool
	// pprof` reads them, bench/stages sorts them into an event's stages.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	for pattern, h := range a.deps.Handlers {
		mux.Handle(pattern, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no admin call %s %s", r.Method, r.URL.Path))
	})
	a.mux = mux
	return nil
}

// ServeHTTP authenticates the request (see the package documentation),
// then routes it.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, ok := a.deps.Public[r.URL.Path]; ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		h.ServeHTTP(w, r)
		return
	}
	switch r.URL.Path {
	case "/admin/login":
		a.login(w, r)
		return
	case "/admin/logout":
		a.logout(w, r)
		return
	}
	how := a.authenticate(r)
	switch {
	case how == noCredential:
		if wantsPage(r) {
			// The browser answers the challenge with the credentials of
			// the page's URL, or asks the person; the body is the login
			// form, shown when they cancel.
			w.Header().Set("WWW-Authenticate", `Basic realm="insertfn admin (any user name, the admin token as password)", charset="UTF-8"`)
			a.loginForm(w, http.StatusUnauthorized, r.URL.RequestURI(), "")
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="insertfn admin"`)
		writeError(w, http.StatusUnauthorized, "unauthorized")
		return
	case how == cookieCredential && unsafe(r) && !sameOrigin(r):
		writeError(w, http.StatusForbidden, fmt.Sprintf("%s %s with the session cookie does not come from the admin pages (no same-origin Origin, Sec-Fetch-Site or %s header): refused; tools use the bearer token", r.Method, r.URL.Path, PageHeader))
		return
	case how == basicCredential && wantsPage(r) && !a.sessions.valid(sessionID(r), a.now()):
		// The page's own calls cannot carry the URL's credentials: give
		// them a session.
		a.setSession(w, r)
	}
	a.mux.ServeHTTP(w, r)
}

// Serve answers admin calls on ln until ctx is done, then shuts the
// server down, giving calls in flight up to 10 s. Streams (GET
// /admin/tail) end as soon as ctx is done: they have no end of their own
// to wait for.
//
// # Results
//   - nil after ctx is done, or the error that stopped the server.
func (a *Admin) Serve(ctx context.Context, ln net.Listener) error {
	// Calls in flight keep their context when ctx is done (a deploy
	// finishes); streams watch ctx's end through stopping.
	base := context.WithValue(context.WithoutCancel(ctx), stoppingKey{}, ctx.Done())
	srv := &http.Server{
		Handler:           a,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(jsonErrorsListener{ln}) }()
	select {
	case err := <-done:
		return fmt.Errorf("admin: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-done
	if err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

// stoppingKey is the context key under which Serve gives its handlers
// the channel closed when the server begins to shut down.
type stoppingKey struct{}

// stopping returns the channel closed when the server that serves a
// request with context ctx begins to shut down: nil (never closed) when
// the request is not served by [Admin.Serve].
func stopping(ctx context.Context) <-chan struct{} {
	c, _ := ctx.Value(stoppingKey{}).(<-chan struct{})
	return c
}

// ListenAndServe listens on the configured address and serves until ctx
// is done (see [Admin.Serve]).
func (a *Admin) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("admin: listen: %w", err)
	}
	return a.Serve(ctx, ln)
}

// errorBody is the JSON of every error.
type errorBody struct {
	Error string `json:"error"`
}

// writeJSON writes v as the JSON answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{"admin: encode the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeError writes {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{msg})
}

// fail answers with err and logs it when it is the server's fault.
func (a *Admin) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	if status >= 500 {
		a.log.Error("admin: call failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeError(w, status, err.Error())
}

// readBody reads a request body of at most limit bytes.
//
// # Results
//   - the body;
//   - the status and error to answer with when it could not be read.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, int, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	b, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body larger than %d bytes", limit)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("read the request body: %v", err)
	}
	return b, 0, nil
}
