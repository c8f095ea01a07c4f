package consentstore

import (
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/insertfn/insertfn/sdk/consent"
)

// CacheConfig sizes the in-process cache a [Store] keeps in front of a
// remote backend. The zero value is no cache.
type CacheConfig struct {
	// Size is the most records (and, separately, the most unknown ids)
	// kept. 0 disables the cache.
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

// recordCache is the Store's cache: records by lookup id (id or alias) and,
// apart, ids known to have no record. Both are bounded LRUs with a TTL.
//
// A lookup that misses reads the backend and then puts what it read; a
// write that ran meanwhile could make that value stale. gen orders them:
// beginWrite and invalidate bump it, and put only stores a value read
// under the generation still current, so a value read before or during a
// write is never stored after the write invalidated it.
type recordCache struct {
	found   *expirable.LRU[string, *consent.Record]
	missing *expirable.LRU[string, struct{}]

	mu  sync.Mutex // orders put against invalidate
	gen uint64
}

func newRecordCache(cfg CacheConfig) *recordCache {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultCacheTTL
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = DefaultCacheNegativeTTL
	}
	return &recordCache{
		found:   expirable.NewLRU[string, *consent.Record](cfg.Size, nil, cfg.TTL),
		missing: expirable.NewLRU[string, struct{}](cfg.Size, nil, cfg.NegativeTTL),
	}
}

// get returns the cached record for id (nil for a cached miss) and whether
// the cache knew id.
func (c *recordCache) get(id string) (*consent.Record, bool) {
	if rec, ok := c.found.Get(id); ok {
		return rec, true
	}
	if _, ok := c.missing.Get(id); ok {
		return nil, true
	}
	return nil, false
}

// generation returns the generation to pass to put for a value read now.
func (c *recordCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put caches rec (nil: no record) for id, unless a write began since gen.
func (c *recordCache) put(gen uint64, id string, rec *consent.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	id = strings.Clone(id) // the caller's id may be a view into a buffer it reuses
	if rec == nil {
		c.missing.Add(id, struct{}{})
	} else {
		c.found.Add(id, rec)
	}
}

// beginWrite marks the start of a write: lookups already running do not
// cache what they read.
func (c *recordCache) beginWrite() {
	c.mu.Lock()
	c.gen++
	c.mu.Unlock()
}

// invalidate ends a write: it forgets ids, found or missing.
func (c *recordCache) invalidate(ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, id := range ids {
		c.found.Remove(id)
		c.missing.Remove(id)
	}
}
