package httpstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/consentstore/httpstore"
	"github.com/insertfn/insertfn/internal/consentstore/storetest"
	"github.com/insertfn/insertfn/sdk/consent"
)

var ctx = context.Background()

// service serves the records of m at /users/{id}, as a company's consent
// service would.
func service(m *consentstore.Memory) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		rec, err := m.Get(r.Context(), r.PathValue("id"))
		if errors.Is(err, consent.ErrNotFound) {
			http.Error(w, "no such user", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rec)
	})
	return mux
}

// open starts a server with h and returns a Store asking it.
func open(t *testing.T, h http.Handler, cfg httpstore.Config) (*httpstore.Store, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if cfg.URL == "" {
		cfg.URL = srv.URL + "/users/{id}"
	}
	s, err := httpstore.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, srv
}

// fixed answers every request with status and body.
func fixed(status int, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		w.Write([]byte(body))
	})
}

func TestSuite(t *testing.T) {
	storetest.Run(t, storetest.Backends{
		Open: func(t *testing.T) (read, write consentstore.Backend) {
			m := consentstore.NewMemory()
			// A generous timeout: the suite tests behaviour, not latency,
			// and the machine running it may be busy.
			s, _ := open(t, service(m), httpstore.Config{Timeout: 5 * time.Second})
			return s, m
		},
		ReadOnly: true,
	})
}

func TestGetRecordFormat(t *testing.T) {
	m := consentstore.NewMemory()
	var want consent.Record
	js := `{"id":"u1","aliases":["anon1"],
		"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":1000}},
		"consent_state":{"gdpr":{"location_collection":{"consented":true,"timestamp_unixtime_ms":1500,"document":"v43"}}}}`
	if err := json.Unmarshal([]byte(js), &want); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Put(&want); err != nil {
		t.Fatal(err)
	}
	s, _ := open(t, service(m), httpstore.Config{})
	for _, id := range []string{"u1", "anon1"} {
		got, err := s.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get(%q): %v", id, err)
		}
		stored, _ := m.Get(ctx, "u1")
		if a, b := wire(got), wire(stored); a != b {
			t.Errorf("Get(%q) = %s, want %s", id, a, b)
		}
	}
	if _, err := s.Get(ctx, "nobody"); !errors.Is(err, consent.ErrNotFound) || errors.Is(err, consentstore.ErrUnavailable) {
		t.Errorf("Get(nobody) = %v, want ErrNotFound only", err)
	}
}

func wire(r *consent.Record) string {
	b, _ := json.Marshal(r)
	return string(b)
}

func TestGetRecordWithoutID(t *testing.T) {
	s, _ := open(t, fixed(200, `{"categoryPreferences":{"A":true}}`), httpstore.Config{})
	r, err := s.Get(ctx, "u7")
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "u7" || len(r.Categories) != 1 || !r.Categories[0].Consented {
		t.Errorf("record = %s, want id u7 with A=true", wire(r))
	}
}

func TestGetCategoriesFormat(t *testing.T) {
	for _, body := range []string{
		`{"Advertising": true, "Analytics": false}`,
		`{"categoryPreferences": {"Advertising": true, "Analytics": false}}`,
		` {"Analytics": {"consented": false}, "Advertising": {"consented": true}}`,
	} {
		t.Run(body, func(t *testing.T) {
			s, _ := open(t, fixed(200, body), httpstore.Config{Format: httpstore.FormatCategories})
			r, err := s.Get(ctx, "u1")
			if err != nil {
				t.Fatal(err)
			}
			want := []consent.Category{{Name: "Advertising", Consented: true}, {Name: "Analytics"}}
			if r.ID != "u1" || !slices.Equal(r.Categories, want) || len(r.Purposes) != 0 || r.UpdatedAt != 0 {
				t.Errorf("record = %+v, want id u1, categories %+v at timestamp 0", r, want)
			}
		})
	}
	// A timestamp, when the service gives one, is kept.
	s, _ := open(t, fixed(200, `{"A": {"consented": true, "timestamp_unixtime_ms": 42}}`), httpstore.Config{Format: httpstore.FormatCategories})
	r, err := s.Get(ctx, "u1")
	if err != nil || len(r.Categories) != 1 || r.Categories[0] != (consent.Category{Name: "A", Consented: true, Timestamp: 42}) || r.UpdatedAt != 42 {
		t.Errorf("Get = %+v, %v; want A=true@42", r, err)
	}
}

func TestStatusErrors(t *testing.T) {
	long := strings.Repeat("x", 10_000)
	for _, c := range []struct {
		status int
		body   string
		want   []string
	}{
		{500, "database down", []string{"500", `"database down"`}},
		{503, long, []string{"503", `"` + strings.Repeat("x", 200) + `"`}},
		{401, "", []string{"401 Unauthorized"}},
		{204, "", []string{"204"}},
	} {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			s, _ := open(t, fixed(c.status, c.body), httpstore.Config{})
			_, err := s.Get(ctx, "u1")
			if !errors.Is(err, consentstore.ErrUnavailable) || errors.Is(err, consent.ErrNotFound) {
				t.Fatalf("Get = %v, want ErrUnavailable", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %s", err, w)
				}
			}
			if strings.Contains(err.Error(), strings.Repeat("x", 201)) {
				t.Errorf("error quotes more than 200 bytes of the body: %d bytes", len(err.Error()))
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"id":"u1"}`))
	}))
	defer target.Close()
	s, _ := open(t, http.RedirectHandler(target.URL+"/elsewhere", http.StatusFound), httpstore.Config{
		Headers: map[string]string{"X-Api-Key": "secret"},
	})
	_, err := s.Get(ctx, "u1")
	if !errors.Is(err, consentstore.ErrUnavailable) || !strings.Contains(err.Error(), "/elsewhere") {
		t.Errorf("Get = %v, want ErrUnavailable naming the redirect", err)
	}
	if hits.Load() != 0 {
		t.Errorf("the redirect was followed (%d requests to its target)", hits.Load())
	}
}

func TestSlowServerTimesOut(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		w.Write([]byte(`{"id":"u1"}`))
	})
	const timeout = 100 * time.Millisecond
	s, _ := open(t, slow, httpstore.Config{Timeout: timeout})

	// The caller allows much longer: the store's timeout still applies.
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	_, err := s.Get(cctx, "u1")
	elapsed := time.Since(start)
	if !errors.Is(err, consentstore.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get = %v, want ErrUnavailable with DeadlineExceeded", err)
	}
	if elapsed > 10*timeout {
		t.Errorf("Get took %v with a %v timeout", elapsed, timeout)
	}

	// A caller's earlier deadline wins, and is reported as the caller's.
	cctx2, cancel2 := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel2()
	if _, err := s.Get(cctx2, "u1"); !errors.Is(err, consentstore.ErrUnavailable) || !strings.Contains(err.Error(), "caller's deadline") {
		t.Errorf("Get with a short caller deadline = %v", err)
	}

	// A caller that gives up gets its own cancellation, not ErrUnavailable.
	cctx3, cancel3 := context.WithCancel(ctx)
	time.AfterFunc(5*time.Millisecond, cancel3)
	if _, err := s.Get(cctx3, "u1"); !errors.Is(err, context.Canceled) || errors.Is(err, consentstore.ErrUnavailable) {
		t.Errorf("Get cancelled by the caller = %v, want context.Canceled", err)
	}
}

// A server that sends headers at once and then trickles the body is bounded
// by the timeout too.
func TestSlowBodyTimesOut(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"id":"u1","aliases":[`))
		w.(http.Flusher).Flush()
		for {
			select {
			case <-stop:
				return
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
				w.Write([]byte(`"a",`))
				w.(http.Flusher).Flush()
			}
		}
	})
	const timeout = 100 * time.Millisecond
	s, _ := open(t, h, httpstore.Config{Timeout: timeout})
	start := time.Now()
	_, err := s.Get(ctx, "u1")
	if !errors.Is(err, consentstore.ErrUnavailable) {
		t.Errorf("Get = %v, want ErrUnavailable", err)
	}
	if elapsed := time.Since(start); elapsed > 10*timeout {
		t.Errorf("Get took %v with a %v timeout", elapsed, timeout)
	}
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, err := httpstore.New(httpstore.Config{URL: "http://" + addr + "/users/{id}"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get(ctx, "u1"); !errors.Is(err, consentstore.ErrUnavailable) {
		t.Errorf("Get = %v, want ErrUnavailable", err)
	}
}

func TestHeadersSent(t *testing.T) {
	var got http.Header
	var host string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, host = r.Header.Clone(), r.Host
		w.Write([]byte(`{"id":"u1"}`))
	})
	s, _ := open(t, h, httpstore.Config{Headers: map[string]string{
		"Authorization": "Bearer t0k3n",
		"x-api-key":     "k",
		"Host":          "consent.internal",
	}})
	if _, err := s.Get(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if got.Get("Authorization") != "Bearer t0k3n" || got.Get("X-Api-Key") != "k" || got.Get("Accept") != "application/json" {
		t.Errorf("headers sent: %v", got)
	}
	if host != "consent.internal" {
		t.Errorf("Host = %q, want consent.internal", host)
	}
}

func TestIDEscaping(t *testing.T) {
	var path, rawPath, pathID, query string
	h := http.NewServeMux()
	h.HandleFunc("/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		path, rawPath, pathID = r.URL.Path, r.URL.EscapedPath(), r.PathValue("id")
		w.Write([]byte(`{}`))
	})
	h.HandleFunc("/lookup", func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.Query().Get("user")
		w.Write([]byte(`{}`))
	})
	s, srv := open(t, h, httpstore.Config{})
	rec, err := s.Get(ctx, "a/b c")
	if err != nil {
		t.Fatal(err)
	}
	if rawPath != "/users/a%2Fb%20c" || path != "/users/a/b c" || pathID != "a/b c" || rec.ID != "a/b c" {
		t.Errorf("id a/b c requested as %q (path %q, id %q), record id %q; want /users/a%%2Fb%%20c", rawPath, path, pathID, rec.ID)
	}
	if u := s.URL("a/b c"); u != srv.URL+"/users/a%2Fb%20c" {
		t.Errorf("URL = %q", u)
	}

	q, err := httpstore.New(httpstore.Config{URL: srv.URL + "/lookup?user={id}&v=1"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.Get(ctx, "a&b=c d/?"); err != nil {
		t.Fatal(err)
	}
	if query != "a&b=c d/?" {
		t.Errorf("query user = %q, want the id whole", query)
	}
}

func TestOversizedBody(t *testing.T) {
	big := `{"id":"u1","aliases":["` + strings.Repeat("a", 2<<20) + `"]}`
	chunked := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Flushing first: no Content-Length, the size shows only while reading.
		w.(http.Flusher).Flush()
		w.Write([]byte(big))
	})
	for name, h := range map[string]http.Handler{"content-length": fixed(200, big), "chunked": chunked} {
		t.Run(name, func(t *testing.T) {
			s, _ := open(t, h, httpstore.Config{})
			_, err := s.Get(ctx, "u1")
			if !errors.Is(err, consentstore.ErrUnavailable) || !strings.Contains(err.Error(), "max_body") {
				t.Errorf("Get = %v, want ErrUnavailable about max_body", err)
			}
		})
	}
	// A smaller limit applies too; a body just at the limit is read.
	body := `{"id":"u1"}`
	s, _ := open(t, fixed(200, body), httpstore.Config{MaxBody: int64(len(body))})
	if _, err := s.Get(ctx, "u1"); err != nil {
		t.Errorf("Get of a body at the limit: %v", err)
	}
	s2, _ := open(t, fixed(200, body), httpstore.Config{MaxBody: int64(len(body)) - 1})
	if _, err := s2.Get(ctx, "u1"); !errors.Is(err, consentstore.ErrUnavailable) {
		t.Errorf("Get of a body over the limit: %v", err)
	}
}

func TestMalformedBody(t *testing.T) {
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	bodies := []string{
		``, `{"id":`, `null`, `[]`, `"u1"`, `42`, `{"id": [7]}`, `{"id": 12345678901234567890}`, deep,
		`{"id":"u1","categoryPreferences":{"A":` + deep + `}}`,
		`{"id":"u1","categoryPreferences":{"A":"yes"}}`,
		`{"id":"u1","categoryPreferences":{"":true}}`,
		`{"id":"u1","categoryPreferences":{"A":{"consented":true,"timestamp_unixtime_ms":-5}}}`,
		`{"id":"u1","consent_state":{"gdpr":{"p":{"timestamp_unixtime_ms":1}}}}`,
		"\xff\xfe{",
	}
	for _, format := range []string{httpstore.FormatRecord, httpstore.FormatCategories} {
		for i, body := range bodies {
			t.Run(fmt.Sprintf("%s/%d", format, i), func(t *testing.T) {
				s, _ := open(t, fixed(200, body), httpstore.Config{Format: format})
				r, err := s.Get(ctx, "u1")
				if !errors.Is(err, consentstore.ErrUnavailable) {
					t.Errorf("Get of %.60q = %v, %v; want ErrUnavailable", body, r, err)
				} else if len(err.Error()) > 800 {
					t.Errorf("error is %d bytes long: %.100s...", len(err.Error()), err)
				}
			})
		}
	}
}

func TestReadOnly(t *testing.T) {
	s, _ := open(t, fixed(200, `{}`), httpstore.Config{})
	u := &consentstore.Update{Record: consent.Record{ID: "u1"}}
	if _, _, err := s.Update(ctx, u); !errors.Is(err, consentstore.ErrReadOnly) {
		t.Errorf("Update: %v", err)
	}
	if _, err := s.Delete(ctx, "u1"); !errors.Is(err, consentstore.ErrReadOnly) {
		t.Errorf("Delete: %v", err)
	}
	if _, _, err := s.History(ctx, "u1"); !errors.Is(err, consentstore.ErrReadOnly) {
		t.Errorf("History: %v", err)
	}
	if err := s.Scan(ctx, func(*consent.Record) error { return nil }); !errors.Is(err, consentstore.ErrReadOnly) {
		t.Errorf("Scan: %v", err)
	}
	st := consentstore.New(s, consentstore.Options{})
	if _, err := st.AsOf(ctx, "u1", time.Now()); !errors.Is(err, consentstore.ErrReadOnly) {
		t.Errorf("Store.AsOf: %v", err)
	}
}

func TestClose(t *testing.T) {
	s, _ := open(t, fixed(200, `{}`), httpstore.Config{})
	if _, err := s.Get(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "u1"); !errors.Is(err, consentstore.ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := s.Delete(ctx, "u1"); !errors.Is(err, consentstore.ErrClosed) {
		t.Errorf("Delete after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Connections are kept alive and reused across lookups, also concurrent ones.
func TestKeepAlive(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(fixed(200, `{"id":"u1"}`))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	s, err := httpstore.New(httpstore.Config{URL: srv.URL + "/users/{id}"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 50 {
		if _, err := s.Get(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
	}
	// net/http returns a connection to the pool just after the body is
	// read, so a lookup may race it and dial another: allow a few.
	if n := conns.Load(); n > 5 {
		t.Errorf("50 sequential lookups opened %d connections, want them to share one or two", n)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := s.Get(ctx, "u1"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := conns.Load(); n > 40 {
		t.Errorf("8 concurrent lookers doing 400 lookups opened %d connections, want them reused", n)
	}
}

func TestNewRejects(t *testing.T) {
	for _, c := range []struct {
		cfg  httpstore.Config
		want string
	}{
		{httpstore.Config{}, "url: required"},
		{httpstore.Config{URL: "https://consent.internal/users/"}, "{id}"},
		{httpstore.Config{URL: "https://consent.internal/{id}/{id}"}, "exactly once"},
		{httpstore.Config{URL: "ftp://consent.internal/users/{id}"}, `scheme "ftp"`},
		{httpstore.Config{URL: "consent.internal/users/{id}"}, "scheme"},
		{httpstore.Config{URL: "https:///users/{id}"}, "no host"},
		{httpstore.Config{URL: "https://{id}.internal/users"}, "not the host"},
		{httpstore.Config{URL: "https://consent.internal/users/{id}#x"}, "fragment"},
		{httpstore.Config{URL: "https://consent.internal/users/{id}", Format: "xml"}, `unknown format "xml"`},
		{httpstore.Config{URL: "https://consent.internal/users/{id}", Timeout: -1}, "timeout: negative"},
		{httpstore.Config{URL: "https://consent.internal/users/{id}", MaxBody: -1}, "max_body: negative"},
		{httpstore.Config{URL: "https://consent.internal/users/{id}", Headers: map[string]string{"Bad Name": "x"}}, "header name"},
		{httpstore.Config{URL: "https://consent.internal/users/{id}", Headers: map[string]string{"X-A": "a\r\nX-B: b"}}, "line break"},
	} {
		s, err := httpstore.New(c.cfg)
		if err == nil {
			s.Close()
			t.Errorf("New(%+v) accepted", c.cfg)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error saying %s", c.cfg, err, c.want)
		}
	}
	// Validate reports every problem, each by its key.
	err := httpstore.Config{URL: "ftp://x/{id}", Format: "xml", Timeout: -1}.Validate()
	for _, want := range []string{"url: ", "format: ", "timeout: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want a problem with %s", err, want)
		}
	}
	if err := (httpstore.Config{URL: "http://x/{id}"}).Validate(); err != nil {
		t.Errorf("Validate of a minimal config: %v", err)
	}

	s, err := httpstore.New(httpstore.Config{URL: "https://user:pw@consent.internal/users/{id}?token=secret"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Get(ctx, "u1"); err == nil || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "pw") {
		t.Errorf("error after Close = %v; want one that does not quote credentials", err)
	}
}

func BenchmarkGet(b *testing.B) {
	m := consentstore.NewMemory()
	m.Put(&consent.Record{ID: "u1", Categories: []consent.Category{{Name: "Advertising", Consented: true, Timestamp: 1}}})
	srv := httptest.NewServer(service(m))
	defer srv.Close()
	s, err := httpstore.New(httpstore.Config{URL: srv.URL + "/users/{id}"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(ctx, "u1"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeNumericIDs: a service that writes ids as JSON numbers gets
// them read as every other reader of the store reads them ("123" for
// 1.23e2); an inexact one fails the lookup.
func TestDecodeNumericIDs(t *testing.T) {
	r, err := httpstore.Decode(httpstore.FormatRecord, "123", []byte(`{"id":1.23e2,"aliases":[4.5e1,"a"],"categoryPreferences":{"A":true}}`))
	if err != nil || r.ID != "123" || !slices.Equal(r.Aliases, []string{"45", "a"}) {
		t.Errorf("Decode = %+v, %v; want id 123, aliases 45 and a", r, err)
	}
	if _, err := httpstore.Decode(httpstore.FormatRecord, "x", []byte(`{"id":9007199254740993}`)); !errors.Is(err, consent.ErrInexactID) {
		t.Errorf("Decode of an inexact numeric id: %v, want ErrInexactID", err)
	}
}
