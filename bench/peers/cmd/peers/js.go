package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/insertfn/insertfn/runtime"
)

// The JavaScript versions of consent-match, by directory under examples/.
const (
	jsFastExample  = "consent-match-js"       // insertfn.consent.compare: the host's consent store
	jsFetchExample = "consent-match-js-fetch" // fetch from a consent service, as Segment's functions do
)

// consentServiceKey is the key the fetch path's function sends as HTTP
// Basic user name, and the local service wants.
const consentServiceKey = "peers-key"

// newJavaScript loads the two JavaScript versions of consent-match on one
// Engine (the JavaScript engine is compiled once per Engine), each as the
// Go guest's Invoke row loads its module: one pooled instance, one Invoke
// per event. The fast path reads the workload's records through the
// consent store; the fetch path gets them from svc over HTTP. Without the
// JavaScript engine in this binary the error is runtime.ErrNoJSEngine.
func newJavaScript(ctx context.Context, w *workload, dir string, svc *consentService) (fast, fetch *impl, closeAll func(), err error) {
	code := func(example string) ([]byte, error) {
		return os.ReadFile(filepath.Join(dir, "..", "..", "examples", example, "index.js"))
	}
	fastJS, err := code(jsFastExample)
	if err != nil {
		return nil, nil, nil, err
	}
	fetchJS, err := code(jsFetchExample)
	if err != nil {
		return nil, nil, nil, err
	}
	eng, err := runtime.NewEngine(runtime.Config{})
	if err != nil {
		return nil, nil, nil, err
	}
	var loaded []*runtime.Function
	closeAll = func() {
		for _, f := range loaded {
			f.Close(ctx)
		}
		eng.Close(ctx)
	}
	load := func(example string, code []byte, opts runtime.Options) (*runtime.Function, error) {
		opts.Name, opts.Language, opts.File = example, runtime.JavaScript, "index.js"
		opts.Limits = runtime.Limits{PoolSize: 1}
		f, err := eng.Load(ctx, code, opts)
		if err != nil {
			return nil, fmt.Errorf("insertfn: load %s: %w", example, err)
		}
		loaded = append(loaded, f)
		return f, nil
	}
	f, err := load(jsFastExample, fastJS, runtime.Options{Store: w.records})
	if err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	fast = invokeRow("insertfn JavaScript (fast path: insertfn.consent), Invoke per event", w, f, nil)
	base := svc.url + "/v1/"
	settings := fmt.Appendf(nil, `{"consentServiceUrl":%q,"apiKey":%q}`, base, consentServiceKey)
	g, err := load(jsFetchExample, fetchJS, runtime.Options{Settings: settings,
		Fetch: runtime.FetchPolicy{Allow: []string{base}}})
	if err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	fetch = invokeRow("insertfn JavaScript (fetch path: HTTP to a local service), Invoke per event", w, g, svc)
	return fast, fetch, closeAll, nil
}

// invokeRow is one Invoke of f per event, with the verdicts tallied as the
// Go guest's row tallies them; it can also time every call (sample). With
// svc, every pass must have cost the service one request per event.
func invokeRow(name string, w *workload, f *runtime.Function, svc *consentService) *impl {
	var res runtime.Result
	pass := func(ctx context.Context, lat []time.Duration) (counts, error) {
		var c counts
		var before int64
		if svc != nil {
			before = svc.requests.Load()
		}
		for i, ev := range w.events {
			var t0 time.Time
			if lat != nil {
				t0 = time.Now()
			}
			if err := f.Invoke(ctx, ev, &res); err != nil {
				return c, err
			}
			if lat != nil {
				lat[i] = time.Since(t0)
			}
			if err := tally(&c, &res); err != nil {
				return c, err
			}
		}
		if svc != nil {
			if n := svc.requests.Load() - before; n != int64(len(w.events)) {
				return c, fmt.Errorf("the consent service got %d requests for %d events", n, len(w.events))
			}
		}
		return c, nil
	}
	return &impl{name: name,
		pass:   func(ctx context.Context) (counts, error) { return pass(ctx, nil) },
		sample: pass}
}

// consentService stands in for the user's consent service that the fetch
// path's function asks, as examples/consent-match-js-fetch's test has it:
// GET /v1/consent/{id}?source=segment, HTTP Basic auth with the key as user
// name, Accept: application/json; it answers the workload's stored consent
// as {"categoryPreferences":{...}}, or 404 for a user without a record. A
// request of any other shape gets 400 or 401, which fails the function's
// event (and so the run).
type consentService struct {
	url      string // http://127.0.0.1:PORT
	requests atomic.Int64
	srv      *http.Server
}

// newConsentService starts the service on a port of 127.0.0.1, in this
// process: its time is part of the fetch path's.
func newConsentService(w *workload) (*consentService, error) {
	bodies := make(map[string][]byte, len(w.json))
	for id, cats := range w.json {
		bodies[id] = fmt.Appendf(nil, `{"categoryPreferences":%s}`, cats)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("consent service: %w", err)
	}
	s := &consentService{url: "http://" + ln.Addr().String()}
	s.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		user, _, ok := r.BasicAuth()
		switch {
		case !ok || user != consentServiceKey:
			http.Error(rw, "bad key", http.StatusUnauthorized)
			return
		case r.Method != http.MethodGet || r.URL.Query().Get("source") != "segment" || r.Header.Get("Accept") != "application/json":
			http.Error(rw, "bad request", http.StatusBadRequest)
			return
		}
		id, ok := strings.CutPrefix(r.URL.Path, "/v1/consent/")
		body, found := bodies[id]
		if !ok || !found {
			http.NotFound(rw, r)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write(body)
	})}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "peers: consent service:", err)
		}
	}()
	return s, nil
}

func (s *consentService) close() { s.srv.Close() }
