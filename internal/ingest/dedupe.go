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
// oldest first: a ring of the keys in the order they came, and a hash set
// of them. It is safe for concurrent use.
//
// The set is an open-addressing table with linear probing, twice the
// window's size or more (a power of two), indexed by the key's first half:
// an idKey is already a uniform hash, so it needs no hashing again, and a
// lookup, an insertion or a deletion (backward shift, no tombstones) reads
// one or two neighbouring slots, where a Go map of 100,000 keys costs
// several cache misses per operation (about 5% of the server's CPU in
// bench/stages before). The zero key marks an empty slot: a key that
// hashes to zero is stored as {0, 1}, which merges it with that one
// other key (a chance of 2^-128).
type window struct {
	mu    sync.Mutex
	size  int
	ring  []idKey // grows to size, then is overwritten from next on
	next  int
	slots []idKey // the set; the zero key is an empty slot
	mask  uint64
}

func newWindow(size int) *window {
	n := 16
	for n < 2*size {
		n <<= 1
	}
	return &window{size: size, slots: make([]idKey, n), mask: uint64(n - 1)}
}

// stored is k as the table stores it (never the zero key).
func stored(k idKey) idKey {
	if k == (idKey{}) {
		return idKey{0, 1}
	}
	return k
}

// find returns the slot of k, or of the empty slot where it would go, and
// whether k is there.
func (w *window) find(k idKey) (uint64, bool) {
	for i := k[0] & w.mask; ; i = (i + 1) & w.mask {
		switch w.slots[i] {
		case k:
			return i, true
		case idKey{}:
			return i, false
		}
	}
}

// addLocked remembers k, forgetting the oldest key if the window is full.
// w.mu must be held.
func (w *window) addLocked(k idKey) {
	k = stored(k)
	i, ok := w.find(k)
	if ok {
		return
	}
	if len(w.ring) < w.size {
		w.ring = append(w.ring, k)
	} else {
		w.remove(w.ring[w.next])
		w.ring[w.next] = k
		w.next++
		if w.next == w.size {
			w.next = 0
		}
		i, _ = w.find(k) // the removal may have moved the empty slot
	}
	w.slots[i] = k
}

// remove deletes k from the table, shifting back the keys after it that
// probing would no longer reach.
func (w *window) remove(k idKey) {
	i, ok := w.find(k)
	if !ok {
		return
	}
	for j := (i + 1) & w.mask; w.slots[j] != (idKey{}); j = (j + 1) & w.mask {
		home := w.slots[j][0] & w.mask
		// The key at j may fill the hole at i unless its home lies
		// cyclically in (i, j].
		if (j-home)&w.mask >= (j-i)&w.mask {
			w.slots[i] = w.slots[j]
			i = j
		}
	}
	w.slots[i] = idKey{}
}

// containsLocked reports whether k is remembered. w.mu must be held.
func (w *window) containsLocked(k idKey) bool {
	_, ok := w.find(stored(k))
	return ok
}
