package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// DeadItem is an item in a topic's dead letters.
type DeadItem struct {
	// Seq is the item's sequence number when it died; it names the item
	// to Replay and DropDead.
	Seq uint64
	// Data is a copy of the item's bytes.
	Data []byte
	// Reason is the reason given to [Consumer.Dead].
	Reason string
	// At is when it died.
	At time.Time
	// Attempts is the item's Attempts when it died: the Retry calls before
	// the failure that killed it (so the tries are Attempts+1).
	Attempts int
}

// replayChunk is how many dead letters one transaction of a Replay or
// DropDead of all moves.
const replayChunk = 1000

// DeadLetter is a dead letter of a destination's topic or of the inbox
// with its event item decoded: what insertfn dead list and the admin API
// show.
type DeadLetter struct {
	// Topic is the topic it died in.
	Topic Topic
	// Seq names it to [Queue.Replay] and [Queue.DropDead].
	Seq uint64
	// At is when it died.
	At time.Time
	// Tries is how many times it was tried, the last one included
	// ([DeadItem.Attempts] + 1).
	Tries int
	// Reason is why it died.
	Reason string
	// Source is the name of the source its events came in through; empty
	// when the item does not decode.
	Source string
	// Events are its events, never none: one in a destination's dead
	// letter, a request's in an inbox dead letter (see
	// [DecodeInboxItem]). An item that does not decode is its one event,
	// as it is stored.
	Events [][]byte
}

// DeadQuery selects the dead letters [Queue.ListDead] returns.
type DeadQuery struct {
	// Topic is the topic whose dead letters are listed, usually a
	// [DestinationTopic] or [InboxTopic]. Empty: those of every topic
	// but the inbox, by name, then the inbox's.
	Topic Topic
	// After and Limit page through Topic's dead letters: only those with
	// Seq > After, at most Limit of them (Limit < 1: all). Both must be
	// zero when Topic is empty.
	After uint64
	Limit int
}

// DeadPage is a page of dead letters, in order.
type DeadPage struct {
	Letters []DeadLetter
	// Next is the DeadQuery.After of the next page; 0 when this page is
	// the last.
	Next uint64
}

// ListDead returns the dead letters query selects, their items decoded
// (see [DeadLetter]).
//
// # Results
//
// For a query of one topic, an error wrapping [ErrNotFound] when the
// topic does not exist (nothing was ever queued for it), else whatever
// [Queue.DeadLetters] returns. A query of every topic skips an inbox that
// does not exist.
func (q *Pebble) ListDead(query DeadQuery) (DeadPage, error) {
	return ListDeadLetters(q, query)
}

// DeadLister is the part of a [Queue] that [ListDeadLetters] reads.
type DeadLister interface {
	Topics() []Topic
	DeadLetters(topic Topic, after uint64, limit int) ([]DeadItem, error)
}

// ListDeadLetters is [Queue.ListDead] for any queue: the dead letters query
// selects, read with q.DeadLetters, their items decoded (see
// [DeadLetter]). Every backend's ListDead is this.
func ListDeadLetters(q DeadLister, query DeadQuery) (DeadPage, error) {
	if query.Topic != "" {
		return listDead(q, query.Topic, query.After, query.Limit)
	}
	if query.After != 0 || query.Limit != 0 {
		return DeadPage{}, errors.New("queue: dead letters of every topic are listed whole: name a topic to page through it")
	}
	var page DeadPage
	for _, t := range append(slices.DeleteFunc(q.Topics(), Topic.IsInbox), InboxTopic) {
		p, err := listDead(q, t, 0, 0)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return DeadPage{}, err
		}
		page.Letters = append(page.Letters, p.Letters...)
	}
	return page, nil
}

// listDead returns a page of the dead letters of topic.
func listDead(q DeadLister, topic Topic, after uint64, limit int) (DeadPage, error) {
	fetch := limit
	if limit > 0 {
		fetch++ // one more tells whether a next page exists
	}
	items, err := q.DeadLetters(topic, after, fetch)
	if err != nil {
		return DeadPage{}, err
	}
	var page DeadPage
	if limit > 0 && len(items) > limit {
		items = items[:limit]
		page.Next = items[limit-1].Seq
	}
	page.Letters = make([]DeadLetter, 0, len(items))
	for _, it := range items {
		var source string
		var events [][]byte
		var err error
		if topic.IsInbox() {
			source, events, err = DecodeInboxItem(it.Data, "", nil)
		} else {
			var ev []byte
			source, ev, err = DecodeEventItem(it.Data, "")
			events = [][]byte{ev}
		}
		if err != nil {
			source, events = "", [][]byte{it.Data}
		}
		page.Letters = append(page.Letters, DeadLetter{Topic: topic, Seq: it.Seq, At: it.At, Tries: it.Attempts + 1,
			Reason: it.Reason, Source: source, Events: events})
	}
	return page, nil
}

// DeadLetters returns the dead letters of the named topic in sequence
// order: those with Seq > after, at most limit of them (limit < 1: all).
// Page through a large set by passing the last Seq seen as after.
//
// # Results
//
// An error wrapping [ErrNotFound] for a topic that does not exist. A
// dead letter that cannot be decoded is returned with its raw bytes as
// Data and the problem as Reason.
func (q *Pebble) DeadLetters(topic Topic, after uint64, limit int) ([]DeadItem, error) {
	if q.isClosed.Load() {
		return nil, ErrClosed
	}
	t := q.topic(topic, false)
	if t == nil {
		return nil, fmt.Errorf("%w: topic %q", ErrNotFound, topic)
	}
	if after == math.MaxUint64 {
		return nil, nil
	}
	iter, err := q.db.NewIter(&pebble.IterOptions{LowerBound: t.deadKey(after + 1), UpperBound: t.deadEnd})
	if err != nil {
		return nil, q.dbErr("dead letters of "+string(topic), err)
	}
	defer iter.Close()
	var out []DeadItem
	for ok := iter.First(); ok && (limit < 1 || len(out) < limit); ok = iter.Next() {
		seq := keySeq(iter.Key())
		v, err := iter.ValueAndErr()
		if err != nil {
			return nil, q.dbErr("dead letters of "+string(topic), err)
		}
		dv, err := decodeDead(v)
		if err != nil {
			out = append(out, DeadItem{Seq: seq, Data: bytes.Clone(v), Reason: err.Error()})
			continue
		}
		out = append(out, DeadItem{
			Seq:      seq,
			Data:     bytes.Clone(dv.data),
			Reason:   string(dv.reason),
			At:       time.Unix(0, dv.at),
			Attempts: dv.attempts,
		})
	}
	if err := iter.Error(); err != nil {
		return nil, q.dbErr("dead letters of "+string(topic), err)
	}
	return out, nil
}

// Replay moves dead letters of the named topic back into it, to be
// handed out again: those of seqs, or all of them when seqs is empty.
// They are appended at the end of the topic, in their order, with new
// sequence numbers and Attempts reset to 0. Each item moves atomically
// (never lost, never both dead and ready); a Replay of all moves them in
// transactions of 1000.
//
// # Results
//
// The number of items replayed. When a seq is not a dead letter of the
// topic nothing is replayed and the error wraps [ErrNotFound]; so does a
// topic that does not exist.
func (q *Pebble) Replay(ctx context.Context, topic Topic, seqs ...uint64) (int, error) {
	return q.settleDead(ctx, topic, seqs, true)
}

// DropDead deletes dead letters of the named topic: those of seqs, or
// all of them when seqs is empty. Results as [Queue.Replay].
func (q *Pebble) DropDead(ctx context.Context, topic Topic, seqs ...uint64) (int, error) {
	return q.settleDead(ctx, topic, seqs, false)
}

// settleDead replays (or drops) dead letters.
func (q *Pebble) settleDead(ctx context.Context, topic Topic, seqs []uint64, replay bool) (int, error) {
	verb := "drop dead letters of "
	if replay {
		verb = "replay dead letters of "
	}
	if q.isClosed.Load() {
		return 0, ErrClosed
	}
	t := q.topic(topic, false)
	if t == nil {
		return 0, fmt.Errorf("queue: %s%q: %w: no such topic", verb, topic, ErrNotFound)
	}
	if len(seqs) > 0 {
		seqs = slices.Clone(seqs)
		slices.Sort(seqs)
		seqs = slices.Compact(seqs)
		n, err := q.settleDeadTx(ctx, t, seqs, replay)
		if err != nil {
			return 0, q.dbErr(verb+string(topic), err)
		}
		return n, nil
	}
	total := 0
	for {
		n, err := q.settleDeadTx(ctx, t, nil, replay)
		total += n
		if err != nil {
			return total, q.dbErr(verb+string(topic), err)
		}
		if n < replayChunk {
			return total, nil
		}
	}
}

// settleDeadTx replays or drops the dead letters seqs of t, or the first
// replayChunk of them when seqs is nil, in one durable write.
func (q *Pebble) settleDeadTx(ctx context.Context, t *topic, seqs []uint64, replay bool) (int, error) {
	var n int
	var size int64
	err := q.write(ctx, true, func(b *pebble.Batch) error {
		n, size = 0, 0
		// Read and check everything first: a failing write adds nothing.
		var datas [][]byte
		var list []uint64
		if seqs == nil {
			iter, err := q.db.NewIter(&pebble.IterOptions{LowerBound: t.deadPrefix, UpperBound: t.deadEnd})
			if err != nil {
				return err
			}
			for ok := iter.First(); ok && len(list) < replayChunk; ok = iter.Next() {
				v, err := iter.ValueAndErr()
				if err != nil {
					iter.Close()
					return err
				}
				list = append(list, keySeq(iter.Key()))
				datas = append(datas, deadData(v))
			}
			if err := errors.Join(iter.Error(), iter.Close()); err != nil {
				return err
			}
		} else {
			list = seqs
			var missing []uint64
			for _, s := range list {
				v, closer, err := q.db.Get(t.deadKey(s))
				if errors.Is(err, pebble.ErrNotFound) {
					missing = append(missing, s)
					continue
				}
				if err != nil {
					return err
				}
				datas = append(datas, deadData(v))
				closer.Close()
			}
			if len(missing) > 0 {
				if len(missing) > 10 {
					return fmt.Errorf("%w: %d of the items are not dead letters, the first: %v", ErrNotFound, len(missing), missing[:10])
				}
				return fmt.Errorf("%w: items %v are not dead letters", ErrNotFound, missing)
			}
		}
		for i, s := range list {
			if replay {
				t.next++
				if err := b.Set(t.itemKey(t.next), encodeItem(0, 0, datas[i]), nil); err != nil {
					return err
				}
			}
			if err := b.Delete(t.deadKey(s), nil); err != nil {
				return err
			}
			n++
			size += int64(len(datas[i]))
		}
		return nil
	})
	if err != nil || n == 0 {
		return 0, err
	}
	t.mu.Lock()
	t.deadCount -= n
	t.deadBytes -= size
	if replay {
		t.count += n
		t.bytes += size
		t.wake()
	}
	t.mu.Unlock()
	if !replay {
		q.used.Add(-size - int64(n)*ItemOverhead)
	}
	return n, nil
}

// deadData returns a copy of the data of stored dead letter v: all of v
// when it cannot be decoded.
func deadData(v []byte) []byte {
	if dv, err := decodeDead(v); err == nil {
		return bytes.Clone(dv.data)
	}
	return bytes.Clone(v)
}
