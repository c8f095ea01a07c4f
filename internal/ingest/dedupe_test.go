package ingest

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// mapWindow is the window as a Go map and a ring: the model the window is
// checked against, and what it is measured against.
type mapWindow struct {
	size int
	set  map[idKey]struct{}
	ring []idKey
	next int
}

func (w *mapWindow) add(k idKey) {
	if _, ok := w.set[k]; ok {
		return
	}
	if len(w.ring) < w.size {
		w.ring = append(w.ring, k)
	} else {
		delete(w.set, w.ring[w.next])
		w.ring[w.next] = k
		w.next = (w.next + 1) % w.size
	}
	w.set[k] = struct{}{}
}

func (w *mapWindow) contains(k idKey) bool { _, ok := w.set[k]; return ok }

// TestWindow: the window remembers exactly the last size distinct keys,
// as the model does, through many evictions; keys crowded into a few
// slots (the same first half) and the zero key included.
func TestWindow(t *testing.T) {
	for _, size := range []int{1, 2, 7, 100, 1000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(size), 9))
			w := newWindow(size)
			m := &mapWindow{size: size, set: map[idKey]struct{}{}}
			var seen []idKey
			key := func() idKey {
				switch n := r.IntN(10); {
				case n == 0 && len(seen) > 0: // a key seen before
					return seen[r.IntN(len(seen))]
				case n == 1: // a crowded home slot
					return idKey{uint64(r.IntN(3)), r.Uint64()}
				case n == 2:
					return idKey{}
				}
				return idKey{r.Uint64(), r.Uint64()}
			}
			for i := range 20 * size * 10 {
				k := key()
				seen = append(seen, k)
				if got, want := w.containsLocked(k), m.contains(stored(k)); got != want {
					t.Fatalf("step %d: contains(%v) = %v, the model says %v", i, k, got, want)
				}
				w.addLocked(k)
				m.add(stored(k))
			}
			for _, k := range seen {
				if got, want := w.containsLocked(k), m.contains(stored(k)); got != want {
					t.Fatalf("at the end: contains(%v) = %v, the model says %v", k, got, want)
				}
			}
			n := 0
			for _, s := range w.slots {
				if s != (idKey{}) {
					n++
				}
			}
			if n != len(m.set) {
				t.Fatalf("%d keys in the table, %d in the model", n, len(m.set))
			}
		})
	}
}

// BenchmarkWindow: a lookup and an insertion per event into a full window
// of the default size, the window against a Go map and ring (the model);
// allocations none in steady state.
func BenchmarkWindow(b *testing.B) {
	keys := make([]idKey, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range keys {
		keys[i] = idKey{r.Uint64(), r.Uint64()}
	}
	b.Run("window", func(b *testing.B) {
		w := newWindow(DefaultDedupeWindow)
		for i := range DefaultDedupeWindow {
			w.addLocked(keys[i])
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k := keys[i&(len(keys)-1)]
			if !w.containsLocked(k) {
				w.addLocked(k)
			}
			i++
		}
	})
	b.Run("map", func(b *testing.B) {
		m := &mapWindow{size: DefaultDedupeWindow, set: map[idKey]struct{}{}}
		for i := range DefaultDedupeWindow {
			m.add(keys[i])
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k := keys[i&(len(keys)-1)]
			if !m.contains(k) {
				m.add(k)
			}
			i++
		}
	})
}
