package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/insertfn/insertfn/internal/queue"
)

// Dead letters. Each topic's are in its own stream, P_D_<topic>, created
// at its first Dead: one message per dead item, on the subject
// P.d.<topic>.<seq> named by the item's sequence number (which names the
// dead letter to Replay and DropDead, as queue.DeadItem says), its data
// the item's, with these headers:
const (
	hdrTopic    = "Insertfn-Topic"    // the topic, escaped (see names)
	hdrSeq      = "Insertfn-Seq"      // the item's sequence number
	hdrReason   = "Insertfn-Reason"   // the reason, Go-quoted (a header holds no line breaks)
	hdrAttempts = "Insertfn-Attempts" // its Attempts when it died
	hdrAt       = "Insertfn-At"       // when it died, RFC 3339 with nanoseconds
)

// deadLetter returns the message of the dead letter of p, an item of t.
func (t *topic) deadLetter(p *part, reason string, at time.Time) *nats.Msg {
	seq := strconv.FormatUint(p.seq, 10)
	return &nats.Msg{
		Subject: t.deadSubject + "." + seq,
		Data:    p.data,
		Header: nats.Header{
			hdrTopic:    {t.escaped},
			hdrSeq:      {seq},
			hdrReason:   {strconv.Quote(reason)},
			hdrAttempts: {strconv.Itoa(p.attempts)},
			hdrAt:       {at.UTC().Format(time.RFC3339Nano)},
			// A Dead whose acknowledgement was lost, done again once the
			// item came back, adds nothing.
			jetstream.MsgIDHeader: {"dead." + seq},
		},
	}
}

// deadStream returns the topic's dead-letter stream, creating it when
// create is set; jetstream.ErrStreamNotFound when it does not exist and
// create is not set.
func (t *topic) deadStream(ctx context.Context, create bool) (jetstream.Stream, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead != nil {
		return t.dead, nil
	}
	q := t.q
	var s jetstream.Stream
	var err error
	if create {
		cfg := q.streamConfig(t.deadName, kindDead, &t.names, t.deadSubject+".*")
		cfg.MaxMsgsPerSubject = 1
		s, err = q.createStream(ctx, cfg)
	} else {
		s, err = q.js.Stream(ctx, t.deadName)
	}
	if err != nil {
		return nil, err
	}
	t.dead = s
	return s, nil
}

// publishDead publishes a dead letter of t, creating its stream when
// needed.
func (q *Queue) publishDead(ctx context.Context, t *topic, m *nats.Msg) error {
	for try := 0; ; try++ {
		if _, err := t.deadStream(ctx, true); err != nil {
			return err
		}
		_, err := q.publishAll(ctx, []*nats.Msg{m}, t.deadName)
		if err != nil && try == 0 && (errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)) {
			t.forget(err)
			continue
		}
		return err
	}
}

// exists reports whether the topic has a stream (items or dead letters),
// or was named in a call of this handle.
func (t *topic) exists(ctx context.Context) (bool, error) {
	if t.named.Load() {
		return true, nil
	}
	if _, err := t.itemsStream(ctx); err == nil {
		return true, nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, err
	}
	if _, err := t.deadStream(ctx, false); err == nil {
		return true, nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, err
	}
	return false, nil
}

// deadSeqs returns the sequence numbers of the dead letters of t, sorted,
// and its dead-letter stream; none (and a nil stream) when it has none.
// It fails with queue.ErrNotFound for a topic that does not exist.
func (q *Queue) deadSeqs(ctx context.Context, t *topic) ([]uint64, jetstream.Stream, error) {
	s, err := t.deadStream(ctx, false)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		ok, err := t.exists(ctx)
		switch {
		case err != nil:
			return nil, nil, err
		case !ok:
			return nil, nil, fmt.Errorf("%w: topic %q", queue.ErrNotFound, t.topic)
		}
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(t.deadSubject+".*"))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		t.forget(err)
		return q.deadSeqs(ctx, t)
	}
	if err != nil {
		return nil, nil, err
	}
	seqs := make([]uint64, 0, len(info.State.Subjects))
	for subj, n := range info.State.Subjects {
		if n == 0 {
			continue
		}
		if seq, err := strconv.ParseUint(subj[strings.LastIndexByte(subj, '.')+1:], 10, 64); err == nil {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs, s, nil
}

// deadMsgs reads the dead letters seqs of t from s; a missing one is nil.
func (q *Queue) deadMsgs(ctx context.Context, t *topic, s jetstream.Stream, seqs []uint64) ([]*jetstream.RawStreamMsg, error) {
	out := make([]*jetstream.RawStreamMsg, len(seqs))
	err := parallel(len(seqs), func(i int) error {
		m, err := s.GetLastMsgForSubject(ctx, t.deadSubject+"."+strconv.FormatUint(seqs[i], 10))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		out[i] = m
		return err
	})
	return out, err
}

// deadItem decodes a dead letter.
func deadItem(m *jetstream.RawStreamMsg) queue.DeadItem {
	d := queue.DeadItem{Data: m.Data, At: m.Time}
	subj := m.Subject
	d.Seq, _ = strconv.ParseUint(subj[strings.LastIndexByte(subj, '.')+1:], 10, 64)
	if r := m.Header.Get(hdrReason); r != "" {
		if u, err := strconv.Unquote(r); err == nil {
			d.Reason = u
		} else {
			d.Reason = r
		}
	}
	d.Attempts, _ = strconv.Atoi(m.Header.Get(hdrAttempts))
	if at, err := time.Parse(time.RFC3339Nano, m.Header.Get(hdrAt)); err == nil {
		d.At = at
	}
	return d
}

// DeadLetters returns the dead letters of the named topic in sequence
// order: those with Seq > after, at most limit of them (limit < 1: all).
// Each dead letter is read by its subject; the list of subjects comes
// first, in one request (so listing costs a request per dead letter
// listed plus one).
//
// # Results
//
// An error wrapping queue.ErrNotFound for a topic that does not exist
// (no stream, not named by this handle).
func (q *Queue) DeadLetters(name queue.Topic, after uint64, limit int) ([]queue.DeadItem, error) {
	if q.closed.Load() {
		return nil, queue.ErrClosed
	}
	if checkTopic(name) != nil {
		return nil, fmt.Errorf("%w: topic %q", queue.ErrNotFound, name)
	}
	if err := q.enter(); err != nil {
		return nil, err
	}
	defer q.leave()
	ctx, cancel := q.opCtx(context.Background())
	defer cancel()
	t := q.topic(name, false)
	seqs, s, err := q.deadSeqs(ctx, t)
	if err != nil {
		return nil, q.wrapErr("dead letters of "+string(name), err)
	}
	i, _ := slices.BinarySearch(seqs, after+1)
	if after == ^uint64(0) {
		i = len(seqs)
	}
	seqs = seqs[i:]
	if limit > 0 && len(seqs) > limit {
		seqs = seqs[:limit]
	}
	msgs, err := q.deadMsgs(ctx, t, s, seqs)
	if err != nil {
		return nil, q.wrapErr("dead letters of "+string(name), err)
	}
	out := make([]queue.DeadItem, 0, len(msgs))
	for _, m := range msgs {
		if m != nil {
			out = append(out, deadItem(m))
		}
	}
	return out, nil
}

// ListDead lists dead letters with their events decoded, as
// queue.Pebble's does ([queue.ListDeadLetters]).
func (q *Queue) ListDead(query queue.DeadQuery) (queue.DeadPage, error) {
	if q.closed.Load() {
		return queue.DeadPage{}, queue.ErrClosed
	}
	return queue.ListDeadLetters(q, query)
}

// replayChunk is how many dead letters one step of a Replay or DropDead
// of all moves.
const replayChunk = 1000

// Replay moves dead letters of the named topic back into it, to be
// handed out again: those of seqs, or all of them when seqs is empty.
// They are appended at the end of the topic, in their order, with new
// sequence numbers and Attempts 0; each is published (with a message id,
// so that a Replay done again after a crash does not publish it twice
// within DuplicateWindow), then deleted from the dead letters.
//
// # Results
//
// The number of items replayed. When a seq is not a dead letter of the
// topic nothing is replayed and the error wraps queue.ErrNotFound; so
// does a topic that does not exist.
func (q *Queue) Replay(ctx context.Context, topic queue.Topic, seqs ...uint64) (int, error) {
	return q.settleDead(ctx, topic, seqs, true)
}

// DropDead deletes dead letters of the named topic: those of seqs, or all
// of them when seqs is empty. Results as Replay.
func (q *Queue) DropDead(ctx context.Context, topic queue.Topic, seqs ...uint64) (int, error) {
	return q.settleDead(ctx, topic, seqs, false)
}

// settleDead replays (or drops) dead letters.
func (q *Queue) settleDead(ctx context.Context, name queue.Topic, seqs []uint64, replay bool) (int, error) {
	verb := "drop dead letters of "
	if replay {
		verb = "replay dead letters of "
	}
	if q.closed.Load() {
		return 0, queue.ErrClosed
	}
	if err := checkTopic(name); err != nil {
		return 0, fmt.Errorf("queue: %s%q: %w: %v", verb, name, queue.ErrNotFound, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := q.enter(); err != nil {
		return 0, err
	}
	defer q.leave()
	t := q.topic(name, false)
	rctx, cancel := q.opCtx(ctx)
	have, s, err := q.deadSeqs(rctx, t)
	cancel()
	if err != nil {
		return 0, q.wrapErr(verb+string(name), err)
	}
	if len(seqs) > 0 {
		seqs = slices.Clone(seqs)
		slices.Sort(seqs)
		seqs = slices.Compact(seqs)
		var missing []uint64
		for _, seq := range seqs {
			if _, ok := slices.BinarySearch(have, seq); !ok {
				missing = append(missing, seq)
			}
		}
		if len(missing) > 0 {
			if len(missing) > 10 {
				return 0, fmt.Errorf("queue: %s%q: %w: %d of the items are not dead letters, the first: %v", verb, name, queue.ErrNotFound, len(missing), missing[:10])
			}
			return 0, fmt.Errorf("queue: %s%q: %w: items %v are not dead letters", verb, name, queue.ErrNotFound, missing)
		}
	} else {
		seqs = have
	}
	total := 0
	for len(seqs) > 0 {
		chunk := seqs[:min(len(seqs), replayChunk)]
		seqs = seqs[len(chunk):]
		n, err := q.settleDeadChunk(ctx, t, s, chunk, replay)
		total += n
		if err != nil {
			return total, q.wrapErr(verb+string(name), err)
		}
	}
	return total, nil
}

// settleDeadChunk replays or drops the dead letters seqs of t, stored in
// s.
func (q *Queue) settleDeadChunk(ctx context.Context, t *topic, s jetstream.Stream, seqs []uint64, replay bool) (int, error) {
	rctx, cancel := q.opCtx(ctx)
	msgs, err := q.deadMsgs(rctx, t, s, seqs)
	cancel()
	if err != nil {
		return 0, err
	}
	msgs = slices.DeleteFunc(msgs, func(m *jetstream.RawStreamMsg) bool { return m == nil })
	if replay {
		out := make([]*nats.Msg, len(msgs))
		var charge int64
		for i, m := range msgs {
			id := "replay." + t.deadName + "." + strconv.FormatUint(m.Sequence, 10)
			out[i] = &nats.Msg{Subject: t.subject, Data: m.Data, Header: nats.Header{jetstream.MsgIDHeader: {id}}}
			q.compress(out[i])
			charge += q.pubSize(t.itemsName, out[i])
		}
		if err := q.publish(ctx, t, out); err != nil {
			return 0, err
		}
		q.used.Add(charge)
	}
	var freed int64
	err = parallel(len(msgs), func(i int) error {
		dctx, cancel := q.opCtx(ctx)
		defer cancel()
		err := s.DeleteMsg(dctx, msgs[i].Sequence)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil // deleted meanwhile, by another host
		}
		return err
	})
	for _, m := range msgs {
		freed += q.msgSize(m.Subject, headerLen(m.Header), len(m.Data))
	}
	q.used.Add(-freed)
	if err != nil {
		return 0, err
	}
	return len(msgs), nil
}
