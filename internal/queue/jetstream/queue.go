package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/insertfn/insertfn/internal/queue"
)

// Queue is a [queue.Queue] whose topics are NATS JetStream streams,
// shared by every host that opens it with the same prefix (see the
// package's documentation). It is safe for concurrent use.
type Queue struct {
	opts      Options
	prefix    string
	nc        *nats.Conn
	js        jetstream.JetStream
	replicas  int
	storage   jetstream.StorageType
	maxBytes  int64 // < 0: no bound
	ackWait   time.Duration
	dupWindow time.Duration
	timeout   time.Duration
	host      string // this handle's name in the host reports

	topicsMu sync.Mutex
	topics   map[queue.Topic]*topic

	// used is the bytes the queue's streams hold as last measured, plus
	// what this handle wrote or removed since (see usageLoop).
	used atomic.Int64

	// closeMu is held for reading by every call while it uses the
	// connection, so that Close waits for them; closed is set first.
	closeMu   sync.RWMutex
	closed    atomic.Bool
	done      chan struct{}
	bg        context.Context // the background goroutines' context, canceled by Close
	stopBg    context.CancelFunc
	wg        sync.WaitGroup // the background goroutines
	closeOnce sync.Once
	closeErr  error

	reports reports

	// beforeMoveAck, when set (by tests), runs in Move between the
	// publishes and the acknowledgement; an error stops the Move there.
	beforeMoveAck func() error
	// compressAll, when set (by tests), compresses every message, however
	// small and whatever the gain.
	compressAll bool
}

var (
	_ queue.Queue    = (*Queue)(nil)
	_ queue.Consumer = (*consumer)(nil)
)

// Connect validates the options and connects to their NATS servers, as
// Open does: with their credentials and TLS, reconnecting for ever (to
// any server of the cluster) when the connection drops. The cluster's
// other uses of NATS share these options.
func (o Options) Connect(ctx context.Context) (*nats.Conn, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	name := o.Name
	if name == "" {
		name = "insertfn"
	}
	timeout := o.timeout()
	if deadline, ok := ctx.Deadline(); ok {
		if d := time.Until(deadline); d > 0 && d < timeout {
			timeout = d
		}
	}
	nopts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(timeout),
		nats.NoCallbacksAfterClientClose(),
	}
	switch {
	case o.CredentialsFile != "":
		nopts = append(nopts, nats.UserCredentials(o.CredentialsFile))
	case o.User != "":
		nopts = append(nopts, nats.UserInfo(o.User, o.Password))
	case o.Token != "":
		nopts = append(nopts, nats.Token(o.Token))
	}
	if o.TLS.CAFile != "" {
		nopts = append(nopts, nats.RootCAs(o.TLS.CAFile))
	}
	if o.TLS.CertFile != "" {
		nopts = append(nopts, nats.ClientCert(o.TLS.CertFile, o.TLS.KeyFile))
	}
	nc, err := nats.Connect(o.urls(), nopts...)
	if err != nil {
		return nil, fmt.Errorf("queue: connect to NATS at %s: %w", o.urls(), err)
	}
	return nc, nil
}

// Open connects to the NATS servers of opts and returns the queue named
// by opts.Prefix, which other hosts may have open too. A topic's streams
// are created when it is first written or consumed.
//
// # Results
//
// An error when opts is not valid (see [Options.Validate]), when no
// server answers within ctx (or opts.Timeout), or when the server has no
// JetStream.
func Open(ctx context.Context, opts Options) (*Queue, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	q := &Queue{
		opts:      opts,
		prefix:    opts.prefix(),
		maxBytes:  opts.maxBytes(),
		ackWait:   opts.ackWait(),
		dupWindow: opts.duplicateWindow(),
		timeout:   opts.timeout(),
		host:      nuid.Next(),
		topics:    make(map[queue.Topic]*topic),
		done:      make(chan struct{}),
		storage:   jetstream.FileStorage,
	}
	if opts.Storage == StorageMemory {
		q.storage = jetstream.MemoryStorage
	}
	nc, err := opts.Connect(ctx)
	if err != nil {
		return nil, err
	}
	q.nc = nc
	q.js, err = jetstream.New(nc, jetstream.WithDefaultTimeout(q.timeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("queue: JetStream: %w", err)
	}
	actx, cancel := q.opCtx(ctx)
	_, err = q.js.AccountInfo(actx)
	cancel()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("queue: JetStream at %s: %w", nc.ConnectedUrlRedacted(), err)
	}
	q.replicas = opts.Replicas
	if q.replicas == 0 {
		q.replicas = 1
		if nc.ConnectedClusterName() != "" {
			q.replicas = DefaultReplicas
		}
	}
	q.bg, q.stopBg = context.WithCancel(context.Background())
	q.reports.init(q)
	q.refreshUsage(ctx)
	q.wg.Add(3)
	go q.usageLoop()
	go q.keepAliveLoop()
	go q.reportLoop()
	return q, nil
}

// Close hands every item this handle holds (in flight, or fetched and
// not handed out yet) back to the streams at once, so that the other
// hosts (or this host's next Open) get them without waiting for AckWait;
// wakes every waiting Next with queue.ErrClosed; waits for the calls
// under way; and closes the connection. Later calls fail with
// queue.ErrClosed. A Retry's time and count stay with the stream. Close
// is safe to call more than once.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.closed.Store(true)
		close(q.done)
		q.stopBg()
		q.closeMu.Lock() // the calls under way are done
		defer q.closeMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
		defer cancel()
		var errs []error
		for _, t := range q.topicList() {
			if c := t.consumerIfAny(); c != nil {
				errs = append(errs, q.giveBack(ctx, t, c.release()))
			}
		}
		q.wg.Wait()
		errs = append(errs, q.reports.final(ctx), q.nc.FlushWithContext(ctx))
		q.nc.Close()
		if err := errors.Join(errs...); err != nil {
			q.closeErr = fmt.Errorf("queue: close: %w", err)
		}
	})
	return q.closeErr
}

// crash closes the connection as a host that dies does: its items come
// back to the other hosts after AckWait. For tests.
func (q *Queue) crash() {
	q.closeOnce.Do(func() {
		q.closed.Store(true)
		close(q.done)
		q.stopBg()
		q.nc.Close()
		q.closeMu.Lock()
		q.wg.Wait()
		q.closeMu.Unlock()
	})
}

// enter starts a call that uses the connection: Close waits for it.
func (q *Queue) enter() error {
	q.closeMu.RLock()
	if q.closed.Load() {
		q.closeMu.RUnlock()
		return queue.ErrClosed
	}
	return nil
}

func (q *Queue) leave() { q.closeMu.RUnlock() }

// opCtx bounds a request by Options.Timeout.
func (q *Queue) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, q.timeout)
}

// topic is a topic's streams and consumer, as far as this handle knows
// them.
type topic struct {
	names
	q     *Queue
	named atomic.Bool // named in a call that creates topics

	mu      sync.Mutex // guards the handles below, and their creation
	items   jetstream.Stream
	created bool // items was created (or updated) by this handle
	cons    jetstream.Consumer
	dead    jetstream.Stream
	c       *consumer

	stats statsCache
}

// topic returns the state of the named topic; named marks it as named
// in a call that creates topics (Append, Consumer, Move), for Topics.
func (q *Queue) topic(name queue.Topic, named bool) *topic {
	q.topicsMu.Lock()
	defer q.topicsMu.Unlock()
	t := q.topics[name]
	if t == nil {
		t = &topic{names: namesOf(q.prefix, name), q: q}
		q.topics[name] = t
	}
	if named {
		t.named.Store(true)
	}
	return t
}

func (q *Queue) topicList() []*topic {
	q.topicsMu.Lock()
	defer q.topicsMu.Unlock()
	out := make([]*topic, 0, len(q.topics))
	for _, t := range q.topics {
		out = append(out, t)
	}
	return out
}

func (t *topic) consumerIfAny() *consumer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.c
}

// checkTopic reports whether name is a valid topic name.
func checkTopic(name queue.Topic) error {
	if name == "" {
		return errors.New("queue: empty topic name")
	}
	if len(name) > queue.MaxTopicLen {
		return fmt.Errorf("queue: topic name %.40q... is %d bytes, the most is %d", name, len(name), queue.MaxTopicLen)
	}
	return nil
}

// streamConfig returns the configuration of one of the queue's streams.
func (q *Queue) streamConfig(name, kind string, t *names, subjects ...string) jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:              name,
		Subjects:          subjects,
		Retention:         jetstream.LimitsPolicy,
		MaxConsumers:      -1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1,
		MaxMsgSize:        -1,
		Discard:           jetstream.DiscardNew,
		Storage:           q.storage,
		Replicas:          q.replicas,
		Duplicates:        q.dupWindow,
		Metadata:          map[string]string{metaKind: kind},
	}
	if t != nil {
		cfg.Metadata[metaTopic] = t.escaped
		cfg.Description = fmt.Sprintf("insertfn queue: %s of topic %q", kind, t.topic)
	}
	return cfg
}

// createStream creates a stream, or updates it when it exists with
// another configuration (replicas changed, say).
func (q *Queue) createStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := q.js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = q.js.UpdateStream(ctx, cfg)
	}
	return s, err
}

// ensureStream returns the topic's items stream, creating it (or
// updating its configuration) at its first use by this handle.
func (t *topic) ensureStream(ctx context.Context) (jetstream.Stream, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ensureStreamLocked(ctx)
}

func (t *topic) ensureStreamLocked(ctx context.Context) (jetstream.Stream, error) {
	if t.created {
		return t.items, nil
	}
	q := t.q
	cfg := q.streamConfig(t.itemsName, kindItems, &t.names, t.subject, t.subject+".*")
	cfg.Retention = jetstream.WorkQueuePolicy
	s, err := q.createStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create the stream %s of %q: %w", t.itemsName, t.topic, err)
	}
	t.items, t.created = s, true
	return s, nil
}

// ensureItems returns the topic's consumer on its items stream, creating
// both when needed. (An Append creates the stream only: the consumer,
// which delivers from the stream's start, may come later.)
func (t *topic) ensureItems(ctx context.Context) (jetstream.Consumer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cons != nil {
		return t.cons, nil
	}
	q := t.q
	s, err := t.ensureStreamLocked(ctx)
	if err != nil {
		return nil, err
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:        consumerName,
		Description:    "the hosts of insertfn, sharing the topic's items",
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        q.ackWait,
		MaxDeliver:     -1,
		FilterSubjects: []string{t.subject, t.subject + ".*"},
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
		MaxAckPending:  -1,
		MaxWaiting:     maxWaiting,
	})
	if err != nil {
		return nil, fmt.Errorf("create the consumer of %s: %w", t.itemsName, err)
	}
	t.cons = cons
	return cons, nil
}

// maxWaiting is the most pull requests a consumer keeps waiting: each
// host has one waiting per topic it consumes, plus a few ending.
const maxWaiting = 512

// itemsStream returns the topic's items stream without creating it:
// jetstream.ErrStreamNotFound when it does not exist.
func (t *topic) itemsStream(ctx context.Context) (jetstream.Stream, error) {
	t.mu.Lock()
	s := t.items
	t.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := t.q.js.Stream(ctx, t.itemsName)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.items == nil {
		t.items = s
	}
	t.mu.Unlock()
	return s, nil
}

// forget drops the cached handles after the servers said a stream or
// consumer does not exist (deleted behind the queue's back): the next
// call looks them up again.
func (t *topic) forget(err error) {
	if !errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, jetstream.ErrConsumerNotFound) &&
		!errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) {
		return
	}
	t.mu.Lock()
	t.items, t.cons, t.dead, t.created = nil, nil, nil, false
	t.mu.Unlock()
}

// fileOverhead is what the file store adds to a message without headers
// (its record's length, sequence, time and hash); the memory store adds
// 16 bytes.
const fileOverhead = 30

// msgSize is what a message takes in a stream, as the servers count it.
func (q *Queue) msgSize(subject string, hdr, data int) int64 {
	if q.storage == jetstream.MemoryStorage {
		return int64(len(subject) + hdr + data + 16)
	}
	if hdr > 0 {
		hdr += 4
	}
	return int64(fileOverhead + len(subject) + hdr + data)
}

// reserve counts n more stored bytes against MaxBytes, or fails with
// queue.ErrFull.
func (q *Queue) reserve(n int64) error {
	for {
		used := q.used.Load()
		if q.maxBytes >= 0 && used+n > q.maxBytes {
			return fmt.Errorf("%w: the streams hold %d bytes + %d new would exceed max_bytes %d; consumers are not keeping up (a destination down?): retry later, or raise queue.jetstream.max_bytes",
				queue.ErrFull, used, n, q.maxBytes)
		}
		if q.used.CompareAndSwap(used, used+n) {
			return nil
		}
	}
}

// Append adds items, in order, at the end of the named topic, creating
// its stream when needed. When Append returns nil, every item is stored
// by the stream (on a quorum of its replicas). The items are copied.
//
// # Results
//
//   - An error wrapping queue.ErrFull when the items would take the
//     queue's streams over MaxBytes (as this handle last measured them,
//     plus its own writes since; nothing is stored), or when a server
//     refuses them for its own storage limits.
//   - queue.ErrClosed after Close; ctx's error when ctx is done first.
//   - Any other error of the servers (no stream leader during an
//     election, say). Items publish one by one: when one fails, those
//     before it are stored (an Append of one item, the server's, is all
//     or nothing).
func (q *Queue) Append(ctx context.Context, name queue.Topic, items ...[]byte) error {
	if q.closed.Load() {
		return queue.ErrClosed
	}
	if err := checkTopic(name); err != nil {
		return err
	}
	if len(items) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t := q.topic(name, true)
	var charge int64
	msgs := make([]*nats.Msg, len(items))
	for i, it := range items {
		if err := q.checkItem(it); err != nil {
			return fmt.Errorf("queue: append to %q: item %d: %w", name, i, err)
		}
		msgs[i] = &nats.Msg{Subject: t.subject, Data: it}
		q.compress(msgs[i])
		charge += q.pubSize(t.itemsName, msgs[i])
	}
	if err := q.reserve(charge); err != nil {
		return fmt.Errorf("queue: append to %q: %w", name, err)
	}
	if err := q.enter(); err != nil {
		q.used.Add(-charge)
		return err
	}
	defer q.leave()
	if err := q.publish(ctx, t, msgs); err != nil {
		q.used.Add(-charge)
		return q.wrapErr("append to "+string(name), err)
	}
	return nil
}

// checkItem checks an item's size.
func (q *Queue) checkItem(it []byte) error {
	if len(it) > queue.MaxItemLen {
		return fmt.Errorf("%d bytes, the most is %d", len(it), queue.MaxItemLen)
	}
	if max := q.nc.MaxPayload(); max > 0 && int64(len(it))+1024 > max {
		return fmt.Errorf("%d bytes, more than the NATS servers take (max_payload %d, less 1 KiB for headers)", len(it), max)
	}
	return nil
}

// publish publishes msgs to t's items stream, creating it when needed,
// and waits for every acknowledgement. A stream deleted behind the
// queue's back is created again once.
func (q *Queue) publish(ctx context.Context, t *topic, msgs []*nats.Msg) error {
	for try := 0; ; try++ {
		if _, err := t.ensureStream(ctx); err != nil {
			return err
		}
		stored, err := q.publishAll(ctx, msgs, t.itemsName)
		if err != nil && try == 0 && stored == 0 && (errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
			errors.Is(err, jetstream.ErrStreamNotFound)) {
			t.forget(err)
			continue
		}
		return err
	}
}

// publishAll publishes msgs and waits for every acknowledgement, within
// Timeout; stream, when set, is the stream they must land in. Several
// messages are published asynchronously, so that they share the round
// trips, and are stored in order: one connection carries them in order
// to the stream's leader. The client's retries after "no responders"
// (a stream without a leader for a moment) could reorder them, so here
// they are the caller's: a batch none of whose messages was stored is
// published again (twice at most, 250 ms apart); one that failed half
// way returns the error, the messages before the failure stored. It
// returns how many were stored, and the first error.
func (q *Queue) publishAll(ctx context.Context, msgs []*nats.Msg, stream string) (int, error) {
	ctx, cancel := q.opCtx(ctx)
	defer cancel()
	var opts []jetstream.PublishOpt
	if stream != "" {
		opts = append(opts, jetstream.WithExpectStream(stream))
	}
	if len(msgs) == 1 {
		if _, err := q.js.PublishMsg(ctx, msgs[0], opts...); err != nil {
			return 0, err
		}
		return 1, nil
	}
	opts = append(opts, jetstream.WithRetryAttempts(0))
	for try := 0; ; try++ {
		stored, err := q.publishAsync(ctx, msgs, opts)
		if err == nil || stored > 0 || try == 2 || !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, jetstream.ErrNoStreamResponse) {
			return stored, err
		}
		select {
		case <-time.After(jetstream.DefaultPubRetryWait):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// publishAsync publishes msgs asynchronously and waits for their
// acknowledgements; it returns how many of the first were stored, and the
// first error.
func (q *Queue) publishAsync(ctx context.Context, msgs []*nats.Msg, opts []jetstream.PublishOpt) (int, error) {
	futs := make([]jetstream.PubAckFuture, 0, len(msgs))
	var first error
	for _, m := range msgs {
		f, err := q.js.PublishMsgAsync(m, opts...)
		if err != nil {
			first = err
			break
		}
		futs = append(futs, f)
	}
	stored := 0
	for _, f := range futs {
		select {
		case <-f.Ok():
			if first == nil {
				stored++
			}
		case err := <-f.Err():
			if first == nil {
				first = err
			}
		case <-ctx.Done():
			return stored, ctx.Err()
		}
	}
	return stored, first
}

// Move is the hand-off of the pipeline: it publishes the items of to to
// their topics, then acknowledges done, items handed out by c. The
// streams are separate, so the step is not atomic as Pebble's is; what
// takes its place:
//
//   - The items to one topic are published as one message, a pack (see
//     pack.go; several past 65535 items or the servers' largest
//     message). Every message carries a message id derived from done
//     (the stream and Seq of each item) and from the message itself (its
//     topic, a hash of its data, and how many identical messages precede
//     it). When the acknowledgement is lost (a crash after the
//     publishes), done comes back after AckWait, the pipeline moves it
//     again, and each stream drops the messages whose ids it saw within
//     DuplicateWindow: the same outputs are not appended twice. A pack
//     one of whose items changed the second time (a function that is
//     not deterministic) gets a new id: appended again whole, never
//     lost (its other items then twice).
//   - When a publish fails, nothing is acknowledged: done stays in flight
//     (and is no longer kept alive, so it comes back after AckWait, to
//     be moved again), and the outputs already published are deduplicated
//     as above. Move returns the error.
//
// Move is not refused for space (queue's MaxBytes); only a server's own
// storage limits refuse it (an error wrapping queue.ErrFull).
func (q *Queue) Move(ctx context.Context, qc queue.Consumer, done []queue.Item, to map[queue.Topic][][]byte) error {
	c, ok := qc.(*consumer)
	if !ok || c.t.q != q {
		return fmt.Errorf("queue: move from %q: the consumer is of another queue", qc.Topic())
	}
	if c.err != nil {
		return c.err
	}
	if q.closed.Load() {
		return queue.ErrClosed
	}
	type dest struct {
		t     *topic
		items [][]byte
	}
	var dests []dest
	var charge int64
	for name, items := range to {
		if len(items) == 0 {
			continue
		}
		if err := checkTopic(name); err != nil {
			return fmt.Errorf("queue: move from %q: %w", c.t.topic, err)
		}
		t := q.topic(name, true)
		for i, it := range items {
			if err := q.checkItem(it); err != nil {
				return fmt.Errorf("queue: move from %q to %q: item %d: %w", c.t.topic, name, i, err)
			}
		}
		dests = append(dests, dest{t, items})
	}
	if len(done) == 0 && len(dests) == 0 {
		return nil
	}
	slices.SortFunc(dests, func(a, b dest) int { return strings.Compare(string(a.t.topic), string(b.t.topic)) })
	if err := q.enter(); err != nil {
		return err
	}
	defer q.leave()
	parts, err := c.claim(done)
	if err != nil {
		return err
	}
	ids := newMoveIDs(c.t.itemsName, done)
	for _, d := range dests {
		var msgs []*nats.Msg
		for _, chunk := range q.packs(d.items) {
			var m *nats.Msg
			if len(chunk) == 1 {
				m = &nats.Msg{Subject: d.t.subject, Data: chunk[0]}
			} else {
				entries := make([]entry, len(chunk))
				for i, it := range chunk {
					entries[i] = entry{data: it}
				}
				m = packMsg(d.t, entries)
			}
			if id := ids.next(d.t.topic, m.Data); id != "" {
				if m.Header == nil {
					m.Header = nats.Header{}
				}
				m.Header.Set(jetstream.MsgIDHeader, id)
			}
			q.compress(m)
			charge += q.pubSize(d.t.itemsName, m)
			msgs = append(msgs, m)
		}
		if err := q.publish(ctx, d.t, msgs); err != nil {
			c.unclaim(parts)
			return q.wrapErr(fmt.Sprintf("move from %q to %q", c.t.topic, d.t.topic), err)
		}
	}
	q.used.Add(charge)
	if q.beforeMoveAck != nil {
		if err := q.beforeMoveAck(); err != nil {
			c.unclaim(parts)
			return err
		}
	}
	if err := c.ackAll(ctx, c.finish(parts), parts); err != nil {
		return q.wrapErr(fmt.Sprintf("move from %q: acknowledge", c.t.topic), err)
	}
	return nil
}

// packs splits a Move's items to one topic into the packs it publishes:
// at most maxPack items each, and at most what the servers take in one
// message (less 1 KiB for headers).
func (q *Queue) packs(items [][]byte) [][][]byte {
	limit := 1 << 20
	if mp := q.nc.MaxPayload(); mp > 0 {
		limit = int(mp)
	}
	limit -= 1024
	var out [][][]byte
	start, size := 0, 0
	for i, it := range items {
		n := entryLen(entry{data: it})
		if i > start && (i-start >= maxPack || size+n > limit) {
			out = append(out, items[start:i])
			start, size = i, 0
		}
		size += n
	}
	return append(out, items[start:])
}

// Topics returns the topics that have a stream (items or dead letters),
// and those named in a call of this handle, sorted. Without an answer
// from the servers (within Timeout) it returns those this handle knows.
func (q *Queue) Topics() []queue.Topic {
	seen := make(map[queue.Topic]bool)
	for _, t := range q.topicList() {
		if t.named.Load() {
			seen[t.topic] = true
		}
	}
	if q.enter() == nil {
		ctx, cancel := q.opCtx(context.Background())
		infos, _ := q.listStreams(ctx)
		cancel()
		q.leave()
		for _, si := range infos {
			if topic, ok := topicOf(si); ok {
				seen[topic] = true
			}
		}
	}
	out := make([]queue.Topic, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Destinations returns the names of the destinations among Topics,
// sorted.
func (q *Queue) Destinations() []string {
	var out []string
	for _, t := range q.Topics() {
		if name, ok := t.Destination(); ok {
			out = append(out, name)
		}
	}
	return out
}

// listStreams returns the information of the queue's streams.
func (q *Queue) listStreams(ctx context.Context) ([]*jetstream.StreamInfo, error) {
	l := q.js.ListStreams(ctx, jetstream.WithStreamListSubject(q.prefix+".>"))
	var out []*jetstream.StreamInfo
	for si := range l.Info() {
		if strings.HasPrefix(si.Config.Name, q.prefix+"_") {
			out = append(out, si)
		}
	}
	return out, l.Err()
}

// topicOf returns the topic of one of the queue's items or dead-letter
// streams.
func topicOf(si *jetstream.StreamInfo) (queue.Topic, bool) {
	switch si.Config.Metadata[metaKind] {
	case kindItems, kindDead:
	default:
		return "", false
	}
	topic, err := unescapeTopic(si.Config.Metadata[metaTopic])
	if err != nil || topic == "" {
		return "", false
	}
	return topic, true
}

// Usage returns the bytes the queue's streams of items and dead letters
// hold, as the servers count them (data, subject, headers and about 30
// bytes a message), measured every second and counting this handle's
// writes since; and the bound (Options.MaxBytes; negative: none).
func (q *Queue) Usage() (used, limit int64) {
	return max(0, q.used.Load()), q.maxBytes
}

// usageEvery is how often each handle measures the streams' bytes.
const usageEvery = time.Second

// usageLoop measures the streams' bytes every usageEvery.
func (q *Queue) usageLoop() {
	defer q.wg.Done()
	tick := time.NewTicker(usageEvery)
	defer tick.Stop()
	for {
		select {
		case <-q.done:
			return
		case <-tick.C:
			q.refreshUsage(q.bg)
		}
	}
}

// refreshUsage measures the bytes of the queue's topic streams.
func (q *Queue) refreshUsage(ctx context.Context) {
	ctx, cancel := q.opCtx(ctx)
	defer cancel()
	infos, err := q.listStreams(ctx)
	if err != nil {
		return
	}
	var n int64
	for _, si := range infos {
		if _, ok := topicOf(si); ok {
			n += int64(si.State.Bytes)
		}
	}
	q.used.Store(n)
}

// The errors of the servers that mean "no room".
const (
	errCodeStoreFailed        = 10077 // "maximum bytes exceeded" and friends
	errCodeAccountResources   = 10002
	errCodeInsufficientRes    = 10023
	errCodeMemoryResources    = 10028
	errCodeStorageResources   = 10047
	errCodeNoMessageSizeLimit = 10054
)

// isFull reports whether err is a server's refusal for lack of room.
func isFull(err error) bool {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode {
	case errCodeAccountResources, errCodeInsufficientRes, errCodeMemoryResources, errCodeStorageResources:
		return true
	case errCodeStoreFailed:
		return strings.Contains(ae.Description, "maximum bytes") || strings.Contains(ae.Description, "maximum messages")
	}
	return false
}

// wrapErr turns an error of the servers into the queue's: ErrClosed after
// Close, ctx's errors as they are, ErrFull for a refusal for room.
func (q *Queue) wrapErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, queue.ErrClosed), errors.Is(err, queue.ErrNotInFlight), errors.Is(err, queue.ErrNotFound):
		return err
	case q.closed.Load() && (errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrJetStreamPublisherClosed)):
		return queue.ErrClosed
	case errors.Is(err, context.Canceled):
		return err
	case isFull(err):
		return fmt.Errorf("queue: %s: %w: %v", what, queue.ErrFull, err)
	}
	return fmt.Errorf("queue: %s: %w", what, err)
}
