package ingest

import (
	"hash/maphash"
	"sync"
)

// idKey is a 128-bit hash of a messageId: two independently seeded
// maphash values. Storing hashes instead of the ids keeps the window free
// of per-event allocations; two distinct ids collide with probability
// about window/2^128, which is never in practice.
type idKey [2]uint64

// hasher turns messageIds into idKeys with the seeds of one Server.
type hasher struct{ a, b maphash.Seed }

func newHasher() hasher { return hasher{maphash.MakeSeed(), maphash.MakeSeed()} }

func (h hasher) key(id string) idKey {
	return idKey{maphash.String(h.a, id), maphash.String(h.b, id)}
}

// window remembers the last size distinct keys added to it, forgetting the
// oldest first (a ring of keys and a set). It is safe for concurrent use.
type window struct {
	mu   sync.Mutex
	size int
	set  map[idKey]struct{}
	ring []idKey // grows to size, then is overwritten from next on
	next int
}

func newWindow(size int) *window {
	return &window{size: size, set: make(map[idKey]struct{})}
}

// addLocked remembers k, forgetting the oldest key if the window is full.
// w.mu must be held.
func (w *window) addLocked(k idKey) {
	if _, ok := w.set[k]; ok {
		return
	}
	if len(w.ring) < w.size {
		w.ring = append(w.ring, k)
	} else {
		delete(w.set, w.ring[w.next])
		w.ring[w.next] = k
		w.next++
		if w.next == w.size {
			w.next = 0
		}
	}
	w.set[k] = struct{}{}
}

// containsLocked reports whether k is remembered. w.mu must be held.
func (w *window) containsLocked(k idKey) bool {
	_, ok := w.set[k]
	return ok
}
