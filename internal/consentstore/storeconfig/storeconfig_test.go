package storeconfig_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/consentstore/boltstore"
	"github.com/insertfn/insertfn/internal/consentstore/httpstore"
	"github.com/insertfn/insertfn/internal/consentstore/redisstore"
	"github.com/insertfn/insertfn/internal/consentstore/storeconfig"
	"github.com/insertfn/insertfn/internal/testkit/redistest"
	"github.com/insertfn/insertfn/sdk/consent"
)

var ctx = context.Background()

func decode(t *testing.T, y string) storeconfig.Config {
	t.Helper()
	var c storeconfig.Config
	dec := yaml.NewDecoder(strings.NewReader(y))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decode %s: %v", y, err)
	}
	return c
}

func TestDecodeYAML(t *testing.T) {
	c := decode(t, `
backend: http
dir: /var/lib/insertfn/consent
embedded:
  batch_delay: 5ms
  cache_size: 1000
file: records.ndjson
redis:
  addrs: ["10.0.0.5:6379", "10.0.0.6:6379"]
  cluster: true
  password: s3cret
  key_prefix: "prod:consent:"
  timeout: 150ms
  pool_size: 20
http:
  url: https://consent.internal/users/{id}
  headers:
    Authorization: Bearer t0k3n
  timeout: 250ms
  format: categories
  max_body: 65536
cache:
  size: 5000
  ttl: 1m
  negative_ttl: 2s
`)
	want := storeconfig.Config{
		Backend:  "http",
		Dir:      "/var/lib/insertfn/consent",
		Embedded: boltstore.Options{BatchDelay: 5 * time.Millisecond, CacheSize: 1000},
		File:     "records.ndjson",
		Redis: redisstore.Config{Addrs: []string{"10.0.0.5:6379", "10.0.0.6:6379"}, Cluster: true,
			Password: "s3cret", KeyPrefix: "prod:consent:", Timeout: 150 * time.Millisecond, PoolSize: 20},
		HTTP: httpstore.Config{URL: "https://consent.internal/users/{id}",
			Headers: map[string]string{"Authorization": "Bearer t0k3n"},
			Timeout: 250 * time.Millisecond, Format: "categories", MaxBody: 65536},
		Cache: consentstore.CacheConfig{Size: 5000, TTL: time.Minute, NegativeTTL: 2 * time.Second},
	}
	if g, w := js(c), js(want); g != w {
		t.Errorf("decoded\n  %s\nwant\n  %s", g, w)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// The same configuration in JSON (durations in nanoseconds).
	var back storeconfig.Config
	if err := json.Unmarshal([]byte(js(want)), &back); err != nil || js(back) != js(want) {
		t.Errorf("JSON round trip: %v\n  %s", err, js(back))
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDefaults(t *testing.T) {
	for _, c := range []struct {
		in               storeconfig.Config
		backend, dir     string
		cacheSize        int
		cacheTTLUnchange bool
	}{
		{storeconfig.Config{}, "embedded", storeconfig.DefaultDir, 0, true},
		{storeconfig.Config{Dir: "/d"}, "embedded", "/d", 0, true},
		{storeconfig.Config{Backend: "memory"}, "memory", "", 0, true},
		{storeconfig.Config{Backend: "embedded", Cache: consentstore.CacheConfig{Size: 10}}, "embedded", storeconfig.DefaultDir, 10, true},
		{storeconfig.Config{Backend: "http"}, "http", "", storeconfig.DefaultCacheSize, true},
		{storeconfig.Config{Backend: "redis"}, "redis", "", storeconfig.DefaultCacheSize, true},
		{storeconfig.Config{Backend: "redis", Cache: consentstore.CacheConfig{Size: 7}}, "redis", "", 7, true},
		{storeconfig.Config{Backend: "http", Cache: consentstore.CacheConfig{Size: -1}}, "http", "", 0, true},
	} {
		got := c.in.WithDefaults()
		if got.Backend != c.backend || got.Dir != c.dir || got.Cache.Size != c.cacheSize {
			t.Errorf("%s.WithDefaults() = backend %q dir %q cache %d; want %q %q %d",
				js(c.in), got.Backend, got.Dir, got.Cache.Size, c.backend, c.dir, c.cacheSize)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want []string
	}{
		{`backend: mongo`, []string{`backend: unknown backend "mongo"; want one of embedded, memory, redis, http`}},
		{`backend: http`, []string{"http.url: required"}},
		{`{backend: http, http: {url: "ftp://x/{id}", format: xml}}`, []string{`http.url: "ftp://x/{id}": scheme "ftp"`, `http.format: unknown format "xml"`}},
		{`{backend: http, http: {url: "http://x/users"}}`, []string{"http.url:", "{id} exactly once"}},
		{`{backend: redis, redis: {addrs: ["a:1", ""]}}`, []string{"redis.addrs[1]: empty address"}},
		{`{backend: redis, redis: {addrs: ["a:1"], cluster: true, db: 2}}`, []string{"redis.db: database 2 on a Redis Cluster"}},
		{`{backend: redis, redis: {timeout: -1s, pool_size: -2}}`, []string{"redis.timeout: negative", "redis.pool_size: negative"}},
		{`{cache: {ttl: -1s, negative_ttl: -5s}}`, []string{"cache.ttl: negative", "cache.negative_ttl: negative"}},
	} {
		cfg := decode(t, c.yaml)
		err := cfg.Validate()
		if err == nil {
			t.Errorf("Validate(%s) accepted it", c.yaml)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Validate(%s) = %v\nwant it to say %s", c.yaml, err, w)
			}
		}
		if _, oerr := cfg.Open(ctx); oerr == nil || !strings.Contains(oerr.Error(), c.want[0]) {
			t.Errorf("Open(%s) = %v, want the validation error", c.yaml, oerr)
		}
	}
	// In JSON a duration is a number of nanoseconds: a number meant as
	// milliseconds is caught. (YAML refuses a duration without a unit.)
	var cfg storeconfig.Config
	if err := json.Unmarshal([]byte(`{"backend":"http","http":{"url":"http://x/{id}","timeout":250},"cache":{"ttl":30}}`), &cfg); err != nil {
		t.Fatal(err)
	}
	err := cfg.Validate()
	for _, w := range []string{`http.timeout: 250ns is less than a millisecond`, `"250ms"`, "cache.ttl: 30ns"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate of unitless durations = %v, want it to say %s", err, w)
		}
	}
	if err := yaml.Unmarshal([]byte("http: {timeout: 250}"), &cfg); err == nil {
		t.Errorf("YAML accepted a duration without a unit")
	}

	// Only the chosen backend's section is checked.
	cfg = decode(t, `{backend: memory, http: {url: "nonsense"}, redis: {addrs: [""]}}`)
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate of memory with leftover sections: %v", err)
	}
	for _, ok := range []string{`{}`, `backend: embedded`, `backend: memory`, `backend: redis`, `{backend: http, http: {url: "http://x/{id}"}}`} {
		cfg := decode(t, ok)
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(%s): %v", ok, err)
		}
	}
}

func TestOpenMemory(t *testing.T) {
	s, err := storeconfig.Config{Backend: "memory"}.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.Backend().(*consentstore.Memory); !ok {
		t.Fatalf("backend is %T, want *consentstore.Memory", s.Backend())
	}
	roundTrip(t, s)

	// From a file.
	file := filepath.Join(t.TempDir(), "records.ndjson")
	os.WriteFile(file, []byte(`{"id":"f1","categoryPreferences":{"Advertising":true}}`+"\n"), 0o600)
	s2, err := storeconfig.Config{Backend: "memory", File: file}.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if r, err := s2.Get(ctx, "f1"); err != nil || len(r.Categories) != 1 {
		t.Errorf("Get(f1) from the file = %v, %v", r, err)
	}
	if _, err := (storeconfig.Config{Backend: "memory", File: file + ".missing"}).Open(ctx); err == nil {
		t.Errorf("Open with a missing file succeeded")
	}
}

// roundTrip writes through s and reads it back.
func roundTrip(t *testing.T, s *consentstore.Store) {
	t.Helper()
	u := consentstore.Update{Source: "test", Record: consent.Record{ID: "u1", Aliases: []string{"a1"},
		Categories: []consent.Category{{Name: "Advertising", Consented: true, Timestamp: 100}}}}
	if _, err := s.Update(ctx, u); err != nil {
		t.Fatalf("Update: %v", err)
	}
	r, err := s.Get(ctx, "a1")
	if err != nil || r.ID != "u1" || len(r.Categories) != 1 || !r.Categories[0].Consented {
		t.Fatalf("Get(a1) = %+v, %v", r, err)
	}
}

func TestOpenEmbedded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "consent")
	cfg := storeconfig.Config{Dir: dir}
	s, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Backend().(*boltstore.Store); !ok {
		t.Fatalf("backend is %T, want *boltstore.Store", s.Backend())
	}
	roundTrip(t, s)
	// Only one process (one Store) may have the directory open.
	cfg.Embedded.LockTimeout = -1
	if s2, err := cfg.Open(ctx); err == nil {
		s2.Close()
		t.Errorf("a second Open of the same directory succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, boltstore.FileName)); err != nil {
		t.Errorf("no database file in the data directory: %v", err)
	}
	s, err = cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r, err := s.Get(ctx, "u1"); err != nil || r.Categories[0].Timestamp != 100 {
		t.Errorf("after reopening, Get(u1) = %+v, %v", r, err)
	}
}

// consentService serves the records of m and counts the requests.
func consentService(t *testing.T, m *consentstore.Memory) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		rec, err := m.Get(r.Context(), strings.TrimPrefix(r.URL.Path, "/users/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(rec)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestOpenHTTP(t *testing.T) {
	m := consentstore.NewMemory()
	m.Put(&consent.Record{ID: "u1", Categories: []consent.Category{{Name: "Advertising", Consented: true, Timestamp: 1}}})
	srv, hits := consentService(t, m)
	cfg := decode(t, "backend: http\nhttp:\n  url: "+srv.URL+"/users/{id}\n  timeout: 5s\n")

	// The cache is on by default: repeated lookups, found or not, ask the
	// service once.
	s, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.Backend().(*httpstore.Store); !ok {
		t.Fatalf("backend is %T, want *httpstore.Store", s.Backend())
	}
	for range 3 {
		if r, err := s.Get(ctx, "u1"); err != nil || r.ID != "u1" {
			t.Fatalf("Get(u1) = %v, %v", r, err)
		}
		if _, err := s.Get(ctx, "nobody"); !errors.Is(err, consent.ErrNotFound) {
			t.Fatalf("Get(nobody) = %v", err)
		}
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("6 lookups of 2 ids asked the service %d times, want 2 (cached)", n)
	}
	if _, err := s.Update(ctx, consentstore.Update{Record: consent.Record{ID: "u1", Aliases: []string{"x"}}}); !errors.Is(err, consentstore.ErrReadOnly) {
		t.Errorf("Update through http = %v, want ErrReadOnly", err)
	}

	// cache.size -1 turns it off.
	cfg.Cache.Size = -1
	s2, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	hits.Store(0)
	for range 3 {
		s2.Get(ctx, "u1")
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("without a cache, 3 lookups asked the service %d times", n)
	}
}

func TestOpenRedis(t *testing.T) {
	srv := redistest.Start(t)
	cfg := storeconfig.Config{Backend: "redis", Redis: redisstore.Config{
		Addrs: []string{srv.Addr}, KeyPrefix: "storeconfig:", Timeout: 5 * time.Second}}
	s, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.Backend().(*redisstore.Store); !ok {
		t.Fatalf("backend is %T, want *redisstore.Store", s.Backend())
	}
	roundTrip(t, s)
	// A second host on the same Redis sees the write.
	s2, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if r, err := s2.Get(ctx, "u1"); err != nil || r.ID != "u1" {
		t.Errorf("the other host's Get(u1) = %v, %v", r, err)
	}

	// A server that is not there fails Open within the timeout.
	srv.Stop()
	cfg.Redis.Timeout = 200 * time.Millisecond
	start := time.Now()
	if s3, err := cfg.Open(ctx); err == nil {
		s3.Close()
		t.Errorf("Open of a stopped server succeeded")
	} else if !errors.Is(err, consentstore.ErrUnavailable) {
		t.Errorf("Open of a stopped server = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 10*cfg.Redis.Timeout {
		t.Errorf("Open of a stopped server took %v", d)
	}
}
