package boltstore

import (
	"hash/maphash"
	"strings"
	"sync"

	"github.com/insertfn/insertfn/sdk/consent"
)

// cache keeps decoded records by lookup id (id or alias), so that a repeated
// lookup skips the read transaction and the decoding. Only this process
// writes the database (the file is locked), so the store's own writes keep
// it exact: no TTL is needed.
//
// A lookup that misses reads the database and then puts what it read; a
// write that committed meanwhile could make that value stale. Each shard's
// generation orders them: invalidate bumps it after the write committed,
// and put stores a value only if the generation the lookup saw before it
// read is still current.
//
// A full shard drops an arbitrary entry to make room: a bound, not an LRU;
// the database behind it is fast anyway.
type cache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

const cacheShards = 32

type cacheShard struct {
	mu   sync.RWMutex
	gen  uint64
	max  int
	recs map[string]*consent.Record
}

func newCache(size int) *cache {
	c := &cache{seed: maphash.MakeSeed()}
	per := max(size/cacheShards, 1)
	for i := range c.shards {
		c.shards[i].max = per
		c.shards[i].recs = make(map[string]*consent.Record)
	}
	return c
}

func (c *cache) shard(id string) *cacheShard {
	return &c.shards[maphash.String(c.seed, id)%cacheShards]
}

// get returns the cached record of id, or nil and the generation to pass to
// put after reading the database.
func (c *cache) get(id string) (*consent.Record, uint64) {
	sh := c.shard(id)
	sh.mu.RLock()
	rec, gen := sh.recs[id], sh.gen
	sh.mu.RUnlock()
	return rec, gen
}

// put caches rec for id if no write invalidated id's shard since gen.
func (c *cache) put(gen uint64, id string, rec *consent.Record) {
	sh := c.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen != gen {
		return
	}
	if len(sh.recs) >= sh.max {
		for k := range sh.recs {
			delete(sh.recs, k)
			break
		}
	}
	// Get's caller may reuse the bytes behind id (consent.Store): keep a copy.
	sh.recs[strings.Clone(id)] = rec
}

// invalidate forgets ids, after a write that changed what they find
// committed.
func (c *cache) invalidate(ids []string) {
	for _, id := range ids {
		sh := c.shard(id)
		sh.mu.Lock()
		delete(sh.recs, id)
		sh.gen++
		sh.mu.Unlock()
	}
}
