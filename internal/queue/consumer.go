package queue

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Item is an item handed out by [Consumer.Next].
//
// Data is a copy of the stored bytes, valid after the call and after
// Close; the items of one Next call share one backing array, so keeping
// one item's Data keeps that whole batch's bytes in memory. The consumer
// may modify Data; the stored item is not affected.
type Item struct {
	// Seq is the item's sequence number in its topic, ascending in the
	// order of Append.
	Seq uint64
	// Data is the item's bytes.
	Data []byte
	// Attempts counts the [Consumer.Retry] calls on the item so far: 0 on
	// its first delivery. A redelivery after a crash does not count.
	Attempts int
}

// pebbleConsumer is the [Consumer] of a Pebble topic. Each topic has
// one consumer ([Queue.Consumer] returns the same one each time); it is
// safe for use by several goroutines, which then share the topic's items,
// each item going to one of them.
type pebbleConsumer struct {
	q   *Pebble
	t   *topic
	err error // the topic name's error
}

// Consumer returns the consumer of the named topic, creating the topic
// when needed. An invalid name gives a consumer whose every call fails
// with the name's error.
func (q *Pebble) Consumer(topic Topic) Consumer {
	if err := checkTopic(topic); err != nil {
		return &pebbleConsumer{q: q, err: err}
	}
	t := q.topic(topic, true)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.consumer == nil {
		t.consumer = &pebbleConsumer{q: q, t: t}
	}
	return t.consumer
}

// Topic returns the consumer's topic.
func (c *pebbleConsumer) Topic() Topic {
	if c.t == nil {
		return ""
	}
	return c.t.name
}

// Next waits until at least one item of the topic is ready, then hands
// out up to maxItems ready items (maxItems < 1 means 1), whose data add
// up to at most maxBytes (maxBytes < 1: no bound; the first item is
// handed out whatever its size), in sequence order and puts them in
// flight: they are not handed out again until settled by Ack, Retry,
// Dead or Move (or after a restart, when every item not
// acknowledged is ready again). Ready items are those appended and not
// yet handed out, and those retried whose time has come; an Append on the
// topic, or a retry time coming, wakes a waiting Next at once.
//
// # Results
//
// The items, each with a copy of its data (see [Item]); or ctx's error
// when it is done first; or [ErrClosed] when the queue is closed, also
// while Next waits.
func (c *pebbleConsumer) Next(ctx context.Context, maxItems, maxBytes int) ([]Item, error) {
	if c.err != nil {
		return nil, c.err
	}
	maxItems = max(maxItems, 1)
	q, t := c.q, c.t
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if q.isClosed.Load() {
			return nil, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t.mu.Lock()
		now := time.Now().UnixNano()
		t.promote(now)
		items, corrupt, err := q.take(t, maxItems, maxBytes)
		if err != nil {
			t.mu.Unlock()
			return nil, q.dbErr("next of "+string(t.name), err)
		}
		if len(items) > 0 || len(corrupt) > 0 {
			t.mu.Unlock()
			for _, bad := range corrupt {
				// Out of the way, with its raw bytes for inspection; on
				// failure it stays in flight until the next Open.
				_ = c.Dead(ctx, bad, "corrupt stored item: "+string(bad.Data))
			}
			if len(items) > 0 {
				return items, nil
			}
			continue
		}
		if t.notify == nil {
			t.notify = make(chan struct{})
		}
		woken := t.notify
		var due <-chan time.Time
		if len(t.retry) > 0 {
			d := time.Duration(t.retry[0].at - now)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			due = timer.C
		}
		t.mu.Unlock()
		select {
		case <-woken:
		case <-due:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.done:
			return nil, ErrClosed
		}
	}
}

// The sizes of the chunks take copies items into.
const (
	minChunk = 16 << 10
	maxChunk = 256 << 10
)

// take hands out up to maxItems ready items of t (at most maxBytes of data
// when maxBytes > 0, at least one item), merging the due items with the
// fresh ones in sequence order, and puts them in flight. Items whose
// header cannot be decoded are put in flight and returned in corrupt,
// with the decoding error as Data, for the caller to move to the dead
// letters. Called with t.mu held.
func (q *Pebble) take(t *topic, maxItems, maxBytes int) (out, corrupt []Item, err error) {
	iter, err := q.db.NewIter(&pebble.IterOptions{LowerBound: t.itemKey(t.head), UpperBound: t.itemEnd})
	if err != nil {
		return nil, nil, err
	}
	defer iter.Close()
	valid := iter.First()
	// The items' data are copied into chunks that never move: each new
	// chunk twice the last (up to maxChunk), so a call that finds a few
	// items allocates little, one that fills a batch allocates about what
	// it hands out, and nothing is copied twice.
	var chunk []byte
	chunkSize := minChunk
	taken := 0 // bytes handed out
	for len(out) < maxItems {
		// The next fresh item: skip those tracked as due, waiting or in
		// flight (possible after Open and Replay).
		var fresh uint64
		for ; valid; valid = iter.Next() {
			s := keySeq(iter.Key())
			if !t.skip(s) {
				fresh = s
				break
			}
			t.head = s + 1
		}
		var seq uint64
		var val []byte
		var closer interface{ Close() error }
		stop, due := false, false
		switch {
		case len(t.due) > 0 && (!valid || t.due[0] < fresh):
			seq, due = t.due[0], true
			val, closer, err = q.db.Get(t.itemKey(seq))
			if errors.Is(err, pebble.ErrNotFound) {
				heap.Pop(&t.due) // cannot happen: due items are stored
				delete(t.dueSet, seq)
				err = nil
				continue
			}
		case valid:
			seq = fresh
			val, err = iter.ValueAndErr()
		default:
			err, stop = iter.Error(), true
		}
		if err != nil || stop {
			break
		}
		h, data, derr := decodeItem(val)
		if derr == nil && maxBytes > 0 && len(out) > 0 && taken+len(data) > maxBytes {
			if closer != nil {
				closer.Close()
			}
			break // the batch is full: the item stays ready
		}
		if due {
			heap.Pop(&t.due)
			delete(t.dueSet, seq)
		} else {
			t.head = seq + 1
		}
		if derr != nil {
			t.inflight[seq] = flight{n: len(val), rewritten: true}
			t.inflightBytes += int64(len(val))
			corrupt = append(corrupt, Item{Seq: seq, Data: []byte(derr.Error())})
		} else {
			if len(chunk)+len(data) > cap(chunk) {
				chunk = make([]byte, 0, max(chunkSize, len(data)))
				chunkSize = min(2*chunkSize, maxChunk)
			}
			start := len(chunk)
			chunk = append(chunk, data...)
			taken += len(data)
			out = append(out, Item{Seq: seq, Data: chunk[start:len(chunk):len(chunk)], Attempts: h.attempts})
			t.inflight[seq] = flight{n: len(data), rewritten: h.attempts > 0}
			t.inflightBytes += int64(len(data))
		}
		if closer != nil {
			closer.Close()
		} else {
			valid = iter.Next()
		}
	}
	if err != nil {
		// Put back what this call took: it is handed out again later.
		for _, it := range out {
			delete(t.inflight, it.Seq)
			t.inflightBytes -= int64(len(it.Data))
			t.dueSet[it.Seq] = len(it.Data)
			heap.Push(&t.due, it.Seq)
		}
		return nil, corrupt, err
	}
	return out, corrupt, nil
}

// Ack settles items handed out by this consumer as done: they are
// deleted, in one write shared with the other writes waiting. When one
// of them is not in flight on this consumer nothing is acknowledged and
// the error wraps [ErrNotInFlight]. When the write fails the items stay
// in flight.
func (c *pebbleConsumer) Ack(ctx context.Context, items ...Item) error {
	return c.q.Move(ctx, c, items, nil)
}

// Retry gives an item back, to be handed out again at notBefore or after
// (at once when notBefore is zero or past), also after a restart: its
// Attempts, plus one, and notBefore are stored. A waiting Next is woken
// at that time.
func (c *pebbleConsumer) Retry(ctx context.Context, item Item, notBefore time.Time) error {
	if c.err != nil {
		return c.err
	}
	q, t := c.q, c.t
	if q.isClosed.Load() {
		return ErrClosed
	}
	one := []Item{item}
	sizes, total, err := t.claim(one)
	if err != nil {
		return err
	}
	at := notBefore.UnixNano()
	if notBefore.IsZero() {
		at = time.Now().UnixNano()
	}
	at = max(at, 1) // 0 is a fresh item's
	err = q.write(ctx, false, func(b *pebble.Batch) error {
		key := t.itemKey(item.Seq)
		v, closer, err := q.db.Get(key)
		if err != nil {
			return storedErr(item.Seq, err)
		}
		defer closer.Close()
		h, data, err := decodeItem(v)
		if err != nil {
			return err
		}
		return b.Set(key, encodeItem(h.attempts+1, at, data), nil)
	})
	if err != nil {
		t.unclaim(one, sizes, total)
		return q.dbErr(fmt.Sprintf("retry of %s item %d", t.name, item.Seq), err)
	}
	t.mu.Lock()
	t.settled(1, total)
	t.schedule(item.Seq, sizes[0].n, at, time.Now().UnixNano())
	t.wake()
	t.mu.Unlock()
	return nil
}

// Dead moves an item handed out by this consumer to its topic's dead
// letters, with reason, the time and its Attempts (see
// [Queue.DeadLetters]). It is not handed out again unless replayed.
func (c *pebbleConsumer) Dead(ctx context.Context, item Item, reason string) error {
	if c.err != nil {
		return c.err
	}
	q, t := c.q, c.t
	if q.isClosed.Load() {
		return ErrClosed
	}
	one := []Item{item}
	sizes, total, err := t.claim(one)
	if err != nil {
		return err
	}
	at := time.Now().UnixNano()
	err = q.write(ctx, true, func(b *pebble.Batch) error {
		return q.bury(b, t, item.Seq, reason, at)
	})
	if err != nil {
		t.unclaim(one, sizes, total)
		return q.dbErr(fmt.Sprintf("dead letter of %s item %d", t.name, item.Seq), err)
	}
	t.mu.Lock()
	t.settled(1, total)
	t.count--
	t.bytes -= total
	t.deadCount++
	t.deadBytes += total
	t.mu.Unlock()
	return nil
}

// bury adds to b the move of stored item seq of t to its dead letters.
// An item whose header cannot be decoded is stored whole as the data.
func (q *Pebble) bury(b *pebble.Batch, t *topic, seq uint64, reason string, at int64) error {
	key := t.itemKey(seq)
	v, closer, err := q.db.Get(key)
	if err != nil {
		return storedErr(seq, err)
	}
	defer closer.Close()
	h, data, err := decodeItem(v)
	if err != nil {
		h, data = itemHeader{}, v
	}
	if err := b.Set(t.deadKey(seq), encodeDead(h.attempts, at, reason, data), nil); err != nil {
		return err
	}
	return b.Delete(key, nil)
}

// storedErr is the error of a read of item seq that failed with err.
func storedErr(seq uint64, err error) error {
	if errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("item %d is not stored", seq)
	}
	return fmt.Errorf("read item %d: %w", seq, err)
}

// Move is the pipeline's hand-off: in one transaction it acknowledges
// done, items handed out by c, and appends the items of to to the named
// topics (each topic's items in order; topics are created when needed),
// then wakes their consumers. A crash leaves either the whole move or
// none of it: the items of done are then handed out again, never both
// delivered onward and still pending. done may be empty, and to may name
// c's own topic.
//
// Move is not refused for space (see [Options.MaxBytes]): its data was
// already accepted. The items of to are copied: the caller may reuse
// them once Move returns.
//
// # Results
//
// An error wrapping [ErrNotInFlight] when an item of done is not in
// flight on c (nothing is done); [ErrClosed] after Close; ctx's error
// when it is done before the write is queued. When the write fails, done
// stays in flight and nothing is appended.
func (q *Pebble) Move(ctx context.Context, qc Consumer, done []Item, to map[Topic][][]byte) error {
	c, ok := qc.(*pebbleConsumer)
	if !ok {
		return fmt.Errorf("queue: move from %q: the consumer is of another queue", qc.Topic())
	}
	if c.err != nil {
		return c.err
	}
	if c.q != q {
		return fmt.Errorf("queue: move from %q: the consumer is of another queue", c.t.name)
	}
	if q.isClosed.Load() {
		return ErrClosed
	}
	type dest struct {
		t     *topic
		items [][]byte
		size  int
	}
	var dests []dest
	var charge int64
	for name, items := range to {
		if len(items) == 0 {
			continue
		}
		if err := checkTopic(name); err != nil {
			return fmt.Errorf("queue: move from %q: %w", c.t.name, err)
		}
		size := 0
		for i, it := range items {
			if len(it) > MaxItemLen {
				return fmt.Errorf("queue: move from %q to %q: item %d is %d bytes, the most is %d", c.t.name, name, i, len(it), MaxItemLen)
			}
			size += len(it)
		}
		dests = append(dests, dest{t: q.topic(name, true), items: items, size: size})
		charge += int64(size) + int64(len(items))*ItemOverhead
	}
	if len(done) == 0 && len(dests) == 0 {
		return nil
	}
	src := c.t
	var sizes []flight
	var total int64
	if len(done) > 0 {
		var err error
		if sizes, total, err = src.claim(done); err != nil {
			return err
		}
	}
	err := q.write(ctx, false, func(b *pebble.Batch) error {
		key := make([]byte, 0, src.itemKeyLen())
		for i, it := range done {
			key = src.appendItemKey(key[:0], it.Seq)
			// An item written once goes with a SingleDelete: when it meets
			// its Set in a flush both vanish, so that a healthy queue's
			// traffic leaves nothing behind in the store's files.
			del := b.SingleDelete
			if sizes[i].rewritten {
				del = b.Delete
			}
			if err := del(key, nil); err != nil {
				return err
			}
		}
		for _, d := range dests {
			d.t.putFresh(b, d.items)
		}
		return nil
	})
	if err != nil {
		if len(done) > 0 {
			src.unclaim(done, sizes, total)
		}
		return q.dbErr("move from "+string(src.name), err)
	}
	q.used.Add(charge - total - int64(len(done))*ItemOverhead)
	if len(done) > 0 {
		src.mu.Lock()
		src.settled(len(done), total)
		src.count -= len(done)
		src.bytes -= total
		src.mu.Unlock()
	}
	for _, d := range dests {
		d.t.mu.Lock()
		d.t.count += len(d.items)
		d.t.bytes += int64(d.size)
		d.t.wake()
		d.t.mu.Unlock()
	}
	return nil
}
