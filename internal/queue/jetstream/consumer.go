package jetstream

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/insertfn/insertfn/internal/queue"
)

// consumer is the [queue.Consumer] of a topic on this handle: its share
// of the durable pull consumer every host uses on the topic's stream.
//
// A message delivered here (a flight) holds one item or several (see
// pack.go); its items (parts) are handed out and settled one by one, and
// the message is acknowledged once every one of them is settled.
type consumer struct {
	t   *topic
	err error // the topic name's error

	mu       sync.Mutex
	buf      []*part             // delivered to this handle, not handed out yet
	bufSeqs  map[uint64]*part    // buf by item Seq
	inflight map[uint64]*part    // handed out by Next, by item Seq
	settling map[uint64]*part    // claimed by a settle under way
	held     map[uint64]*flight  // messages held, by stream sequence
	retrying map[uint64]waitItem // retried by this handle for later, by item Seq
	waiting  chan struct{}       // closed when the pull under way ends; nil: none
	perMsg   float64             // items per message, a moving average (sizes the fetches)
	msgBytes float64             // data per message decoded, a moving average (sizes the fetches)
	bufBytes int                 // the data of buf's items
}

// flight is a message delivered to this handle and not acknowledged yet.
type flight struct {
	msg     jetstream.Msg
	sseq    uint64 // stream sequence
	stored  int64  // its bytes as the stream counts them (see msgSize)
	parts   []*part
	open    int       // parts not settled
	handed  bool      // a part was handed out
	touched time.Time // when delivered, or last kept alive
	// stale is set when a settle failed: the message stays held, but is
	// no longer kept alive, so that it comes back after AckWait to
	// whichever host asks (the pipeline does not settle it again).
	stale bool
}

// part is an item of a flight.
type part struct {
	f        *flight
	idx      int
	seq      uint64 // the item's Seq
	attempts int    // its Retry calls
	data     []byte // a slice of the message's data
	state    partState
}

type partState uint8

const (
	partBuffered partState = iota
	partInFlight
	partSettling
	partSettled
)

// waitItem is an item retried for later.
type waitItem struct {
	at   time.Time
	size int
}

// Consumer returns the topic's consumer; every call for a topic returns
// the same one. An invalid name gives a consumer whose every call fails
// with the name's error. Its stream is created at its first Next.
func (q *Queue) Consumer(name queue.Topic) queue.Consumer {
	if err := checkTopic(name); err != nil {
		return &consumer{t: &topic{names: names{topic: name}, q: q}, err: err}
	}
	t := q.topic(name, true)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		t.c = &consumer{
			t:        t,
			bufSeqs:  make(map[uint64]*part),
			inflight: make(map[uint64]*part),
			settling: make(map[uint64]*part),
			held:     make(map[uint64]*flight),
			retrying: make(map[uint64]waitItem),
			perMsg:   1,
		}
	}
	return t.c
}

// Topic returns the consumer's topic.
func (c *consumer) Topic() queue.Topic { return c.t.topic }

// pullWait is how long one pull request of a waiting Next waits on the
// server before the next one: a shorter wait finds a server lost
// without an answer sooner, a longer one sends fewer requests while a
// topic is idle.
const pullWait = 2 * time.Second

// Next waits until at least one item of the topic is ready, then hands
// out up to maxItems of them (maxItems < 1 means 1), whose data add up
// to at most maxBytes (maxBytes < 1: no bound; the first item goes
// whatever its size), in sequence order within the call. They stay with
// this handle, kept alive, until settled; after Close, or when this host
// dies, the stream gives them to another (within AckWait).
//
// Ready items are those appended and not yet handed out (to any host),
// those retried whose time has come, and those a host gave back. Each
// call takes what the stream has at that moment (a call may hand out
// fewer than are ready); when it has nothing, Next waits on a pull
// request that the stream answers as soon as an item is ready. A
// message of several items (a Move's pack) is fetched whole: the items
// beyond the bounds stay with this handle for the next calls.
//
// Errors of the servers that pass (an election, a reconnection) make
// Next try again; it returns only ctx's error, queue.ErrClosed (also
// while it waits), or an error that will not pass (permissions, the
// stream's configuration).
func (c *consumer) Next(ctx context.Context, maxItems, maxBytes int) ([]queue.Item, error) {
	if c.err != nil {
		return nil, c.err
	}
	maxItems = max(maxItems, 1)
	q := c.t.q
	pause := 50 * time.Millisecond
	for {
		if q.closed.Load() {
			return nil, queue.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// A pull request under way gets the oldest ready message first:
		// let it end before fetching what comes after, so that the
		// items a Next hands out come after those of the Nexts before.
		if err := c.awaitPull(ctx); err != nil {
			return nil, err
		}
		items, err := c.tryNext(ctx, maxItems, maxBytes)
		switch {
		case len(items) > 0:
			return items, nil
		case errors.Is(err, queue.ErrClosed):
			return nil, err
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil && !transient(err):
			return nil, q.wrapErr("next of "+string(c.t.topic), err)
		case err != nil:
			if err := c.sleep(ctx, pause); err != nil {
				return nil, err
			}
			pause = min(2*pause, time.Second)
			continue
		}
		pause = 50 * time.Millisecond
		if err := c.wait(ctx); err != nil {
			return nil, err
		}
	}
}

// sleep waits d, or until ctx ends or the queue closes.
func (c *consumer) sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.t.q.done:
		return queue.ErrClosed
	}
}

// transient reports whether an error of the servers may pass by itself.
func transient(err error) bool {
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		// 503: no leader, JetStream unavailable; 408 and 409: a pull
		// request's race; 404: a stream or consumer being re-created.
		// Not 400 or 500: a configuration the servers refuse (replicas
		// that a lone server does not have, say).
		switch ae.Code {
		case 503, 408, 409, 404:
			return true
		}
		return false
	}
	return !errors.Is(err, nats.ErrPermissionViolation) && !errors.Is(err, nats.ErrAuthorization) &&
		!errors.Is(err, nats.ErrMaxPayload) && !errors.Is(err, nats.ErrBadSubject)
}

// tryNext hands out what this handle holds or the stream has now, up to
// the bounds; none when nothing is ready.
func (c *consumer) tryNext(ctx context.Context, maxItems, maxBytes int) ([]queue.Item, error) {
	q := c.t.q
	if err := q.enter(); err != nil {
		return nil, err
	}
	defer q.leave()
	cons, err := c.t.ensureItems(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	n := c.fetchSize(maxItems, maxBytes)
	c.mu.Unlock()
	var ferr error
	if n > 0 {
		var msgs []jetstream.Msg
		msgs, ferr = fetchNow(cons, n)
		if ferr != nil {
			c.t.forget(ferr)
		}
		c.add(msgs)
	}
	parts := c.take(maxItems, maxBytes)
	if len(parts) == 0 {
		return nil, ferr
	}
	return c.handOut(parts), nil
}

// fetchSize is how many messages a Next bounded by maxItems and maxBytes
// fetches (c.mu held): as many as should hold the items and bytes
// missing from the buffer, going by the messages seen so far, and none
// when the buffer already holds enough. Bytes matter as much as items: a
// topic of large messages (an inbox of batches of 100 KB) would otherwise
// pull hundreds of them (tens of megabytes) for a Next that hands out
// five, and keep the rest from the other hosts.
func (c *consumer) fetchSize(maxItems, maxBytes int) int {
	missing := maxItems - len(c.buf)
	if missing <= 0 || (maxBytes > 0 && len(c.buf) > 0 && c.bufBytes >= maxBytes) {
		return 0
	}
	n := int(math.Ceil(float64(missing) / max(c.perMsg, 1)))
	switch {
	case maxBytes <= 0:
	case c.msgBytes == 0:
		n = 1 // the first: sizes the next ones
	default:
		n = min(n, int(math.Ceil(float64(maxBytes-c.bufBytes)/c.msgBytes)))
	}
	return min(max(n, 1), missing)
}

// fetchNow returns up to n messages the consumer has ready now.
func fetchNow(cons jetstream.Consumer, n int) ([]jetstream.Msg, error) {
	batch, err := cons.FetchNoWait(n)
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	return msgs, batch.Error()
}

// wait waits until a pull request gets an item for this handle (or ends
// empty), ctx ends, or the queue closes. Concurrent Next calls share one
// pull request; one that ends while no Next waits leaves its item for
// the next call.
func (c *consumer) wait(ctx context.Context) error {
	q := c.t.q
	c.mu.Lock()
	if len(c.buf) > 0 {
		c.mu.Unlock()
		return nil
	}
	ch := c.waiting
	if ch == nil {
		ch = make(chan struct{})
		c.waiting = ch
		go c.pull(ch)
	}
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-q.done:
		return queue.ErrClosed
	}
}

// awaitPull waits for the pull request under way, if any, to end (see
// wait), unless the buffer holds items.
func (c *consumer) awaitPull(ctx context.Context) error {
	c.mu.Lock()
	pulling := c.waiting != nil
	c.mu.Unlock()
	if !pulling {
		return nil
	}
	return c.wait(ctx)
}

// pull runs one pull request of one message, waiting up to pullWait on
// the server, and puts what it gets in the buffer; it closes ch when
// done.
func (c *consumer) pull(ch chan struct{}) {
	q := c.t.q
	defer func() {
		c.mu.Lock()
		c.waiting = nil
		c.mu.Unlock()
		close(ch)
	}()
	c.t.mu.Lock()
	cons := c.t.cons
	c.t.mu.Unlock()
	if cons == nil {
		return
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(pullWait))
	if err != nil {
		c.sleep(context.Background(), 100*time.Millisecond)
		return
	}
	select {
	case m, ok := <-batch.Messages():
		if ok {
			c.add([]jetstream.Msg{m})
		} else if err := batch.Error(); err != nil {
			c.t.forget(err)
			c.sleep(context.Background(), 100*time.Millisecond)
		}
	case <-q.done:
	}
}

// add puts the items of messages delivered to this handle in its
// buffer.
//
//   - A message already held here whose settles did not fail stays
//     with its holder (it came back because a keep-alive was lost); one
//     whose settle failed is taken afresh, less the items settled here
//     since.
//   - A message retried for a time still to come is given back with the
//     delay left.
//   - A message with an item of the same Seq as one this handle holds
//     is given back for a moment (heldBackoff), until that one is
//     settled: it is the Retry copy of an item whose original this
//     handle is settling right now, or the original of an item whose
//     copy it holds (both there after a host died between the copy's
//     publish and the original's acknowledgement). Settling it here as a
//     duplicate would lose the item when the one held is the original
//     being retried; taken later it is at worst delivered twice, which
//     at-least-once allows.
func (c *consumer) add(msgs []jetstream.Msg) {
	if len(msgs) == 0 {
		return
	}
	now := time.Now()
	q := c.t.q
	var acks []jetstream.Msg
	type later struct {
		m jetstream.Msg
		d time.Duration
	}
	var naks []later
	// Decoded before the lock: decompression takes a while.
	datas := make([][]byte, len(msgs))
	decodeErrs := make([]error, len(msgs))
	for i, m := range msgs {
		datas[i], decodeErrs[i] = expand(m.Headers(), m.Data(), q.maxDecoded())
	}
	c.mu.Lock()
	defer func() {
		c.mu.Unlock()
		for _, m := range acks {
			_ = m.Ack()
		}
		for _, l := range naks {
			_ = m2nak(l.m, l.d)
		}
	}()
	if q.closed.Load() {
		// Close released what it found: hand these back too, unasked.
		for _, m := range msgs {
			naks = append(naks, later{m, 0})
		}
		return
	}
	for i, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			continue // not a JetStream message: nothing to settle
		}
		sseq := md.Sequence.Stream
		var settledBefore []bool
		if old, ok := c.held[sseq]; ok {
			if !old.stale || slices.ContainsFunc(old.parts, func(p *part) bool { return p.state == partSettling }) {
				old.msg, old.touched = m, now
				continue
			}
			settledBefore = make([]bool, len(old.parts))
			for i, p := range old.parts {
				settledBefore[i] = p.state == partSettled
				c.drop(p)
			}
			delete(c.held, sseq)
		}
		items, notBefore, err := unpack(m.Headers(), datas[i], sseq)
		if err = cmp.Or(decodeErrs[i], err); err != nil {
			items = []unpacked{{seq: sseq << seqShift, data: m.Data()}}
		}
		if d := time.Until(notBefore); d > 0 {
			naks = append(naks, later{m, d})
			continue
		}
		if settledBefore == nil && slices.ContainsFunc(items, func(it unpacked) bool { return c.holds(it.seq) }) {
			naks = append(naks, later{m, heldBackoff})
			continue
		}
		f := &flight{msg: m, sseq: sseq, touched: now, parts: make([]*part, len(items))}
		f.stored = q.msgSize(m.Subject(), headerLen(m.Headers()), len(m.Data()))
		c.perMsg = 0.9*c.perMsg + 0.1*float64(len(items))
		if c.msgBytes == 0 {
			c.msgBytes = float64(len(datas[i]))
		} else {
			c.msgBytes = 0.9*c.msgBytes + 0.1*float64(len(datas[i]))
		}
		for i, it := range items {
			p := &part{f: f, idx: i, seq: it.seq, attempts: it.attempts, data: it.data}
			f.parts[i] = p
			delete(c.retrying, p.seq)
			if i < len(settledBefore) && settledBefore[i] {
				p.state = partSettled
				continue
			}
			f.open++
			c.buf = append(c.buf, p)
			c.bufBytes += len(p.data)
			c.bufSeqs[p.seq] = p
		}
		if f.open == 0 {
			acks = append(acks, m)
			continue
		}
		c.held[sseq] = f
	}
}

// heldBackoff is how long a message whose item this handle holds is given
// back for (see add).
const heldBackoff = 100 * time.Millisecond

// m2nak gives a message back, after d.
func m2nak(m jetstream.Msg, d time.Duration) error {
	if d > 0 {
		return m.NakWithDelay(d)
	}
	return m.Nak()
}

// holds reports whether an item of this Seq is buffered, in flight or
// settling here.
func (c *consumer) holds(seq uint64) bool {
	if _, ok := c.bufSeqs[seq]; ok {
		return true
	}
	if _, ok := c.inflight[seq]; ok {
		return true
	}
	_, ok := c.settling[seq]
	return ok
}

// drop forgets a part of a flight that is dropped (c.mu held).
func (c *consumer) drop(p *part) {
	switch p.state {
	case partBuffered:
		if c.bufSeqs[p.seq] == p {
			delete(c.bufSeqs, p.seq)
			c.buf = slices.DeleteFunc(c.buf, func(b *part) bool { return b == p })
			c.bufBytes -= len(p.data)
		}
	case partInFlight:
		if c.inflight[p.seq] == p {
			delete(c.inflight, p.seq)
		}
	}
}

// take removes from the buffer what one Next hands out: the lowest
// sequence numbers first, up to maxItems and maxBytes.
func (c *consumer) take(maxItems, maxBytes int) []*part {
	c.mu.Lock()
	defer c.mu.Unlock()
	slices.SortFunc(c.buf, func(a, b *part) int { return cmp.Compare(a.seq, b.seq) })
	n, size := 0, 0
	for n < len(c.buf) && n < maxItems {
		if maxBytes > 0 && n > 0 && size+len(c.buf[n].data) > maxBytes {
			break
		}
		size += len(c.buf[n].data)
		n++
	}
	out := slices.Clone(c.buf[:n])
	c.buf = slices.Delete(c.buf, 0, n)
	c.bufBytes -= size
	for _, p := range out {
		delete(c.bufSeqs, p.seq)
	}
	return out
}

// handOut puts parts in flight and returns their items, each with a copy
// of its data.
func (c *consumer) handOut(parts []*part) []queue.Item {
	total := 0
	for _, p := range parts {
		total += len(p.data)
	}
	data := make([]byte, 0, total)
	items := make([]queue.Item, len(parts))
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range parts {
		start := len(data)
		data = append(data, p.data...)
		items[i] = queue.Item{Seq: p.seq, Data: data[start:len(data):len(data)], Attempts: p.attempts}
		p.state = partInFlight
		p.f.handed = true
		if !p.f.stale {
			p.f.touched = now
		}
		c.inflight[p.seq] = p
	}
	c.t.q.reports.dirty()
	return items
}

// claim takes items out of flight for a settle. When one is not in
// flight on this handle, nothing is claimed and the error wraps
// queue.ErrNotInFlight.
func (c *consumer) claim(items []queue.Item) ([]*part, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	parts := make([]*part, 0, len(items))
	for _, it := range items {
		p, ok := c.inflight[it.Seq]
		if !ok || slices.Contains(parts, p) {
			return nil, fmt.Errorf("%w: topic %q item %d", queue.ErrNotInFlight, c.t.topic, it.Seq)
		}
		parts = append(parts, p)
	}
	for _, p := range parts {
		delete(c.inflight, p.seq)
		p.state = partSettling
		c.settling[p.seq] = p
	}
	return parts, nil
}

// unclaim puts claimed items back in flight after their settle failed,
// their messages no longer kept alive (see flight.stale).
func (c *consumer) unclaim(parts []*part) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range parts {
		if p.state == partSettled {
			p.f.open++
		}
		if c.settling[p.seq] == p {
			delete(c.settling, p.seq)
		}
		p.state = partInFlight
		p.f.stale = true
		c.inflight[p.seq] = p
	}
}

// finish settles claimed parts and returns the messages that have no
// item left to settle: the caller acknowledges them (see ackAll).
func (c *consumer) finish(parts []*part) []*flight {
	c.mu.Lock()
	defer c.mu.Unlock()
	var done []*flight
	for _, p := range parts {
		if c.settling[p.seq] == p {
			delete(c.settling, p.seq)
		}
		p.state = partSettled
		p.f.open--
		if p.f.open == 0 {
			done = append(done, p.f)
		}
	}
	return done
}

// ackAll acknowledges messages whose every item is settled, and waits
// for the confirmations. Those acknowledged are no longer held; when one
// fails, the parts of parts in the messages that failed are put back in
// flight (not kept alive), and the error returned.
func (c *consumer) ackAll(ctx context.Context, done []*flight, parts []*part) error {
	if len(done) == 0 {
		c.t.q.reports.dirty()
		return nil
	}
	q := c.t.q
	errs := make([]error, len(done))
	if len(done) == 1 {
		errs[0] = q.settleMsg(ctx, done[0].msg, ackAck, 0)
	} else {
		_ = parallel(len(done), func(i int) error {
			errs[i] = q.settleMsg(ctx, done[i].msg, ackAck, 0)
			return nil
		})
	}
	var first error
	var freed int64
	var back []*part
	c.mu.Lock()
	for i, f := range done {
		if errs[i] != nil {
			if first == nil {
				first = errs[i]
			}
			for _, p := range parts {
				if p.f == f {
					back = append(back, p)
				}
			}
			continue
		}
		if c.held[f.sseq] == f {
			delete(c.held, f.sseq)
		}
		freed += f.stored
	}
	c.mu.Unlock()
	q.used.Add(-freed)
	if len(back) > 0 {
		c.unclaim(back)
	}
	q.reports.dirty()
	return first
}

// release takes every message this handle holds, for Close to give
// back.
func (c *consumer) release() []*flight {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*flight, 0, len(c.held))
	for sseq, f := range c.held {
		out = append(out, f)
		delete(c.held, sseq)
	}
	c.buf, c.bufBytes = nil, 0
	clear(c.bufSeqs)
	clear(c.inflight)
	return out
}

// giveBack hands messages a closing handle holds back to the stream: a
// message none of whose items was settled is given back whole; one with
// items settled (a pack partly acknowledged) is split, the items not
// settled published again as a pack of their own (with their Seq and
// Attempts) and the message acknowledged, so that the items settled do
// not come back. When that publish fails, the message is given back
// whole (its items settled are handed out again: at least once).
func (q *Queue) giveBack(ctx context.Context, t *topic, fl []*flight) error {
	var whole []*flight
	var rest []*flight
	for _, f := range fl {
		if f.open == len(f.parts) {
			whole = append(whole, f)
		} else {
			rest = append(rest, f)
		}
	}
	var first error
	for _, f := range rest {
		var entries []entry
		for _, p := range f.parts {
			if p.state != partSettled {
				entries = append(entries, entry{seq: p.seq, attempts: p.attempts, data: p.data})
			}
		}
		m := packMsg(t, entries)
		m.Header.Set(jetstream.MsgIDHeader, "rest."+strconv.FormatUint(f.sseq, 10))
		q.compress(m)
		size := q.pubSize(t.itemsName, m)
		err := q.publish(ctx, t, []*nats.Msg{m})
		if err == nil {
			q.used.Add(size)
			err = q.settleMsg(ctx, f.msg, ackAck, 0)
			if err == nil {
				q.used.Add(-f.stored)
			}
		} else {
			whole = append(whole, f)
		}
		if first == nil {
			first = err
		}
	}
	if len(whole) > 0 {
		err := parallel(len(whole), func(i int) error { return q.settleMsg(ctx, whole[i].msg, ackNak, 0) })
		if first == nil {
			first = err
		}
	}
	return first
}

// Ack settles items handed out by this consumer as done; a message is
// acknowledged (the stream deletes it) once every item of it is settled,
// and Ack returns once the consumer's leader confirmed those
// acknowledgements. When one item is not in flight on this handle,
// nothing is settled and the error wraps queue.ErrNotInFlight. When an
// acknowledgement fails, the items of its message stay in flight, no
// longer kept alive: the message comes back after AckWait.
//
// The items of a message of several settled before the last are settled
// on this handle only until the message is acknowledged: if this host
// dies in between, the whole message comes back to another after
// AckWait, those items included (at least once).
func (c *consumer) Ack(ctx context.Context, items ...queue.Item) error {
	return c.settle(items, func(parts []*part) error {
		if err := c.ackAll(ctx, c.finish(parts), parts); err != nil {
			return c.t.q.wrapErr("acknowledge items of "+string(c.t.topic), err)
		}
		return nil
	})
}

// settle runs do on the parts of items, claimed from this handle, while
// the queue is open: the start Ack, Retry and Dead share. No items: nothing.
func (c *consumer) settle(items []queue.Item, do func(parts []*part) error) error {
	if c.err != nil {
		return c.err
	}
	q := c.t.q
	if err := q.enter(); err != nil {
		return err
	}
	defer q.leave()
	if len(items) == 0 {
		return nil
	}
	parts, err := c.claim(items)
	if err != nil {
		return err
	}
	return do(parts)
}

// replace settles one item by publishing something in its place (a Retry
// copy, a dead letter): publish publishes it and returns the bytes it
// stored; once it has, the item is settled in its message. A failed
// publish leaves the item in flight. what names the step in errors.
func (c *consumer) replace(ctx context.Context, item queue.Item, what string, publish func(p *part) (int64, error)) error {
	return c.settle([]queue.Item{item}, func(parts []*part) error {
		q, p := c.t.q, parts[0]
		size, err := publish(p)
		if err != nil {
			c.unclaim(parts)
			return q.wrapErr(fmt.Sprintf("%s of %s item %d", what, c.t.topic, p.seq), err)
		}
		q.used.Add(size)
		if err := c.ackAll(ctx, c.finish(parts), parts); err != nil {
			return q.wrapErr(fmt.Sprintf("%s of %s item %d", what, c.t.topic, p.seq), err)
		}
		return nil
	})
}

// Retry gives an item back, to be handed out again (to any host) at
// notBefore or after (at once when notBefore is zero or past), with its
// Seq and its Attempts one more: it publishes the item alone, as a pack
// of one that carries its Seq, Attempts and time (a host that gets it
// before its time gives it back to the stream with the delay left), then
// settles it in its message. The copy's message id is named by the
// item's Seq and Attempts, so that a Retry done again (after a failure,
// or by another host after this one died before its message was
// acknowledged and the message came back) publishes no second copy
// within DuplicateWindow. A retried item is handed out after the items
// already in the stream (within one Next, in Seq order).
func (c *consumer) Retry(ctx context.Context, item queue.Item, notBefore time.Time) error {
	return c.replace(ctx, item, "retry", func(p *part) (int64, error) {
		q := c.t.q
		m := packMsg(c.t, []entry{{seq: p.seq, attempts: p.attempts + 1, data: p.data}})
		m.Header.Set(jetstream.MsgIDHeader, "retry."+strconv.FormatUint(p.seq, 10)+"."+strconv.Itoa(p.attempts+1))
		later := !notBefore.IsZero() && time.Until(notBefore) > 0
		if later {
			m.Header.Set(hdrNotBefore, strconv.FormatInt(notBefore.UnixNano(), 10))
		}
		q.compress(m)
		size := q.pubSize(c.t.itemsName, m)
		if err := q.publish(ctx, c.t, []*nats.Msg{m}); err != nil {
			return 0, err
		}
		if later {
			c.mu.Lock()
			c.retrying[p.seq] = waitItem{at: notBefore, size: len(p.data)}
			c.mu.Unlock()
		}
		return size, nil
	})
}

// The settles of a message.
type ackKind int

const (
	ackAck ackKind = iota // done: the stream deletes it
	ackNak                // again, now or after a delay
)

// settleMsg settles one message and waits for the consumer's leader to
// confirm it.
func (q *Queue) settleMsg(ctx context.Context, m jetstream.Msg, kind ackKind, delay time.Duration) error {
	var body []byte
	switch kind {
	case ackAck:
		body = []byte("+ACK")
	case ackNak:
		body = []byte("-NAK")
		if delay > 0 {
			body = fmt.Appendf(nil, `-NAK {"delay": %d}`, delay.Nanoseconds())
		}
	}
	ctx, cancel := q.opCtx(ctx)
	defer cancel()
	_, err := q.nc.RequestWithContext(ctx, m.Reply(), body)
	return err
}

// parallel runs f(0) to f(n-1), at most 64 at a time, and returns the
// first error.
func parallel(n int, f func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = f(i)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// keepAliveLoop tells the streams, every third of AckWait, that the
// messages this handle holds are still being worked on (while any item
// of one is held), so that they are not handed to another host; and
// gives back the messages a pull left in the buffer that no Next took
// from meanwhile.
func (q *Queue) keepAliveLoop() {
	defer q.wg.Done()
	every := max(q.ackWait/3, 20*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-q.done:
			return
		case <-tick.C:
		}
		now := time.Now()
		for _, t := range q.topicList() {
			c := t.consumerIfAny()
			if c == nil {
				continue
			}
			var alive, back []jetstream.Msg
			c.mu.Lock()
			for sseq, f := range c.held {
				switch {
				case f.stale:
				case !f.handed && now.Sub(f.touched) >= every:
					// Buffered whole a period and more: back to the stream.
					back = append(back, f.msg)
					for _, p := range f.parts {
						c.drop(p)
					}
					delete(c.held, sseq)
				case f.handed && now.Sub(f.touched) >= every/2:
					// Every message held half a period or more: each is
					// kept alive at least once a period.
					alive = append(alive, f.msg)
					f.touched = now
				}
			}
			for seq, w := range c.retrying {
				if now.After(w.at) {
					delete(c.retrying, seq)
				}
			}
			c.mu.Unlock()
			for _, m := range alive {
				_ = m.InProgress()
			}
			for _, m := range back {
				_ = m.Nak()
			}
		}
	}
}

// Dead moves an item handed out by this consumer to its topic's dead
// letters: it publishes the dead letter (the item's data, with its
// topic, sequence number, reason, Attempts and time in headers) to the
// topic's dead-letter stream, then settles the item in its message. A
// Dead that fails after the publish leaves the item in flight (not kept
// alive): it comes back after AckWait, and a second Dead within
// DuplicateWindow does not add a second dead letter.
func (c *consumer) Dead(ctx context.Context, item queue.Item, reason string) error {
	return c.replace(ctx, item, "dead letter", func(p *part) (int64, error) {
		q := c.t.q
		m := c.t.deadLetter(p, reason, time.Now())
		size := q.pubSize(c.t.deadName, m)
		return size, q.publishDead(ctx, c.t, m)
	})
}

// pubSize is what m takes in the stream once published to it: with the
// header the publish adds, naming the stream.
func (q *Queue) pubSize(stream string, m *nats.Msg) int64 {
	h := headerLen(m.Header)
	if m.Header.Get(jetstream.ExpectedStreamHeader) == "" {
		h += len(jetstream.ExpectedStreamHeader) + len(stream) + 4
	}
	return q.msgSize(m.Subject, h, len(m.Data))
}

// headerLen is about the length of the encoded headers h.
func headerLen(h nats.Header) int {
	if len(h) == 0 {
		return len("NATS/1.0\r\n\r\n")
	}
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// moveIDs derives the message ids of a Move's outputs (see Queue.Move).
type moveIDs struct {
	base []byte
	seen map[[16]byte]int
}

// newMoveIDs returns the ids of a Move of done, items of stream; nil
// (no ids) when done is empty.
func newMoveIDs(stream string, done []queue.Item) *moveIDs {
	if len(done) == 0 {
		return nil
	}
	seqs := make([]uint64, len(done))
	for i, it := range done {
		seqs[i] = it.Seq
	}
	slices.Sort(seqs)
	h := sha256.New()
	h.Write([]byte(stream))
	var b [8]byte
	for _, s := range seqs {
		binary.BigEndian.PutUint64(b[:], s)
		h.Write(b[:])
	}
	return &moveIDs{base: h.Sum(nil)[:16], seen: make(map[[16]byte]int)}
}

// next returns the id of the next output, data to topic.
func (m *moveIDs) next(topic queue.Topic, data []byte) string {
	if m == nil {
		return ""
	}
	h := sha256.New()
	h.Write(m.base)
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(data)
	var key [16]byte
	copy(key[:], h.Sum(nil))
	k := m.seen[key]
	m.seen[key] = k + 1
	return "m" + base64.RawURLEncoding.EncodeToString(key[:]) + "." + strconv.Itoa(k)
}
