package queue

import (
	"container/heap"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
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

// Consumer hands out a topic's items and settles them. Each topic has
// one consumer ([Queue.Consumer] returns the same one each time); it is
// safe for use by several goroutines, which then share the topic's items,
// each item going to one of them.
type Consumer struct {
	q   *Queue
	t   *topic
	err error // the topic name's error
}

// Consumer returns the consumer of the named topic, creating the topic
// when needed. An invalid name gives a consumer whose every call fails
// with the name's error.
func (q *Queue) Consumer(topic string) *Consumer {
	if err := checkTopic(topic); err != nil {
		return &Consumer{q: q, err: err}
	}
	t := q.topic(topic, true)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.consumer == nil {
		t.consumer = &Consumer{q: q, t: t}
	}
	return t.consumer
}

// Topic returns the name of the consumer's topic.
func (c *Consumer) Topic() string {
	if c.t == nil {
		return ""
	}
	return c.t.name
}

// Next waits until at least one item of the topic is ready, then hands
// out up to max ready items (max < 1 means 1) in sequence order and puts
// them in flight: they are not handed out again until settled by Ack,
// Retry, Dead or Move (or after a restart, when every item not
// acknowledged is ready again). Ready items are those appended and not
// yet handed out, and those retried whose time has come; an Append on the
// topic, or a retry time coming, wakes a waiting Next at once.
//
// # Results
//
// The items, each with a copy of its data (see [Item]); or ctx's error
// when it is done first; or [ErrClosed] when the queue is closed, also
// while Next waits.
func (c *Consumer) Next(ctx context.Context, max int) ([]Item, error) {
	if c.err != nil {
		return nil, c.err
	}
	if max < 1 {
		max = 1
	}
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
		items, corrupt, err := q.take(t, max)
		if err != nil {
			t.mu.Unlock()
			return nil, q.dbErr("next of "+t.name, err)
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

// take hands out up to max ready items of t, merging the due items with
// the fresh ones in sequence order, and puts them in flight. Items whose
// header cannot be decoded are put in flight and returned in corrupt,
// with the decoding error as Data, for the caller to move to the dead
// letters. Called with t.mu held.
func (q *Queue) take(t *topic, max int) (out, corrupt []Item, err error) {
	err = q.db.View(func(tx *bolt.Tx) error {
		b := t.items(tx)
		if b == nil {
			return nil
		}
		var kb [8]byte
		cur := b.Cursor()
		k, v := cur.Seek(seqKey(&kb, t.head))
		total := 0
		for len(out) < max {
			// The next fresh item: skip those tracked as due, waiting or
			// in flight (possible after Open and Replay).
			var fresh uint64
			for ; k != nil; k, v = cur.Next() {
				s, ok := keySeq(k)
				if !ok {
					continue
				}
				if !t.skip(s) {
					fresh = s
					break
				}
				t.head = s + 1
			}
			var seq uint64
			var val []byte
			switch {
			case len(t.due) > 0 && (k == nil || t.due[0] < fresh):
				seq = heap.Pop(&t.due).(uint64)
				delete(t.dueSet, seq)
				if val = b.Get(seqKey(&kb, seq)); val == nil {
					continue // cannot happen: due items are stored
				}
			case k != nil:
				seq, val = fresh, v
				t.head = seq + 1
				k, v = cur.Next()
			default:
				return copyData(out, total)
			}
			h, data, err := decodeItem(val)
			if err != nil {
				t.inflight[seq] = len(val)
				t.inflightBytes += int64(len(val))
				corrupt = append(corrupt, Item{Seq: seq, Data: []byte(err.Error())})
				continue
			}
			if out == nil {
				out = make([]Item, 0, min(max, 256))
			}
			out = append(out, Item{Seq: seq, Data: data, Attempts: h.attempts})
			t.inflight[seq] = len(data)
			t.inflightBytes += int64(len(data))
			total += len(data)
		}
		return copyData(out, total)
	})
	return out, corrupt, err
}

// copyData replaces the Data of items, which points into the database's
// memory map, by copies in one new array of total bytes.
func copyData(items []Item, total int) error {
	if len(items) == 0 {
		return nil
	}
	arena := make([]byte, total)
	for i := range items {
		n := copy(arena, items[i].Data)
		items[i].Data = arena[:n:n]
		arena = arena[n:]
	}
	return nil
}

// Ack settles items handed out by this consumer as done: they are
// deleted, in one write shared with the other writes waiting. When one
// of them is not in flight on this consumer nothing is acknowledged and
// the error wraps [ErrNotInFlight]. When the write fails the items stay
// in flight.
func (c *Consumer) Ack(ctx context.Context, items ...Item) error {
	return c.q.Move(ctx, c, items, nil)
}

// Retry gives an item back, to be handed out again at notBefore or after
// (at once when notBefore is zero or past), also after a restart: its
// Attempts, plus one, and notBefore are stored. A waiting Next is woken
// at that time.
func (c *Consumer) Retry(ctx context.Context, item Item, notBefore time.Time) error {
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
	err = q.write(ctx, func(tx *bolt.Tx) error {
		b := t.items(tx)
		if b == nil {
			return fmt.Errorf("topic %q has no stored items", t.name)
		}
		var kb [8]byte
		key := seqKey(&kb, item.Seq)
		v := b.Get(key)
		if v == nil {
			return fmt.Errorf("item %d is not stored", item.Seq)
		}
		h, data, err := decodeItem(v)
		if err != nil {
			return err
		}
		return b.Put(key, encodeItem(h.attempts+1, at, data))
	})
	if err != nil {
		t.unclaim(one, sizes, total)
		return q.dbErr(fmt.Sprintf("retry of %s item %d", t.name, item.Seq), err)
	}
	t.mu.Lock()
	t.settled(1, total)
	t.schedule(item.Seq, sizes[0], at, time.Now().UnixNano())
	t.wake()
	t.mu.Unlock()
	return nil
}

// Dead moves an item handed out by this consumer to its topic's dead
// letters, with reason, the time and its Attempts (see
// [Queue.DeadLetters]). It is not handed out again unless replayed.
func (c *Consumer) Dead(ctx context.Context, item Item, reason string) error {
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
	err = q.write(ctx, func(tx *bolt.Tx) error {
		return t.bury(tx, item.Seq, reason, at)
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

// bury moves stored item seq of t to its dead letters. An item whose
// header cannot be decoded is stored whole as the data.
func (t *topic) bury(tx *bolt.Tx, seq uint64, reason string, at int64) error {
	b := t.items(tx)
	if b == nil {
		return fmt.Errorf("topic %q has no stored items", t.name)
	}
	d, err := t.bucket(tx).CreateBucketIfNotExists(bucketDead)
	if err != nil {
		return err
	}
	var kb [8]byte
	key := seqKey(&kb, seq)
	v := b.Get(key)
	if v == nil {
		return fmt.Errorf("item %d is not stored", seq)
	}
	h, data, err := decodeItem(v)
	if err != nil {
		h, data = itemHeader{}, v
	}
	if err := d.Put(key, encodeDead(h.attempts, at, reason, data)); err != nil {
		return err
	}
	return b.Delete(key)
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
func (q *Queue) Move(ctx context.Context, c *Consumer, done []Item, to map[string][][]byte) error {
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
		arena []byte
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
		arena := make([]byte, 0, size+len(items)*freshHeaderLen)
		for _, it := range items {
			arena = appendFresh(arena, it)
		}
		dests = append(dests, dest{t: q.topic(name, true), items: items, arena: arena, size: size})
		charge += int64(size) + int64(len(items))*ItemOverhead
	}
	if len(done) == 0 && len(dests) == 0 {
		return nil
	}
	src := c.t
	var sizes []int
	var total int64
	if len(done) > 0 {
		var err error
		if sizes, total, err = src.claim(done); err != nil {
			return err
		}
	}
	err := q.write(ctx, func(tx *bolt.Tx) error {
		if len(done) > 0 {
			b := src.items(tx)
			if b == nil {
				return fmt.Errorf("topic %q has no stored items", src.name)
			}
			var kb [8]byte
			for _, it := range done {
				if err := b.Delete(seqKey(&kb, it.Seq)); err != nil {
					return err
				}
			}
		}
		for _, d := range dests {
			b, err := d.t.itemsForWrite(tx)
			if err != nil {
				return err
			}
			if err := putFresh(b, d.arena, d.items); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if len(done) > 0 {
			src.unclaim(done, sizes, total)
		}
		return q.dbErr("move from "+src.name, err)
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
