package jetstream

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
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
type consumer struct {
	t   *topic
	err error // the topic name's error

	mu       sync.Mutex
	buf      []*flight           // delivered to this handle, not handed out yet
	inflight map[uint64]*flight  // handed out by Next, by stream sequence
	settling map[uint64]*flight  // claimed by a settle under way
	retrying map[uint64]waitItem // retried by this handle for later
	waiting  chan struct{}       // closed when the pull under way ends; nil: none
}

// flight is a message delivered to this handle.
type flight struct {
	msg       jetstream.Msg
	seq       uint64 // stream sequence: the item's Seq
	delivered uint64 // deliveries so far, this one included
	size      int
	attempts  int       // Retry calls (see attempts)
	record    bool      // a Retry count is stored for it
	touched   time.Time // when delivered, or last kept alive
	// stale is set when a settle failed: the item stays in flight, but
	// is no longer kept alive, so that it comes back after AckWait to
	// whichever host asks (the pipeline does not settle it again).
	stale bool
}

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
			inflight: make(map[uint64]*flight),
			settling: make(map[uint64]*flight),
			retrying: make(map[uint64]waitItem),
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
// request that the stream answers as soon as an item is ready.
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
	held := len(c.buf)
	c.mu.Unlock()
	var ferr error
	if held < maxItems {
		var msgs []jetstream.Msg
		msgs, ferr = fetchNow(cons, maxItems-held)
		if ferr != nil {
			c.t.forget(ferr)
		}
		c.add(msgs)
	}
	fl := c.take(maxItems, maxBytes)
	if len(fl) == 0 {
		return nil, ferr
	}
	return c.handOut(ctx, fl), nil
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

// add puts messages delivered to this handle in its buffer. A message
// already in flight here whose settle did not fail stays with its
// holder (it came back because a keep-alive was lost); one whose settle
// failed is handed out again.
func (c *consumer) add(msgs []jetstream.Msg) {
	if len(msgs) == 0 {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.q.closed.Load() {
		// Close released what it found: hand these back too, unasked.
		for _, m := range msgs {
			_ = m.Nak()
		}
		return
	}
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			continue // not a JetStream message: nothing to settle
		}
		f := &flight{msg: m, seq: md.Sequence.Stream, delivered: md.NumDelivered, size: len(m.Data()), touched: now}
		delete(c.retrying, f.seq)
		if _, ok := c.settling[f.seq]; ok {
			continue // its settle is under way
		}
		if old, ok := c.inflight[f.seq]; ok {
			if !old.stale {
				old.msg, old.touched = m, now
				continue
			}
			delete(c.inflight, f.seq)
		}
		if i := slices.IndexFunc(c.buf, func(b *flight) bool { return b.seq == f.seq }); i >= 0 {
			c.buf[i] = f
			continue
		}
		c.buf = append(c.buf, f)
	}
}

// take removes from the buffer what one Next hands out: the lowest
// sequence numbers first, up to maxItems and maxBytes.
func (c *consumer) take(maxItems, maxBytes int) []*flight {
	c.mu.Lock()
	defer c.mu.Unlock()
	slices.SortFunc(c.buf, func(a, b *flight) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	n, size := 0, 0
	for n < len(c.buf) && n < maxItems {
		if maxBytes > 0 && n > 0 && size+c.buf[n].size > maxBytes {
			break
		}
		size += c.buf[n].size
		n++
	}
	out := slices.Clone(c.buf[:n])
	c.buf = slices.Delete(c.buf, 0, n)
	return out
}

// handOut puts fl in flight and returns their items, each with a copy of
// its data and its Retry count.
func (c *consumer) handOut(ctx context.Context, fl []*flight) []queue.Item {
	// Fetched: they are handed out even when ctx ends now.
	c.t.q.attempts(context.WithoutCancel(ctx), c.t, fl)
	total := 0
	for _, f := range fl {
		total += f.size
	}
	data := make([]byte, 0, total)
	items := make([]queue.Item, len(fl))
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, f := range fl {
		start := len(data)
		data = append(data, f.msg.Data()...)
		items[i] = queue.Item{Seq: f.seq, Data: data[start:len(data):len(data)], Attempts: f.attempts}
		f.touched = now
		c.inflight[f.seq] = f
	}
	c.t.q.reports.dirty()
	return items
}

// claim takes items out of flight for a settle. When one is not in
// flight on this handle, nothing is claimed and the error wraps
// queue.ErrNotInFlight.
func (c *consumer) claim(items []queue.Item) ([]*flight, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fl := make([]*flight, 0, len(items))
	for _, it := range items {
		f, ok := c.inflight[it.Seq]
		if !ok || slices.Contains(fl, f) {
			return nil, fmt.Errorf("%w: topic %q item %d", queue.ErrNotInFlight, c.t.topic, it.Seq)
		}
		fl = append(fl, f)
	}
	for _, f := range fl {
		delete(c.inflight, f.seq)
		c.settling[f.seq] = f
	}
	return fl, nil
}

// unclaim puts claimed items back in flight after their settle failed,
// no longer kept alive (see flight.stale).
func (c *consumer) unclaim(fl []*flight) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range fl {
		delete(c.settling, f.seq)
		f.stale = true
		c.inflight[f.seq] = f
	}
}

// settled ends the settle of claimed items: their Retry counts are
// dropped and their bytes no longer counted.
func (c *consumer) settled(fl []*flight) {
	q := c.t.q
	c.mu.Lock()
	var size int64
	var records []uint64
	for _, f := range fl {
		delete(c.settling, f.seq)
		size += q.msgSize(c.t.subject, 0, f.size)
		if f.record {
			records = append(records, f.seq)
		}
	}
	c.mu.Unlock()
	q.used.Add(-size)
	q.reports.dirty()
	if len(records) > 0 {
		q.dropAttempts(c.t, records)
	}
}

// release takes every message this handle holds, in flight or buffered,
// for Close to give back.
func (c *consumer) release() []*flight {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.buf
	c.buf = nil
	for seq, f := range c.inflight {
		out = append(out, f)
		delete(c.inflight, seq)
	}
	return out
}

// Ack settles items handed out by this consumer as done: the stream
// deletes them. It returns once the consumer's leader confirmed every
// acknowledgement. When one item is not in flight on this handle,
// nothing is acknowledged and the error wraps queue.ErrNotInFlight. When
// an acknowledgement fails, the items stay in flight, no longer kept
// alive: those not acknowledged come back after AckWait.
func (c *consumer) Ack(ctx context.Context, items ...queue.Item) error {
	if c.err != nil {
		return c.err
	}
	q := c.t.q
	if q.closed.Load() {
		return queue.ErrClosed
	}
	if len(items) == 0 {
		return nil
	}
	if err := q.enter(); err != nil {
		return err
	}
	defer q.leave()
	fl, err := c.claim(items)
	if err != nil {
		return err
	}
	if err := q.settle(ctx, fl, ackAck); err != nil {
		c.unclaim(fl)
		return q.wrapErr("acknowledge items of "+string(c.t.topic), err)
	}
	c.settled(fl)
	return nil
}

// Retry gives an item back, to be handed out again (to any host) at
// notBefore or after (at once when notBefore is zero or past), before
// the items appended after it; its Attempts, plus one, is stored first
// (in the stream of Retry counts), and the stream keeps its time (a
// negative acknowledgement with that delay), also across restarts.
func (c *consumer) Retry(ctx context.Context, item queue.Item, notBefore time.Time) error {
	if c.err != nil {
		return c.err
	}
	q := c.t.q
	if q.closed.Load() {
		return queue.ErrClosed
	}
	if err := q.enter(); err != nil {
		return err
	}
	defer q.leave()
	fl, err := c.claim([]queue.Item{item})
	if err != nil {
		return err
	}
	f := fl[0]
	if err := q.putAttempts(ctx, c.t, f.seq, f.attempts+1); err != nil {
		c.unclaim(fl)
		return q.wrapErr(fmt.Sprintf("retry of %s item %d", c.t.topic, f.seq), err)
	}
	f.record = true
	kind := ackNak
	delay := time.Until(notBefore)
	if notBefore.IsZero() || delay <= 0 {
		delay = 0
	}
	if err := q.settleOne(ctx, f, kind, delay); err != nil {
		c.unclaim(fl)
		return q.wrapErr(fmt.Sprintf("retry of %s item %d", c.t.topic, f.seq), err)
	}
	c.mu.Lock()
	delete(c.settling, f.seq)
	if delay > 0 {
		c.retrying[f.seq] = waitItem{at: notBefore, size: f.size}
	}
	c.mu.Unlock()
	q.reports.dirty()
	return nil
}

// The settles of a message.
type ackKind int

const (
	ackAck  ackKind = iota // done: the stream deletes it
	ackNak                 // again, now or after a delay
	ackTerm                // never again: the stream deletes it
)

// settleOne settles one message and waits for the consumer's leader to
// confirm it.
func (q *Queue) settleOne(ctx context.Context, f *flight, kind ackKind, delay time.Duration) error {
	var body []byte
	switch kind {
	case ackAck:
		body = []byte("+ACK")
	case ackTerm:
		body = []byte("+TERM")
	case ackNak:
		body = []byte("-NAK")
		if delay > 0 {
			body = fmt.Appendf(nil, `-NAK {"delay": %d}`, delay.Nanoseconds())
		}
	}
	ctx, cancel := q.opCtx(ctx)
	defer cancel()
	_, err := q.nc.RequestWithContext(ctx, f.msg.Reply(), body)
	return err
}

// settle settles messages, concurrently, and waits for every
// confirmation; it returns the first error.
func (q *Queue) settle(ctx context.Context, fl []*flight, kind ackKind) error {
	if len(fl) == 0 {
		return nil
	}
	if len(fl) == 1 {
		return q.settleOne(ctx, fl[0], kind, 0)
	}
	return parallel(len(fl), func(i int) error { return q.settleOne(ctx, fl[i], kind, 0) })
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
// items this handle holds are still being worked on, so that they are
// not handed to another host; and gives back the items a pull left in
// the buffer that no Next took meanwhile.
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
			// Every item held half a period or more: each is kept alive
			// at least once a period.
			for _, f := range c.inflight {
				if !f.stale && now.Sub(f.touched) >= every/2 {
					alive = append(alive, f.msg)
					f.touched = now
				}
			}
			for _, f := range c.settling {
				if now.Sub(f.touched) >= every/2 {
					alive = append(alive, f.msg)
					f.touched = now
				}
			}
			c.buf = slices.DeleteFunc(c.buf, func(f *flight) bool {
				if now.Sub(f.touched) >= every {
					back = append(back, f.msg)
					return true
				}
				return false
			})
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
// topic's dead-letter stream, then terminates the item (the stream
// deletes it). A Dead that fails after the publish leaves the item in
// flight (not kept alive): it comes back after AckWait, and a second
// Dead within DuplicateWindow does not add a second dead letter.
func (c *consumer) Dead(ctx context.Context, item queue.Item, reason string) error {
	if c.err != nil {
		return c.err
	}
	q := c.t.q
	if q.closed.Load() {
		return queue.ErrClosed
	}
	if err := q.enter(); err != nil {
		return err
	}
	defer q.leave()
	fl, err := c.claim([]queue.Item{item})
	if err != nil {
		return err
	}
	f := fl[0]
	m, err := c.t.deadLetter(f, reason, time.Now())
	if err == nil {
		err = q.publishDead(ctx, c.t, m)
	}
	if err == nil {
		err = q.settleOne(ctx, f, ackTerm, 0)
	}
	if err != nil {
		c.unclaim(fl)
		return q.wrapErr(fmt.Sprintf("dead letter of %s item %d", c.t.topic, f.seq), err)
	}
	c.settled(fl)
	q.used.Add(q.msgSize(m.Subject, headerLen(m.Header), len(m.Data)))
	return nil
}

// headerLen is about the length of the encoded headers h.
func headerLen(h nats.Header) int {
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
