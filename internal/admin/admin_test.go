package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/queue"
	"github.com/insertfn/insertfn/internal/wasmbuild"
	"github.com/insertfn/insertfn/runtime"
	"github.com/tidwall/gjson"
)

var builder *wasmbuild.Builder

func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m, &builder)) }

const token = "test-token-0123456789abcdef"

// env is an admin API over a real registry, version store, consent store
// and queue.
type env struct {
	t       *testing.T
	dir     string
	engine  *runtime.Engine
	reg     *functions.Registry
	vs      *functions.VersionStore
	store   *consentstore.Store
	q       queue.Queue
	admin   *admin.Admin
	srv     *httptest.Server
	metrics http.Handler
}

func newEngine(t *testing.T) *runtime.Engine {
	t.Helper()
	eng, err := runtime.NewEngine(runtime.Config{CacheDir: wasmbuild.CompilationCache()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	return eng
}

// newRegistry returns a registry and a version store over dir.
func newRegistry(t *testing.T, eng *runtime.Engine, store *consentstore.Store, dir string) (*functions.Registry, *functions.VersionStore) {
	t.Helper()
	reg := functions.NewRegistry(eng, store)
	t.Cleanup(func() { reg.Close(context.Background()) })
	vs, err := functions.NewVersionStore(dir, reg)
	if err != nil {
		t.Fatal(err)
	}
	return reg, vs
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: filepath.Join(t.TempDir(), "functions")}
	e.engine = newEngine(t)
	e.store = consentstore.New(consentstore.NewMemory(), consentstore.Options{})
	t.Cleanup(func() { e.store.Close() })
	e.reg, e.vs = newRegistry(t, e.engine, e.store, e.dir)
	q, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{Sync: queue.SyncNever, MaxBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	e.q = q
	e.metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "insertfn_up 1\n") })
	e.admin, err = admin.New(admin.Config{Token: token}, admin.Deps{
		Registry: e.reg, Versions: e.vs, Store: e.store, Queue: e.q, Engine: e.engine,
		Destinations: []string{"hook", "idle"}, Metrics: e.metrics, Logger: slog.New(slog.DiscardHandler),
		FunctionUsers: func(name string) []string {
			if name == "in-use" {
				return []string{"source default"}
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.admin)
	t.Cleanup(e.srv.Close)
	return e
}

// call sends a request with the admin token and returns the status and body.
func (e *env) call(method, path string, body []byte, header ...string) (int, []byte) {
	e.t.Helper()
	return e.callAs(token, method, path, body, header...)
}

func (e *env) callAs(tok, method, path string, body []byte, header ...string) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); path != "/metrics" && ct != "application/json" {
		e.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return resp.StatusCode, b
}

// want checks a status and returns the body parsed by gjson.
func (e *env) want(status int, method, path string, body []byte, header ...string) gjson.Result {
	e.t.Helper()
	got, b := e.call(method, path, body, header...)
	if got != status {
		e.t.Fatalf("%s %s: %d %s, want %d", method, path, got, b, status)
	}
	if !json.Valid(b) {
		e.t.Fatalf("%s %s: not JSON: %s", method, path, b)
	}
	return gjson.ParseBytes(b)
}

// deploy uploads wasm as name with the manifest header.
func (e *env) deploy(status int, name string, wasm []byte, manifest string) gjson.Result {
	e.t.Helper()
	var h []string
	if manifest != "" {
		h = []string{admin.ManifestHeader, manifest}
	}
	return e.want(status, http.MethodPut, "/admin/functions/"+name, wasm, h...)
}

// live runs a deliver event through name and returns the "version" its
// settings stamped on it.
func (e *env) live(name string) string {
	e.t.Helper()
	var out functions.Outcome
	if err := e.reg.Run(context.Background(), name, []byte(`{"type":"track","verdict":"deliver"}`), &out); err != nil {
		e.t.Fatalf("run %s: %v", name, err)
	}
	if !out.Deliver {
		e.t.Fatalf("run %s: not delivered: %+v", name, out)
	}
	return gjson.GetBytes(out.Event, "properties.version").String()
}

func verdicts(t *testing.T) []byte     { return builder.Build(t, "../../functions/testdata/verdicts") }
func consentMatch(t *testing.T) []byte { return builder.Build(t, "../../examples/consent-match") }

func TestUnauthorized(t *testing.T) {
	e := newEnv(t)
	const body = `{"error":"unauthorized"}` + "\n"
	for _, tc := range []struct{ name, header string }{
		{"no header", ""},
		{"wrong token", "Bearer wrong-token-0123456789abcdef"},
		{"token prefix", "Bearer " + token[:len(token)-1]},
		{"token suffix", "Bearer " + token + "x"},
		{"basic", "Basic " + token},
		{"bare token", token},
		{"empty bearer", "Bearer "},
	} {
		for _, path := range []string{"/admin/functions", "/admin/consent/u1", "/admin/dead/hook", "/metrics", "/debug/pprof/heap", "/admin/nothing-here"} {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || string(b) != body {
				t.Errorf("%s, GET %s: %d %q; want 401 %q", tc.name, path, resp.StatusCode, b, body)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s, GET %s: no WWW-Authenticate", tc.name, path)
			}
		}
	}
	// A refused deploy changes nothing.
	if st, _ := e.callAs("wrong-token-0123456789abcdef", http.MethodPut, "/admin/functions/f", verdicts(t)); st != http.StatusUnauthorized {
		t.Fatalf("unauthorized deploy: %d", st)
	}
	if names := e.reg.Names(); len(names) != 0 {
		t.Fatalf("an unauthorized deploy went live: %v", names)
	}
	// The right token passes, in any case of the scheme, /metrics included.
	if st, b := e.callAs(token, http.MethodGet, "/metrics", nil); st != http.StatusOK || string(b) != "insertfn_up 1\n" {
		t.Fatalf("metrics: %d %s", st, b)
	}
	// And the profiles.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/debug/pprof/goroutine?debug=1", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := e.srv.Client().Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "goroutine profile:") {
			t.Fatalf("goroutine profile: %d %.200s", resp.StatusCode, b)
		}
	}
	req, _ = http.NewRequest(http.MethodGet, e.srv.URL+"/admin/functions", nil)
	req.Header.Set("Authorization", "bearer "+token)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("lower-case scheme: %d", resp.StatusCode)
	}
	// Unknown routes are JSON 404s once authorized.
	if r := e.want(http.StatusNotFound, http.MethodGet, "/admin/nothing-here", nil); !strings.Contains(r.Get("error").String(), "no admin call") {
		t.Fatalf("unknown route: %s", r.Raw)
	}
}

func TestNewTokenRules(t *testing.T) {
	eng := newEngine(t)
	reg, vs := newRegistry(t, eng, nil, t.TempDir())
	deps := admin.Deps{Registry: reg, Versions: vs}
	t.Setenv(admin.DefaultTokenEnv, "")

	for _, listen := range []string{"0.0.0.0:8081", ":8081", "192.0.2.1:8081", "[::]:8081", "example.com:8081"} {
		_, err := admin.New(admin.Config{Listen: listen}, deps)
		if err == nil || !strings.Contains(err.Error(), "no token") {
			t.Errorf("listen %s without a token: %v, want a refusal", listen, err)
		}
	}
	for _, listen := range []string{"", "127.0.0.1:8081", "[::1]:9000", "localhost:8081", "127.0.0.2:1"} {
		a, err := admin.New(admin.Config{Listen: listen}, deps)
		if err != nil {
			t.Fatalf("listen %q without a token: %v", listen, err)
		}
		if !a.TokenGenerated() || len(a.Token()) < admin.MinTokenLen {
			t.Fatalf("listen %q: generated %v, token %q", listen, a.TokenGenerated(), a.Token())
		}
	}
	a1, _ := admin.New(admin.Config{}, deps)
	a2, _ := admin.New(admin.Config{}, deps)
	if a1.Token() == a2.Token() {
		t.Fatal("two generated tokens are equal")
	}
	if a1.Listen() != admin.DefaultListen {
		t.Fatalf("default listen %q", a1.Listen())
	}

	if _, err := admin.New(admin.Config{Token: "short"}, deps); err == nil || !strings.Contains(err.Error(), "at least") {
		t.Fatalf("short token: %v", err)
	}
	t.Setenv("MY_ADMIN_TOKEN", "from-the-environment-123")
	a, err := admin.New(admin.Config{Listen: "0.0.0.0:8081", TokenEnv: "MY_ADMIN_TOKEN"}, deps)
	if err != nil || a.Token() != "from-the-environment-123" || a.TokenGenerated() {
		t.Fatalf("token from the environment: %v, %q", err, a.Token())
	}
	a, err = admin.New(admin.Config{Token: "from-the-config-12345", TokenEnv: "MY_ADMIN_TOKEN"}, deps)
	if err != nil || a.Token() != "from-the-config-12345" {
		t.Fatalf("token from the config: %v, %q", err, a.Token())
	}
	if _, err := admin.New(admin.Config{Token: token}, admin.Deps{Registry: reg}); err == nil {
		t.Fatal("no version store: no error")
	}
	if _, err := admin.New(admin.Config{Token: token}, admin.Deps{Registry: reg, Versions: vs,
		Handlers: map[string]http.Handler{"GET /admin/functions": http.NotFoundHandler()}}); err == nil {
		t.Fatal("a clashing extra route: no error")
	}
}

func TestFunctionLifecycle(t *testing.T) {
	e := newEnv(t)
	wasm, other := verdicts(t), consentMatch(t)

	v1 := e.deploy(http.StatusCreated, "f", wasm, `{"settings":{"version":"1"},"limits":{"pool_size":2,"timeout":"2s"}}`)
	if v1.Get("hash").String() != runtime.Hash(wasm) || !v1.Get("active").Bool() || v1.Get("size").Int() != int64(len(wasm)) || !v1.Get("uploaded_at").Exists() {
		t.Fatalf("deploy: %s", v1.Raw)
	}
	if got := e.live("f"); got != "1" {
		t.Fatalf("live %q, want 1", got)
	}
	if r := e.want(http.StatusConflict, http.MethodPost, "/admin/functions/f/rollback", nil); !strings.Contains(r.Get("error").String(), "previous") {
		t.Fatalf("rollback of the first version: %s", r.Raw)
	}
	e.deploy(http.StatusCreated, "f", wasm, `{"settings":{"version":"2"}}`)
	if got := e.live("f"); got != "2" {
		t.Fatalf("live %q, want 2", got)
	}
	v3 := e.deploy(http.StatusCreated, "f", other, "")
	e.deploy(http.StatusCreated, "g", wasm, `{"name":"g","settings":{"version":"g"},"on_error":"deliver"}`)

	list := e.want(http.StatusOK, http.MethodGet, "/admin/functions", nil)
	if n := list.Get("functions.#").Int(); n != 2 {
		t.Fatalf("list: %s", list.Raw)
	}
	f := list.Get(`functions.#(name=="f")`)
	if f.Get("active").String() != v3.Get("hash").String() || f.Get("versions.#").Int() != 2 ||
		!f.Get("versions.0.active").Bool() || f.Get("versions.1.active").Bool() ||
		f.Get("versions.1.hash").String() != runtime.Hash(wasm) {
		t.Fatalf("list f: %s", f.Raw)
	}
	if g := e.want(http.StatusOK, http.MethodGet, "/admin/functions/g", nil); g.Get("versions.0.manifest.on_error").String() != "deliver" {
		t.Fatalf("get g: %s", g.Raw)
	}

	// Rollback goes back to the verdicts wasm with the settings it ran with.
	back := e.want(http.StatusOK, http.MethodPost, "/admin/functions/f/rollback", nil)
	if back.Get("hash").String() != runtime.Hash(wasm) || e.live("f") != "2" {
		t.Fatalf("rollback: %s", back.Raw)
	}
	act := e.want(http.StatusOK, http.MethodPost, "/admin/functions/f/activate?version="+v3.Get("hash").String(), nil)
	if active, _ := e.reg.Active("f"); active.Hash != act.Get("hash").String() {
		t.Fatalf("activate: live %s, answer %s", active.Hash, act.Raw)
	}
	e.want(http.StatusBadRequest, http.MethodPost, "/admin/functions/f/activate", nil)
	e.want(http.StatusNotFound, http.MethodPost, "/admin/functions/f/activate?version="+strings.Repeat("a", 64), nil)
	e.want(http.StatusNotFound, http.MethodPost, "/admin/functions/f/activate?version=..%2F..%2Fx", nil)

	// Bad requests.
	e.deploy(http.StatusBadRequest, "-bad", wasm, "")
	e.deploy(http.StatusBadRequest, "f", wasm, `{"name":"other"}`)
	e.deploy(http.StatusBadRequest, "f", wasm, `{"wasm":"x.wasm"}`)
	e.deploy(http.StatusBadRequest, "f", wasm, `{"setings":{}}`)
	e.deploy(http.StatusBadRequest, "f", wasm, `{"on_error":"sometimes"}`)
	e.deploy(http.StatusBadRequest, "f", wasm, `{"settings":[1]}`)
	e.deploy(http.StatusBadRequest, "f", nil, "")

	// Delete: gone from the registry and the store; a function in use is
	// refused.
	e.deploy(http.StatusCreated, "in-use", wasm, "")
	if r := e.want(http.StatusConflict, http.MethodDelete, "/admin/functions/in-use", nil); !strings.Contains(r.Get("error").String(), "source default") {
		t.Fatalf("delete in use: %s", r.Raw)
	}
	if _, err := e.reg.Active("in-use"); err != nil {
		t.Fatalf("a refused delete removed the function: %v", err)
	}
	e.want(http.StatusOK, http.MethodDelete, "/admin/functions/g", nil)
	if _, err := e.reg.Active("g"); err == nil {
		t.Fatal("g still live after delete")
	}
	e.want(http.StatusNotFound, http.MethodGet, "/admin/functions/g", nil)
	e.want(http.StatusNotFound, http.MethodDelete, "/admin/functions/g", nil)
	e.want(http.StatusNotFound, http.MethodPost, "/admin/functions/g/rollback", nil)
}

func TestBrokenUploadKeepsOldVersion(t *testing.T) {
	e := newEnv(t)
	wasm := verdicts(t)
	good := e.deploy(http.StatusCreated, "f", wasm, `{"settings":{"version":"1"}}`)
	for what, tc := range map[string]struct {
		body   []byte
		status int
	}{
		"not wasm":  {[]byte("#!/bin/sh\necho hi\n"), http.StatusUnprocessableEntity},
		"no ABI":    {[]byte("\x00asm\x01\x00\x00\x00"), http.StatusUnprocessableEntity},
		"truncated": {wasm[:len(wasm)/3], http.StatusUnprocessableEntity},
		"empty":     {nil, http.StatusBadRequest},
	} {
		r := e.deploy(tc.status, "f", tc.body, `{"settings":{"version":"2"}}`)
		if r.Get("error").String() == "" {
			t.Fatalf("%s: no reason: %s", what, r.Raw)
		}
		if got := e.live("f"); got != "1" {
			t.Fatalf("%s: live %q after a refused upload, want 1", what, got)
		}
	}
	f := e.want(http.StatusOK, http.MethodGet, "/admin/functions/f", nil)
	if f.Get("active").String() != good.Get("hash").String() || f.Get("versions.#").Int() != 1 {
		t.Fatalf("after refused uploads: %s", f.Raw)
	}
}

func TestBodyLimits(t *testing.T) {
	e := newEnv(t)
	big := bytes.Repeat([]byte(" "), admin.MaxWasmBytes+1)
	copy(big, "\x00asm")
	e.deploy(http.StatusRequestEntityTooLarge, "f", big, "")
	e.want(http.StatusRequestEntityTooLarge, http.MethodPost, "/admin/consent/import", big[:admin.MaxBodyBytes+1])
	if names := e.reg.Names(); len(names) != 0 {
		t.Fatalf("live after a too large upload: %v", names)
	}
}

func TestVersionsPersistAcrossRestart(t *testing.T) {
	e := newEnv(t)
	wasm, other := verdicts(t), consentMatch(t)
	e.deploy(http.StatusCreated, "f", wasm, `{"settings":{"version":"1"}}`)
	e.deploy(http.StatusCreated, "f", wasm, `{"settings":{"version":"2"}}`)
	e.deploy(http.StatusCreated, "f", other, "")
	e.want(http.StatusOK, http.MethodPost, "/admin/functions/f/rollback", nil) // verdicts, version 2
	e.deploy(http.StatusCreated, "g", other, `{"on_error":"deliver"}`)

	// A new process: a new registry and version store over the same directory.
	reg, vs := newRegistry(t, newEngine(t), nil, e.dir)
	if err := vs.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"f", "g"} {
		was, _ := e.reg.Active(name)
		now, err := reg.Active(name)
		if err != nil || now.Hash != was.Hash || string(now.Manifest.Settings) != string(was.Manifest.Settings) || now.Manifest.OnError != was.Manifest.OnError {
			t.Fatalf("%s after restart: %+v, %v; want %+v", name, now, err, was)
		}
	}
	a, err := admin.New(admin.Config{Token: token}, admin.Deps{Registry: reg, Versions: vs})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	c := admin.Client{URL: srv.URL, Token: token, HTTP: srv.Client()}
	// The way back survives: rolling back again returns to consent-match.
	info, err := c.Rollback(context.Background(), "f")
	if err != nil || info.Hash != runtime.Hash(other) {
		t.Fatalf("rollback after restart: %+v, %v", info, err)
	}
}

func TestTestEndpoint(t *testing.T) {
	e := newEnv(t)
	e.deploy(http.StatusCreated, "cm", consentMatch(t), "")
	e.deploy(http.StatusCreated, "v", verdicts(t), `{"settings":{"version":"1"},"retries":1}`)
	e.deploy(http.StatusCreated, "lenient", verdicts(t), `{"settings":{"version":"1"},"on_error":"deliver"}`)

	event := `{"type":"track","event":"Order Completed","userId":"u1","messageId":"m1","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`
	r := e.want(http.StatusOK, http.MethodPost, "/admin/functions/cm/test", []byte(event))
	if r.Get("verdict").String() != "deliver" || r.Get("event.userId").String() != "u1" || !r.Get("delivered").Bool() ||
		r.Get("version").String() != runtime.Hash(consentMatch(t)) || !r.Get("logs").IsArray() || !r.Get("duration_ns").Exists() {
		t.Fatalf("no stored record: %s", r.Raw)
	}
	// With consent records in the request: a mismatch drops.
	req := `{"event":` + event + `,"consent":[{"id":"u1","categoryPreferences":{"Advertising":false}}]}`
	r = e.want(http.StatusOK, http.MethodPost, "/admin/functions/cm/test", []byte(req))
	if r.Get("verdict").String() != "drop" || r.Get("reason").String() != "Consent mismatch" || r.Get("event").Type != gjson.Null || r.Get("delivered").Bool() {
		t.Fatalf("with consent: %s", r.Raw)
	}
	// The deployed version reads the consent store.
	e.want(http.StatusOK, http.MethodPut, "/admin/consent/u1", []byte(`{"categoryPreferences":{"Advertising":false}}`))
	r = e.want(http.StatusOK, http.MethodPost, "/admin/functions/cm/test", []byte(event))
	if r.Get("verdict").String() != "drop" || r.Get("reason").String() != "Consent mismatch" {
		t.Fatalf("with the store's record: %s", r.Raw)
	}

	// Failures, retries and the failure policy.
	r = e.want(http.StatusOK, http.MethodPost, "/admin/functions/v/test", []byte(`{"type":"track","verdict":"retry"}`))
	if r.Get("verdict").String() != "error" || r.Get("error_kind").String() != string(runtime.KindRetry) || r.Get("attempts").Int() != 2 ||
		!r.Get("policy_applied").Bool() || r.Get("delivered").Bool() {
		t.Fatalf("retry: %s", r.Raw)
	}
	r = e.want(http.StatusOK, http.MethodPost, "/admin/functions/lenient/test", []byte(`{"type":"track","verdict":"error"}`))
	if r.Get("verdict").String() != "error" || r.Get("reason").String() != "asked to fail" || !r.Get("delivered").Bool() || r.Get("event.verdict").String() != "error" {
		t.Fatalf("deliver policy: %s", r.Raw)
	}
	// Other settings: the stored wasm loaded again with them; the live
	// version keeps its own.
	r = e.want(http.StatusOK, http.MethodPost, "/admin/functions/v/test", []byte(`{"event":{"type":"track"},"settings":{"version":"tried"}}`))
	if r.Get("event.properties.version").String() != "tried" {
		t.Fatalf("settings: %s", r.Raw)
	}
	if got := e.live("v"); got != "1" {
		t.Fatalf("a test changed the live settings: %q", got)
	}

	e.want(http.StatusNotFound, http.MethodPost, "/admin/functions/nope/test", []byte(`{"type":"track"}`))
	e.want(http.StatusBadRequest, http.MethodPost, "/admin/functions/v/test", []byte(`[1]`))
	e.want(http.StatusBadRequest, http.MethodPost, "/admin/functions/v/test", []byte(`{"type":`))
	e.want(http.StatusBadRequest, http.MethodPost, "/admin/functions/v/test", []byte(`{"event":{},"extra":1}`))
	e.want(http.StatusBadRequest, http.MethodPost, "/admin/functions/v/test", []byte(`{"event":{},"settings":[1]}`))
	e.want(http.StatusBadRequest, http.MethodPost, "/admin/functions/cm/test", []byte(`{"event":{},"consent":[{"categoryPreferences":{}}]}`))

	// A configured function (not stored) is tested as it runs, but not
	// with other settings.
	if _, err := e.reg.Deploy(context.Background(), functions.Manifest{Name: "configured", Settings: []byte(`{"version":"c"}`)}, verdicts(t)); err != nil {
		t.Fatal(err)
	}
	if r := e.want(http.StatusOK, http.MethodPost, "/admin/functions/configured/test", []byte(`{"type":"track"}`)); r.Get("event.properties.version").String() != "c" {
		t.Fatalf("configured: %s", r.Raw)
	}
	e.want(http.StatusConflict, http.MethodPost, "/admin/functions/configured/test", []byte(`{"event":{},"settings":{}}`))
	if l := e.want(http.StatusOK, http.MethodGet, "/admin/functions", nil).Get(`functions.#(name=="configured")`); l.Get("active").String() == "" || l.Get("versions.#").Int() != 0 {
		t.Fatalf("configured function in the list: %s", l.Raw)
	}
}

func TestConsentEndpoints(t *testing.T) {
	e := newEnv(t)
	e.want(http.StatusNotFound, http.MethodGet, "/admin/consent/u1", nil)

	r := e.want(http.StatusOK, http.MethodPut, "/admin/consent/u1",
		[]byte(`{"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":1000}},"source":"crm"}`))
	if r.Get("changes.#").Int() != 1 || r.Get("record.id").String() != "u1" {
		t.Fatalf("put: %s", r.Raw)
	}
	// PATCH merges last-writer-wins: an older decision does not win, a
	// newer one does, the entries it does not name stay.
	r = e.want(http.StatusOK, http.MethodPatch, "/admin/consent/u1",
		[]byte(`{"categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":500},"Analytics":{"consented":true,"timestamp_unixtime_ms":2000}}}`))
	if r.Get("changes.#").Int() != 1 || r.Get("changes.0.name").String() != "Analytics" {
		t.Fatalf("patch: %s", r.Raw)
	}
	e.want(http.StatusOK, http.MethodPatch, "/admin/consent/u1", []byte(`{"aliases":["anon-1"]}`))
	rec := e.want(http.StatusOK, http.MethodGet, "/admin/consent/anon-1", nil)
	if rec.Get("id").String() != "u1" || rec.Get("categoryPreferences.Advertising.consented").Bool() != true ||
		rec.Get("categoryPreferences.Analytics.consented").Bool() != true {
		t.Fatalf("get by alias: %s", rec.Raw)
	}

	e.want(http.StatusBadRequest, http.MethodPut, "/admin/consent/u1", []byte(`{"id":"u2","categoryPreferences":{"A":true}}`))
	e.want(http.StatusBadRequest, http.MethodPut, "/admin/consent/u1", []byte(`{"aliases":["x"]}`))
	e.want(http.StatusBadRequest, http.MethodPatch, "/admin/consent/u1", []byte(`{}`))
	e.want(http.StatusBadRequest, http.MethodPatch, "/admin/consent/u1", []byte(`{"categoryPreferencs":{"A":true}}`))
	e.want(http.StatusBadRequest, http.MethodPatch, "/admin/consent/u1", []byte(`not json`))

	h := e.want(http.StatusOK, http.MethodGet, "/admin/consent/u1/history", nil)
	if h.Get("history.#").Int() != 3 || h.Get("history.1.source").String() != "admin:crm" || h.Get("history.0.source").String() != "admin" {
		t.Fatalf("history: %s", h.Raw)
	}
	at := e.want(http.StatusOK, http.MethodGet, "/admin/consent/u1/history?at=1970-01-01T00:00:01.5Z", nil)
	if at.Get("record.categoryPreferences.Advertising.consented").Bool() != true || at.Get("record.categoryPreferences.Analytics").Exists() {
		t.Fatalf("as of 1.5 s: %s", at.Raw)
	}
	e.want(http.StatusBadRequest, http.MethodGet, "/admin/consent/u1/history?at=yesterday", nil)
	e.want(http.StatusNotFound, http.MethodGet, "/admin/consent/nobody/history", nil)

	d := e.want(http.StatusOK, http.MethodDelete, "/admin/consent/anon-1", nil)
	if !d.Get("deleted").Bool() {
		t.Fatalf("delete: %s", d.Raw)
	}
	e.want(http.StatusNotFound, http.MethodGet, "/admin/consent/u1", nil)
	e.want(http.StatusNotFound, http.MethodDelete, "/admin/consent/u1", nil)

	imp := e.want(http.StatusOK, http.MethodPost, "/admin/consent/import", []byte(
		`{"id":"a","categoryPreferences":{"Advertising":true}}`+"\n"+
			`{"id":"b","categoryPrefs":{}}`+"\n\n"+
			`{"id":"c","categoryPreferences":{"Advertising":false}}`+"\n"+
			`not json`+"\n"))
	if imp.Get("lines").Int() != 4 || imp.Get("applied").Int() != 2 || imp.Get("failed").Int() != 2 ||
		imp.Get("errors.#").Int() != 2 || imp.Get("errors.0.line").Int() != 2 || imp.Get("errors.1.line").Int() != 5 {
		t.Fatalf("import: %s", imp.Raw)
	}
	if r := e.want(http.StatusOK, http.MethodGet, "/admin/consent/c", nil); r.Get("categoryPreferences.Advertising.consented").Bool() {
		t.Fatalf("imported c: %s", r.Raw)
	}

	// Without a store, 501.
	a, err := admin.New(admin.Config{Token: token}, admin.Deps{Registry: e.reg, Versions: e.vs})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/admin/consent/a", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	a.ServeHTTP(w, req)
	if w.Code != http.StatusNotImplemented || !json.Valid(w.Body.Bytes()) {
		t.Fatalf("no store: %d %s", w.Code, w.Body)
	}
}

func TestDeadLetters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	topic := queue.DestinationTopic("hook")
	if err := e.q.Append(ctx, topic, []byte(`{"n":1}`), []byte(`{"n":2}`), []byte("not json")); err != nil {
		t.Fatal(err)
	}
	c := e.q.Consumer(topic)
	items, err := c.Next(ctx, 10, 0)
	if err != nil || len(items) != 3 {
		t.Fatalf("next: %d, %v", len(items), err)
	}
	for _, it := range items {
		if err := c.Dead(ctx, it, "HTTP 410 Gone"); err != nil {
			t.Fatal(err)
		}
	}

	l := e.want(http.StatusOK, http.MethodGet, "/admin/dead/hook", nil)
	if l.Get("items.#").Int() != 3 || l.Get("items.0.event.n").Int() != 1 || l.Get("items.2.event").String() != "not json" ||
		l.Get("items.0.reason").String() != "HTTP 410 Gone" || l.Get("next").Exists() {
		t.Fatalf("list: %s", l.Raw)
	}
	page := e.want(http.StatusOK, http.MethodGet, "/admin/dead/hook?limit=2", nil)
	if page.Get("items.#").Int() != 2 || page.Get("next").Uint() != page.Get("items.1.seq").Uint() {
		t.Fatalf("page: %s", page.Raw)
	}
	rest := e.want(http.StatusOK, http.MethodGet, "/admin/dead/hook?after="+page.Get("next").String(), nil)
	if rest.Get("items.#").Int() != 1 || rest.Get("items.0.event").String() != "not json" {
		t.Fatalf("next page: %s", rest.Raw)
	}
	e.want(http.StatusBadRequest, http.MethodGet, "/admin/dead/hook?limit=0", nil)
	e.want(http.StatusBadRequest, http.MethodGet, "/admin/dead/hook?after=x", nil)
	e.want(http.StatusNotFound, http.MethodGet, "/admin/dead/nope", nil)
	if idle := e.want(http.StatusOK, http.MethodGet, "/admin/dead/idle", nil); idle.Get("items.#").Int() != 0 {
		t.Fatalf("a destination without a topic: %s", idle.Raw)
	}

	first := l.Get("items.0.seq").String()
	if r := e.want(http.StatusOK, http.MethodPost, "/admin/dead/hook/replay?seq="+first, nil); r.Get("count").Int() != 1 {
		t.Fatalf("replay: %s", r.Raw)
	}
	back, err := c.Next(ctx, 10, 0)
	if err != nil || len(back) != 1 || string(back[0].Data) != `{"n":1}` {
		t.Fatalf("replayed item: %v, %v", back, err)
	}
	e.want(http.StatusNotFound, http.MethodPost, "/admin/dead/hook/replay", []byte(`{"seqs":[999999]}`))
	e.want(http.StatusBadRequest, http.MethodPost, "/admin/dead/hook/replay", []byte(`{"seq":[1]}`))
	if r := e.want(http.StatusOK, http.MethodDelete, "/admin/dead/hook", nil); r.Get("count").Int() != 2 {
		t.Fatalf("purge: %s", r.Raw)
	}
	if l := e.want(http.StatusOK, http.MethodGet, "/admin/dead/hook", nil); l.Get("items.#").Int() != 0 {
		t.Fatalf("after purge: %s", l.Raw)
	}
	if r := e.want(http.StatusOK, http.MethodPost, "/admin/dead/idle/replay", nil); r.Get("count").Int() != 0 {
		t.Fatalf("replay of nothing: %s", r.Raw)
	}
}

// TestSwapUnderLoad deploys and rolls back through the API while events
// run: none fails, and every one runs on one of the versions.
func TestSwapUnderLoad(t *testing.T) {
	e := newEnv(t)
	wasm := verdicts(t)
	e.deploy(http.StatusCreated, "f", wasm, `{"settings":{"version":"1"},"limits":{"pool_size":2}}`)
	ctx, cancel := context.WithCancel(context.Background())
	type tally struct{ runs, bad int }
	results := make(chan tally, 4)
	for range 4 {
		go func() {
			var tl tally
			var out functions.Outcome
			for ctx.Err() == nil {
				tl.runs++
				err := e.reg.Run(context.Background(), "f", []byte(`{"type":"track","verdict":"deliver"}`), &out)
				v := gjson.GetBytes(out.Event, "properties.version").String()
				if err != nil || !out.Deliver || (v != "1" && v != "2") {
					tl.bad++
				}
			}
			results <- tl
		}()
	}
	for range 3 {
		e.deploy(http.StatusCreated, "f", wasm, `{"settings":{"version":"2"},"limits":{"pool_size":2}}`)
		e.want(http.StatusOK, http.MethodPost, "/admin/functions/f/rollback", nil)
	}
	cancel()
	var total tally
	for range 4 {
		tl := <-results
		total.runs += tl.runs
		total.bad += tl.bad
	}
	if total.bad != 0 || total.runs == 0 {
		t.Fatalf("%d of %d events failed or ran on no known version", total.bad, total.runs)
	}
}
