// Package storeconfig chooses and opens the consent store a configuration
// names: the embedded database (the default), memory, Redis, or a
// company's own consent service over HTTP, with the in-process cache in
// front of the remote ones.
//
// In YAML (durations are Go durations with a unit: "250ms", "30s"; in JSON
// they are numbers of nanoseconds):
//
//	backend: http            # embedded (default) | memory | redis | http
//	dir: data/consent        # embedded: the data directory
//	embedded: {batch_delay: 2ms}
//	redis: {addrs: ["10.0.0.5:6379"], timeout: 200ms}
//	http:
//	  url: https://consent.internal/users/{id}
//	  headers: {Authorization: "Bearer ..."}
//	  timeout: 250ms
//	  format: categories     # record (default) | categories
//	cache: {size: 100000, ttl: 30s, negative_ttl: 5s}
//
// Only the section of the chosen backend is read; the others may stay.
package storeconfig

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/consentstore/boltstore"
	"github.com/insertfn/insertfn/internal/consentstore/httpstore"
	"github.com/insertfn/insertfn/internal/consentstore/redisstore"
)

// Backends a [Config] may name.
const (
	// Embedded is the on-disk database in Config.Dir (boltstore): the
	// default, for a single host.
	Embedded = "embedded"
	// Memory keeps records in memory, empty at start or loaded from
	// Config.File: for tests and `insertfn test`.
	Memory = "memory"
	// Redis is a Redis server or cluster shared by several hosts
	// (redisstore).
	Redis = "redis"
	// HTTP is a company's own consent service, read-only (httpstore).
	HTTP = "http"
)

// backends lists the valid Backend values, in the order errors list them.
var backends = []string{Embedded, Memory, Redis, HTTP}

// Defaults of [Config].
const (
	// DefaultDir is the embedded store's data directory when Config.Dir
	// is empty, relative to the working directory. (The server's
	// configuration puts it under its own data directory instead.)
	DefaultDir = "data/consent"
	// DefaultCacheSize is the cache's size in front of a remote backend
	// when Cache.Size is 0.
	DefaultCacheSize = 100_000
)

// Config chooses the consent store. The zero value is the embedded store
// in ./data/consent.
type Config struct {
	// Backend is "embedded" (the default), "memory", "redis" or "http".
	Backend string `yaml:"backend" json:"backend"`
	// Dir is the embedded store's data directory; relative paths are
	// relative to the working directory. Empty: DefaultDir.
	Dir string `yaml:"dir" json:"dir"`
	// Embedded tunes the embedded store (batching, lock wait, its own
	// record cache).
	Embedded boltstore.Options `yaml:"embedded" json:"embedded"`
	// File, for the memory backend, is a file of records loaded at open
	// (a JSON array, one object, or NDJSON; see consentstore.LoadFile).
	// Empty: the store starts empty.
	File string `yaml:"file" json:"file"`
	// Redis configures the redis backend.
	Redis redisstore.Config `yaml:"redis" json:"redis"`
	// HTTP configures the http backend; http.url is required with it.
	HTTP httpstore.Config `yaml:"http" json:"http"`
	// Cache is the in-process cache in front of the store. In front of
	// redis and http it is on by default: Size 0 means DefaultCacheSize,
	// a negative Size turns it off. In front of embedded and memory,
	// which answer from the process already, it is off unless Size is
	// positive. TTL (default 30s) bounds how long a write made elsewhere
	// (another host, the company's service) takes to show; NegativeTTL
	// (default 5s) how long an unknown id stays unknown. The host's own
	// writes show at once.
	Cache consentstore.CacheConfig `yaml:"cache" json:"cache"`
}

// WithDefaults returns c with its defaults filled: the backend, the data
// directory of the embedded store and the size of the cache (0 when there
// is none). The backends' own defaults are left to them.
func (c Config) WithDefaults() Config {
	if c.Backend == "" {
		c.Backend = Embedded
	}
	if c.Backend == Embedded && c.Dir == "" {
		c.Dir = DefaultDir
	}
	switch {
	case c.Cache.Size < 0:
		c.Cache.Size = 0
	case c.Cache.Size == 0 && c.remote():
		c.Cache.Size = DefaultCacheSize
	}
	return c
}

// remote reports whether the backend is across the network.
func (c *Config) remote() bool { return c.Backend == Redis || c.Backend == HTTP }

// Validate checks the configuration without opening anything and reports
// every problem it finds, each naming its key ("http.url: ...").
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	// unit catches "timeout: 250", which YAML reads as 250ns.
	unit := func(key string, d time.Duration) {
		if d > 0 && d < time.Millisecond {
			bad(key, "%v is less than a millisecond: a number without a unit is nanoseconds; write e.g. \"%dms\"", d, int64(d))
		}
	}
	dur := func(key string, d time.Duration) {
		if d < 0 {
			bad(key, "negative (%v)", d)
		}
		unit(key, d)
	}
	switch c.Backend {
	case "", Embedded, Memory:
	case Redis:
		r := &c.Redis
		for i, a := range r.Addrs {
			if strings.TrimSpace(a) == "" {
				bad(fmt.Sprintf("redis.addrs[%d]", i), "empty address; want host:port")
			}
		}
		dur("redis.timeout", r.Timeout)
		if r.PoolSize < 0 {
			bad("redis.pool_size", "negative (%d)", r.PoolSize)
		}
		if r.DB < 0 {
			bad("redis.db", "negative (%d)", r.DB)
		}
		if r.DB != 0 && (r.Cluster || len(r.Addrs) > 1) {
			bad("redis.db", "database %d on a Redis Cluster, which has only database 0; use redis.key_prefix to separate stores", r.DB)
		}
	case HTTP:
		if err := c.HTTP.Validate(); err != nil {
			for _, e := range unjoin(err) { // each names its key
				errs = append(errs, fmt.Errorf("http.%w", e))
			}
		}
		unit("http.timeout", c.HTTP.Timeout)
	default:
		bad("backend", "unknown backend %q; want one of %s", c.Backend, strings.Join(backends, ", "))
	}
	dur("cache.ttl", c.Cache.TTL)
	dur("cache.negative_ttl", c.Cache.NegativeTTL)
	return errors.Join(errs...)
}

// unjoin returns the errors err joins, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Open validates c, opens the backend it names and returns the Store over
// it, with the cache in front as Config.Cache says. ctx bounds the opening
// (connecting to Redis); the Store does not keep it.
func (c Config) Open(ctx context.Context) (*consentstore.Store, error) {
	return c.OpenWithPeers(ctx, nil)
}

// OpenWithPeers is Open for a host of a cluster: peers are told what each
// write changes, so that they drop it from their caches
// (consentstore.Options.Peers).
func (c Config) OpenWithPeers(ctx context.Context, peers consentstore.Peers) (*consentstore.Store, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("consent store: configuration: %w", err)
	}
	c = c.WithDefaults()
	var b consentstore.Backend
	switch c.Backend {
	case Embedded:
		s, err := boltstore.Open(c.Dir, c.Embedded)
		if err != nil {
			return nil, err
		}
		b = s
	case Memory:
		if c.File == "" {
			b = consentstore.NewMemory()
			break
		}
		m, err := consentstore.LoadFile(c.File)
		if err != nil {
			return nil, err
		}
		b = m
	case Redis:
		s, err := redisstore.New(ctx, c.Redis)
		if err != nil {
			return nil, err
		}
		b = s
	case HTTP:
		s, err := httpstore.New(c.HTTP)
		if err != nil {
			return nil, err
		}
		b = s
	}
	return consentstore.New(b, consentstore.Options{Cache: c.Cache, Peers: peers}), nil
}
