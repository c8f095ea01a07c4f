package queue

import (
	"container/heap"
	"fmt"
	"math"
	"slices"
	"sync"
)

// topic is the in-memory state of one topic. The stored items are the
// truth; this records which of them are in flight or waiting, where the
// items never handed out since Open begin, and the counts.
//
// Every stored item is in exactly one of these states:
//   - fresh: seq >= head and in no set below; handed out in seq order;
//   - due: ready again after a Retry (or a restart), in the due heap;
//   - waiting: retrying, in the waiting set and the retry heap until its
//     time, then due;
//   - in flight: handed out, in the inflight set;
//   - settling: claimed by an Ack, Retry, Dead or Move whose write is
//     being committed (counted, not in any set).
//
// All fields are guarded by mu.
type topic struct {
	name       Topic
	itemPrefix []byte // of the keys of its items
	itemEnd    []byte // above every key of its items
	deadPrefix []byte // of the keys of its dead letters
	deadEnd    []byte // above every key of its dead letters

	// next is the last sequence number given to an item. Only the
	// committer goroutine (and Open, before it starts) touches it: items
	// get their numbers in the order their writes are applied, so a
	// consumer never sees a later item before an earlier one.
	next uint64

	mu            sync.Mutex
	head          uint64 // every item with seq < head has been seen
	inflight      map[uint64]flight
	inflightBytes int64
	waiting       map[uint64]int // seq → data length
	waitingBytes  int64
	retry         retryHeap      // the waiting items by time
	due           seqHeap        // ready again, by seq
	dueSet        map[uint64]int // seq → data length
	settling      int
	settlingBytes int64

	count     int   // stored items, dead letters excluded
	bytes     int64 // their data bytes
	deadCount int
	deadBytes int64

	notify   chan struct{} // closed by wake; nil when nobody waits
	consumer *pebbleConsumer
}

func newTopic(name Topic) *topic {
	ip, dp := topicPrefix(kindItem, name), topicPrefix(kindDead, name)
	return &topic{
		name:       name,
		itemPrefix: ip,
		itemEnd:    appendSeq(slices.Clip(ip), math.MaxUint64),
		deadPrefix: dp,
		deadEnd:    appendSeq(slices.Clip(dp), math.MaxUint64),
		inflight:   make(map[uint64]flight),
		waiting:    make(map[uint64]int),
		dueSet:     make(map[uint64]int),
	}
}

// wake wakes the Next calls waiting on t.
func (t *topic) wake() {
	if t.notify != nil {
		close(t.notify)
		t.notify = nil
	}
}

// schedule records that item seq of size n is ready again at notBefore
// (Unix ns).
func (t *topic) schedule(seq uint64, n int, notBefore, now int64) {
	if notBefore <= now {
		t.dueSet[seq] = n
		heap.Push(&t.due, seq)
		return
	}
	t.waiting[seq] = n
	t.waitingBytes += int64(n)
	heap.Push(&t.retry, retryEntry{at: notBefore, seq: seq})
}

// promote moves the waiting items whose time has come to the due heap.
func (t *topic) promote(now int64) {
	for len(t.retry) > 0 && t.retry[0].at <= now {
		e := heap.Pop(&t.retry).(retryEntry)
		n, ok := t.waiting[e.seq]
		if !ok {
			continue
		}
		delete(t.waiting, e.seq)
		t.waitingBytes -= int64(n)
		t.dueSet[e.seq] = n
		heap.Push(&t.due, e.seq)
	}
}

// skip reports whether a stored item at or after head is not fresh.
func (t *topic) skip(seq uint64) bool {
	if _, ok := t.dueSet[seq]; ok {
		return true
	}
	if _, ok := t.waiting[seq]; ok {
		return true
	}
	_, ok := t.inflight[seq]
	return ok
}

// flight is an item in flight.
type flight struct {
	n int // its data length
	// rewritten is set when its key may have been written more than once
	// since it was last deleted (it was retried, or is corrupt): it is
	// then deleted with a Delete, not a SingleDelete.
	rewritten bool
}

// claim takes items out of flight for a write that settles them, and
// returns their flight records. When one is not in flight, nothing is
// claimed and the error wraps ErrNotInFlight.
func (t *topic) claim(items []Item) ([]flight, int64, error) {
	sizes := make([]flight, len(items))
	var total int64
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, it := range items {
		n, ok := t.inflight[it.Seq]
		if !ok {
			for j, back := range items[:i] {
				t.inflight[back.Seq] = sizes[j]
			}
			t.inflightBytes += total
			return nil, 0, fmt.Errorf("%w: topic %q item %d", ErrNotInFlight, t.name, it.Seq)
		}
		delete(t.inflight, it.Seq)
		sizes[i] = n
		total += int64(n.n)
		t.inflightBytes -= int64(n.n)
	}
	t.settling += len(items)
	t.settlingBytes += total
	return sizes, total, nil
}

// unclaim puts claimed items back in flight after their write failed.
func (t *topic) unclaim(items []Item, sizes []flight, total int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, it := range items {
		t.inflight[it.Seq] = sizes[i]
	}
	t.inflightBytes += total
	t.settling -= len(items)
	t.settlingBytes -= total
}

// settled ends the settling of n items of total bytes. Called with mu
// held.
func (t *topic) settled(n int, total int64) {
	t.settling -= n
	t.settlingBytes -= total
}

// itemKey returns the key of t's item seq.
func (t *topic) itemKey(seq uint64) []byte {
	return t.appendItemKey(make([]byte, 0, t.itemKeyLen()), seq)
}

// appendItemKey appends the key of t's item seq to dst.
func (t *topic) appendItemKey(dst []byte, seq uint64) []byte {
	return appendSeq(append(dst, t.itemPrefix...), seq)
}

// itemKeyLen is the length of the keys of t's items.
func (t *topic) itemKeyLen() int { return len(t.itemPrefix) + 8 }

// deadKey returns the key of t's dead letter seq.
func (t *topic) deadKey(seq uint64) []byte {
	return appendSeq(slices.Clip(t.deadPrefix), seq)
}

// retryEntry is a waiting item and its time.
type retryEntry struct {
	at  int64
	seq uint64
}

// retryHeap is a min-heap of retryEntry by time.
type retryHeap []retryEntry

func (h retryHeap) Len() int { return len(h) }
func (h retryHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h retryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)   { *h = append(*h, x.(retryEntry)) }
func (h *retryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// seqHeap is a min-heap of sequence numbers.
type seqHeap []uint64

func (h seqHeap) Len() int           { return len(h) }
func (h seqHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h seqHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *seqHeap) Push(x any)        { *h = append(*h, x.(uint64)) }
func (h *seqHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
