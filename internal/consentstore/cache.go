package consentstore

import (
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/insertfn/insertfn/sdk/consent"
)

// CacheConfig sizes the in-process cache a [Store] keeps in front of a
// remote backend. The zero value is no cache.
type CacheConfig struct {
	// Size is the most ids kept, found or known to have no record. 0 (or
	// less) disables the cache.
	Size int `json:"size" yaml:"size"`
	// TTL is how long a found record is served from the cache; writes made
	// through this host invalidate it at once, writes made elsewhere (another
	// host on the same Redis, the company's own service) show after at most
	// TTL. 0 means 30s.
	TTL time.Duration `json:"ttl" yaml:"ttl"`
	// NegativeTTL is how long an id without a record is remembered as
	// such. 0 means 5s.
	NegativeTTL time.Duration `json:"negative_ttl" yaml:"negative_ttl"`
}

// Defaults of CacheConfig.
const (
	DefaultCacheTTL         = 30 * time.Second
	DefaultCacheNegativeTTL = 5 * time.Second
)

// recordCache is the Store's cache: one bounded LRU from lookup id (id or
// alias) to the record found, or to nil for an id known to have no record,
// each entry with its own expiry (TTL or NegativeTTL). Expired entries are
// dropped when met or pushed out by newer ones; the cache runs no
// goroutine, so a closed Store leaves nothing behind.
//
// A lookup that misses reads the backend and then puts what it read; a
// write that ran meanwhile could make that value stale. gen orders them:
// beginWrite and invalidate bump it, and put only stores a value read
// under the generation still current, so a value read before or during a
// write is never stored after the write invalidated it.
type recordCache struct {
	lru         *lru.Cache[string, cacheEntry]
	ttl, negTTL time.Duration

	mu  sync.Mutex // orders put against invalidate
	gen uint64
}

type cacheEntry struct {
	rec     *consent.Record // nil: no record for this id
	expires time.Time
}

func newRecordCache(cfg CacheConfig) *recordCache {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultCacheTTL
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = DefaultCacheNegativeTTL
	}
	c, err := lru.New[string, cacheEntry](cfg.Size)
	if err != nil { // only for a size < 1, which New does not pass
		panic(err)
	}
	return &recordCache{lru: c, ttl: cfg.TTL, negTTL: cfg.NegativeTTL}
}

// get returns the cached record for id (nil for a cached miss) and whether
// the cache knew id.
func (c *recordCache) get(id string) (*consent.Record, bool) {
	e, ok := c.lru.Get(id)
	if !ok {
		return nil, false
	}
	if time.Now().After(e.expires) {
		c.lru.Remove(id)
		return nil, false
	}
	return e.rec, true
}

// generation returns the generation to pass to put for a value read now.
func (c *recordCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put caches rec (nil: no record) for id, unless a write began since gen.
func (c *recordCache) put(gen uint64, id string, rec *consent.Record) {
	ttl := c.ttl
	if rec == nil {
		ttl = c.negTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	id = strings.Clone(id) // the caller's id may be a view into a buffer it reuses
	c.lru.Add(id, cacheEntry{rec: rec, expires: time.Now().Add(ttl)})
}

// beginWrite marks the start of a write: lookups already running do not
// cache what they read.
func (c *recordCache) beginWrite() {
	c.mu.Lock()
	c.gen++
	c.mu.Unlock()
}

// invalidate ends a write: it forgets ids.
func (c *recordCache) invalidate(ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, id := range ids {
		c.lru.Remove(id)
	}
}

// purge forgets everything: after a write whose effect is unknown (the
// backend failed after it may have applied it), and on Close.
func (c *recordCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.lru.Purge()
}
