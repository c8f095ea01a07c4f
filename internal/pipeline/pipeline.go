package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insertfn/insertfn/internal/delivery"
	"github.com/insertfn/insertfn/internal/logthrottle"
	"github.com/insertfn/insertfn/internal/pipeline/tap"
	"github.com/insertfn/insertfn/internal/queue"
)

// Options tune a [Pipeline]. The zero value is usable.
type Options struct {
	// Settings are the delivery section of the configuration file, the
	// one type from the file to here: Workers (goroutines processing the
	// inbox, 0: 8; they spend much of their time waiting for the queue's
	// fsync, so more workers than CPUs pay), BatchSize (the most events one
	// delivery carries, and how many inbox items a worker takes at once;
	// 0: DefaultBatchSize), BatchBytes (the bytes of such a batch; a single
	// larger event goes alone; 0: DefaultBatchBytes, so that a batch
	// delivered to a webhook is a body Segment's API and insertfn's own
	// /v1/batch take), ThrottleBytes (the backlog above which Accept waits
	// for it to drain; 0: DefaultThrottleBytes, negative: never; see
	// throttle.go), ThrottleWait (the longest Accept waits so; 0:
	// DefaultThrottleWait) and Backoff (the retry policy of deliveries, and
	// of events whose processing must wait: the consent store down).
	delivery.Settings
	// DeliveryWorkers is how many batches each destination may have in
	// flight at once (0: 4).
	DeliveryWorkers int
	// Logger receives failures; nil: slog.Default().
	Logger *slog.Logger
	// Tap, when set, is told what became of events (the live event
	// debugger): after an inbox item is handed to the destinations'
	// backlogs, a record per event that the tap wants (see [tap.Tap.Want]),
	// and one per delivery, retry and dead letter.
	Tap *tap.Tap
}

// Defaults of [Options].
const (
	// DefaultBatchSize is the default of Options.BatchSize: with 1 KB
	// events, a batch meets the bound of DefaultBatchBytes first. Fewer
	// and larger deliveries are what keeps a destination's backlog from
	// growing while ingest is busy (a batch of 100 let the backlog grow
	// by ~12k events a second in BenchmarkServeBatch, one of 500 did not).
	DefaultBatchSize = 500
	// DefaultBatchBytes is the default of Options.BatchBytes: 500 KB less
	// 1 KB, so that a webhook batch with its {"batch":[...]} framing stays
	// within Segment's 500 KB (the bound counts each queued item's source
	// header, which outweighs its comma, but not the framing).
	DefaultBatchBytes = 500<<10 - 1<<10
)

// Pipeline moves events from the durable queue through a [Processor] to
// each destination's backlog, and from each backlog to its [delivery.Sink].
// Events enter through [Pipeline.Accept]: an event is accepted once it is
// in the queue's inbox. The pipeline knows nothing of where events come
// from; the composition root (internal/app) hands Accept to the ingest
// server, mapping [ErrFull] to the server's backpressure error.
//
// An event leaves the inbox in the same transaction that puts its outputs
// into the destinations' backlogs, and leaves a backlog only once its sink
// has it, so a crash at any point redelivers what was not yet delivered
// (at least once; receivers deduplicate by messageId).
type Pipeline struct {
	q     queue.Queue
	proc  *Processor
	sinks []delivery.Sink // by destination index
	opts  Options
	log   *slog.Logger
	noisy *logthrottle.Throttle // problems that repeat per event or batch
	flows *Overview
	// encoders serve Accept, called by many request handlers at once.
	encoders sync.Pool
	throttle throttle
	// destTopics are the destinations' queue topics, and down says per
	// destination whether its last delivery failed.
	destTopics []queue.Topic
	down       []atomic.Bool
}

// ErrFull is the error (wrapped) [Pipeline.Accept] returns when the
// queue's disk bound is reached: the events were not taken, and the caller
// should have its client retry later (the ingest answers 503 with
// Retry-After). It passes once the pipeline delivers the backlog; if it
// persists, a destination is down or queue.max_bytes is too small.
var ErrFull = errors.New("pipeline: the queue is full (queue.max_bytes reached); retry later")

// New returns a pipeline over q. sinks holds one sink per destination of
// proc, in the same order; the pipeline does not close them.
func New(q queue.Queue, proc *Processor, sinks []delivery.Sink, opts Options) (*Pipeline, error) {
	if len(sinks) != len(proc.Destinations()) {
		return nil, fmt.Errorf("pipeline: %d sinks for %d destinations", len(sinks), len(proc.Destinations()))
	}
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.DeliveryWorkers <= 0 {
		opts.DeliveryWorkers = 4
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = DefaultBatchBytes
	}
	if opts.ThrottleBytes == 0 {
		opts.ThrottleBytes = DefaultThrottleBytes
	}
	if opts.ThrottleWait < 0 {
		return nil, fmt.Errorf("pipeline: a negative ThrottleWait %v", opts.ThrottleWait)
	}
	if opts.ThrottleWait == 0 {
		opts.ThrottleWait = DefaultThrottleWait
	}
	if err := opts.Backoff.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline: delivery backoff: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &Pipeline{q: q, proc: proc, sinks: sinks, opts: opts, log: log, noisy: logthrottle.New(log, 10*time.Second),
		flows: NewOverview(0), encoders: sync.Pool{New: func() any { return new(encoder) }},
		throttle: throttle{limit: opts.ThrottleBytes, wait: opts.ThrottleWait, waits: &proc.Counters().throttled},
		down:     make([]atomic.Bool, len(sinks))}
	for _, d := range proc.Destinations() {
		p.destTopics = append(p.destTopics, queue.DestinationTopic(d.Name))
	}
	return p, nil
}

// Overview returns the per-source, per-minute account of what became of
// events.
func (p *Pipeline) Overview() *Overview { return p.flows }

// Accept puts the events of one request into the inbox, durably (per the
// queue's sync policy) before it returns, as one inbox item (see
// [queue.AppendRequestItem]). While the pipeline is behind (see
// Options.ThrottleBytes) it first waits, up to Options.ThrottleWait, for
// it to catch up. A full queue is reported as an error wrapping [ErrFull]
// (and the queue's [queue.ErrFull]).
//
// Consent first: once the request is queued, its consent-preference
// events update the consent store before Accept returns, so that a request
// the client sends after this one's 200 is checked against them, whichever
// of the pipeline's workers gets to it first. The pipeline applies them
// again in their place among the request's events: the store keeps each
// person's latest decision by its timestamp, so that ends where this did
// (decisions with equal timestamps excepted: the last applied wins), and
// it is the application that is counted and that waits and retries when
// the store cannot take an update here. Accept spends at most
// earlyConsentBudget on them and stops at the first failure.
func (p *Pipeline) Accept(ctx context.Context, source string, events [][]byte) error {
	if len(events) == 0 {
		return nil
	}
	if err := p.throttle.await(ctx); err != nil {
		return err
	}
	enc := p.encoders.Get().(*encoder)
	defer p.encoders.Put(enc)
	enc.reset()
	var item []byte
	if len(events) == 1 {
		item = enc.item(source, events[0])
	} else {
		item = enc.request(source, events)
	}
	err := p.q.Append(ctx, queue.InboxTopic, item)
	if errors.Is(err, queue.ErrFull) {
		return fmt.Errorf("%w (%w)", ErrFull, err)
	}
	if err != nil {
		return err
	}
	p.updateConsentEarly(ctx, source, events)
	return nil
}

// earlyConsentBudget bounds the time Accept spends on a request's consent
// updates (a batch may hold many, and the store may be slow or down): the
// rest wait for the pipeline.
const earlyConsentBudget = time.Second

// updateConsentEarly applies the consent-preference events among events to
// the store (see Accept), until the first failure or the budget's end.
func (p *Pipeline) updateConsentEarly(ctx context.Context, source string, events [][]byte) {
	var cancel context.CancelFunc
	for _, ev := range events {
		u, ok := p.proc.consentUpdate(ev)
		if !ok {
			continue
		}
		if cancel == nil {
			ctx, cancel = context.WithTimeout(ctx, earlyConsentBudget)
			defer cancel()
		}
		if _, err := p.proc.store.Update(ctx, u); err != nil {
			p.noisy.Log(slog.LevelWarn, "early-consent", "pipeline: consent updates could not be applied on arrival; they will be when their request is processed", "source", source, "err", err)
			return
		}
	}
}

// Run processes and delivers until ctx is done, then lets work in hand
// finish (a delivery under way is bounded by its sink's timeout) and
// returns. Whatever was not finished stays in the queue for the next Run.
func (p *Pipeline) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { p.pace(ctx) })
	inbox := p.q.Consumer(queue.InboxTopic)
	for range p.opts.Workers {
		wg.Go(func() { p.process(ctx, inbox) })
	}
	for i, topic := range p.destTopics {
		c := p.q.Consumer(topic)
		for range p.opts.DeliveryWorkers {
			wg.Go(func() { p.deliver(ctx, i, c) })
		}
	}
	wg.Wait()
	return nil
}

// process takes batches from the inbox until ctx is done.
func (p *Pipeline) process(ctx context.Context, inbox queue.Consumer) {
	var res Result
	var enc encoder
	var events [][]byte      // the events of the item at hand
	var marks []int          // per destination, its outputs before the item at hand
	var traces []*tap.Record // the live debugger's records of the batch
	source := ""
	dests := p.proc.Destinations()
	for {
		items, err := inbox.Next(ctx, p.opts.BatchSize, p.opts.BatchBytes)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, queue.ErrClosed) {
				p.log.Error("pipeline: reading the inbox", "err", err)
			}
			return
		}
		// Work on a context that outlives a shutdown request, so a batch
		// taken is finished and handed over.
		work := context.WithoutCancel(ctx)
		enc.reset() // Move below copies the items: the buffer is free again
		to := make(map[queue.Topic][][]byte, len(dests))
		done := items[:0:0]
		flows, itemFlows := make(flowBatch), make(flowBatch)
		now := time.Now()
		for _, it := range items {
			var err error
			source, events, err = queue.DecodeInboxItem(it.Data, source, events[:0])
			if err != nil {
				p.log.Error("pipeline: unreadable inbox item; moved to the dead letters (insertfn dead list --inbox)", "seq", it.Seq, "err", err)
				_ = inbox.Dead(work, it, err.Error())
				continue
			}
			// An item's events leave the inbox together: when one must
			// wait, the whole item is retried, and what its other events
			// gave is taken back (they are processed again: at least once).
			marks = marks[:0]
			for _, t := range p.destTopics {
				marks = append(marks, len(to[t]))
			}
			traced := len(traces)
			if err := p.processItem(work, now, source, events, &res, &enc, to, itemFlows, &traces); err != nil {
				for i, t := range p.destTopics {
					if marks[i] < len(to[t]) {
						to[t] = to[t][:marks[i]]
					}
				}
				clear(itemFlows)
				clear(traces[traced:])
				traces = traces[:traced]
				delay := p.opts.Backoff.Delay(it.Attempts+1, nil)
				p.noisy.Log(slog.LevelWarn, "wait", "pipeline: events must wait (retried with backoff)", "seq", it.Seq, "events", len(events), "retry_in", delay, "err", err)
				_ = inbox.Retry(work, it, time.Now().Add(delay))
				continue
			}
			flows.merge(itemFlows)
			clear(itemFlows)
			done = append(done, it)
		}
		if len(done) == 0 {
			continue
		}
		err = p.q.Move(work, inbox, done, to)
		if err != nil {
			// Not moved: the items stay in the inbox and are processed
			// again after a restart (at least once).
			p.log.Error("pipeline: handing events to the destinations' backlogs", "events", len(done), "err", err)
		} else {
			p.proc.count(flows)
			p.flows.add(flows) // takes flows' counts: count first
			for _, r := range traces {
				p.opts.Tap.Publish(r)
			}
		}
		clear(traces)
		traces = traces[:0]
	}
}

// processItem processes the events of one inbox item, adding their outputs
// to to and their counts to flows. It stops at the first event that must
// wait, and returns its error; the events are counted (Processor.count)
// only once the item is handed over.
func (p *Pipeline) processItem(ctx context.Context, now time.Time, source string, events [][]byte, res *Result, enc *encoder, to map[queue.Topic][][]byte, flows flowBatch, traces *[]*tap.Record) error {
	fc := flows.source(source)
	sec := now.Unix()
	for _, ev := range events {
		if err := p.proc.run(ctx, source, ev, res); err != nil {
			return err
		}
		typ := eventType(ev)
		p.proc.record(fc, typ, res)
		if p.opts.Tap != nil {
			if k := p.opts.Tap.Want(sec, source, typ.String(), ev); k.OK() {
				*traces = append(*traces, p.proc.trace(now, source, ev, typ, res, k))
			}
		}
		for i, out := range res.Outputs {
			if out != nil {
				t := p.destTopics[i]
				to[t] = append(to[t], enc.item(source, out))
			}
		}
	}
	return nil
}

// deliver takes batches from one destination's backlog to its sink until
// ctx is done.
func (p *Pipeline) deliver(ctx context.Context, dest int, c queue.Consumer) {
	name := p.proc.Destinations()[dest].Name
	var events [][]byte
	var sources []string
	for {
		items, err := c.Next(ctx, p.opts.BatchSize, p.opts.BatchBytes)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, queue.ErrClosed) {
				p.log.Error("pipeline: reading a destination's backlog", "destination", name, "err", err)
			}
			return
		}
		work := context.WithoutCancel(ctx)
		events, sources = events[:0], sources[:0]
		source := ""
		for _, it := range items {
			var ev []byte
			var derr error
			source, ev, derr = queue.DecodeEventItem(it.Data, source)
			if derr != nil {
				source, ev = "", it.Data // not ours: deliver as it is
			}
			events = append(events, ev)
			sources = append(sources, source)
		}
		p.send(work, dest, c, items, events, sources)
	}
}

// send delivers one batch of a destination's backlog (events and sources
// are items' decoded) and settles each item: acknowledged once delivered,
// retried later when the failure may pass, dead-lettered when it cannot.
//
// A permanent refusal of content (delivery.Rejected: a 400, 413 or 422, or
// an event the sink cannot write) is narrowed down before anything is
// dead-lettered: the events a sink reports delivered are acknowledged; the
// one event a failure is about (delivery.Error.Event) goes to the dead
// letters alone and the others are sent again; and a request of several
// events is sent again in halves until the events refused are alone. One
// bad event costs about 2·log2(n) more requests; the extra requests of a
// batch are bounded by narrowBudget, past which what is refused is
// dead-lettered whole (a destination that refuses everything costs a few
// dozen requests per batch, not 2n). A failure that may pass stops the
// batch: what was not sent yet waits for its retry with the rest.
func (p *Pipeline) send(ctx context.Context, dest int, c queue.Consumer, items []queue.Item, events [][]byte, sources []string) {
	sink := p.sinks[dest]
	type span struct{ lo, hi int }
	pending := []span{{0, len(items)}}
	budget := narrowBudget(len(items))
	for len(pending) > 0 {
		s := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		if s.lo >= s.hi {
			continue
		}
		err := sink.Deliver(ctx, events[s.lo:s.hi])
		p.down[dest].Store(err != nil)
		if err == nil {
			p.delivered(ctx, dest, c, items[s.lo:s.hi], events[s.lo:s.hi], sources[s.lo:s.hi])
			continue
		}
		done, bad := s.lo, -1 // bad: the one event the failure is about
		var de *delivery.Error
		if errors.As(err, &de) {
			done = min(s.lo+max(de.Delivered, 0), s.hi)
			if de.Event > 0 {
				bad = s.lo + de.Event - 1
			}
		}
		p.delivered(ctx, dest, c, items[s.lo:done], events[s.lo:done], sources[s.lo:done])
		narrow := delivery.Rejected(err) && budget > 0
		switch {
		case done == s.hi:
		case narrow && bad >= done && bad < s.hi:
			p.failed(ctx, dest, c, items[bad:bad+1], events[bad:bad+1], sources[bad:bad+1], err)
			pending = append(pending, span{bad + 1, s.hi}, span{done, bad}) // the earlier events first
			budget--
		case narrow && s.hi-done > 1:
			mid := done + (s.hi-done)/2
			pending = append(pending, span{mid, s.hi}, span{done, mid})
			budget -= 2
		case !delivery.Retryable(err): // for good: to the dead letters
			p.failed(ctx, dest, c, items[done:s.hi], events[done:s.hi], sources[done:s.hi], err)
		default: // may pass: retry this span and every one not sent yet
			p.failed(ctx, dest, c, items[done:s.hi], events[done:s.hi], sources[done:s.hi], err)
			for _, r := range pending {
				p.failed(ctx, dest, c, items[r.lo:r.hi], events[r.lo:r.hi], sources[r.lo:r.hi], err)
			}
			pending = pending[:0]
		}
	}
}

// narrowBudget is how many more requests send may make to find the events
// a destination refuses in a batch of n: enough to single out about four
// bad events by halving.
func narrowBudget(n int) int { return 8 * bits.Len(uint(n)) }

// delivered acknowledges items delivered to destination dest and counts
// them.
func (p *Pipeline) delivered(ctx context.Context, dest int, c queue.Consumer, items []queue.Item, events [][]byte, sources []string) {
	if len(items) == 0 {
		return
	}
	defer p.traceDeliveries(dest, items, events, sources, tap.Delivered, nil)
	name := p.proc.Destinations()[dest].Name
	if err := c.Ack(ctx, items...); err != nil {
		p.log.Error("pipeline: acknowledging a delivery; it will be delivered again", "destination", name, "err", err)
	}
	p.proc.Counters().Delivered(name, len(items))
	flows := make(flowBatch)
	for _, s := range sources {
		flows.source(s).dest(name).delivered++
	}
	p.flows.add(flows)
}

// failed settles items whose delivery to destination dest failed with err:
// each is retried with backoff while the backoff allows and err may pass,
// else moved to the dead letters.
func (p *Pipeline) failed(ctx context.Context, dest int, c queue.Consumer, items []queue.Item, events [][]byte, sources []string, err error) {
	if len(items) == 0 {
		return
	}
	defer p.traceDeliveries(dest, items, events, sources, "", err)
	name, counters := p.proc.Destinations()[dest].Name, p.proc.Counters()
	failed := make(flowBatch)
	retried := 0
	for i, it := range items {
		attempts := it.Attempts + 1
		if !p.opts.Backoff.ShouldRetry(attempts, err) {
			failed.source(sources[i]).dest(name).failed++
			p.noisy.Log(slog.LevelError, "dead:"+name, "pipeline: delivery failed for good; events moved to the dead letters (insertfn dead list)", "destination", name, "seq", it.Seq, "attempts", attempts, "err", err)
			_ = c.Dead(ctx, it, err.Error())
			counters.Failed(name, 1)
			continue
		}
		_ = c.Retry(ctx, it, time.Now().Add(p.opts.Backoff.Next(attempts, err, nil)))
		counters.Retried(name, 1)
		retried++
	}
	p.flows.add(failed)
	if retried > 0 {
		p.noisy.Log(slog.LevelWarn, "retry:"+name, "pipeline: delivery failed; retrying with backoff", "destination", name, "events", retried, "err", err)
	}
}

// traceDeliveries tells the tap (when there is one) about the delivery of
// items (events and sources are theirs) to destination dest: fate, or,
// when err is not nil, Retried or Failed as the backoff decides (as failed
// did).
func (p *Pipeline) traceDeliveries(dest int, items []queue.Item, events [][]byte, sources []string, fate tap.Fate, err error) {
	t := p.opts.Tap
	if t == nil {
		return
	}
	now := time.Now()
	sec := now.Unix()
	name := p.proc.Destinations()[dest].Name
	for i, it := range items {
		typ := eventType(events[i])
		k := t.Want(sec, sources[i], typ.String(), events[i])
		if !k.OK() {
			continue
		}
		r := &tap.Record{Time: now, Stage: tap.StageDelivery, Source: sources[i], Type: typ.String(),
			Fate: fate, Destination: name, Attempt: it.Attempts + 1, Ticket: k}
		r.ReadEvent(events[i], k.Full())
		if err != nil {
			r.Fate, r.Error = tap.Failed, err.Error()
			if p.opts.Backoff.ShouldRetry(it.Attempts+1, err) {
				r.Fate = tap.Retried
			}
		}
		t.Publish(r)
	}
}

// encoder encodes items into chunks it reuses after reset: the queue
// copies what it is given, so a batch's items need not outlive the call
// that hands them over.
type encoder struct {
	chunks [][]byte // chunks[:n] hold items since reset
	n      int
}

// encoderChunk is the size of an encoder's chunks (an item larger gets a
// chunk of its own size).
const encoderChunk = 256 << 10

// item returns the event encoded as an event item (see
// [queue.AppendEventItem]), valid until reset.
func (e *encoder) item(source string, event []byte) []byte {
	c := e.chunk(queue.EventItemLen(source, event))
	start := len(c)
	return e.took(queue.AppendEventItem(c, source, event), start)
}

// request returns the events encoded as one request item (see
// [queue.AppendRequestItem]), valid until reset.
func (e *encoder) request(source string, events [][]byte) []byte {
	c := e.chunk(queue.RequestItemMaxLen(source, events))
	start := len(c)
	return e.took(queue.AppendRequestItem(c, source, events), start)
}

// chunk returns the chunk to append an item of at most size bytes to.
func (e *encoder) chunk(size int) []byte {
	if e.n == 0 || cap(e.chunks[e.n-1])-len(e.chunks[e.n-1]) < size {
		if e.n == len(e.chunks) || cap(e.chunks[e.n]) < size {
			c := make([]byte, 0, max(encoderChunk, size))
			if e.n == len(e.chunks) {
				e.chunks = append(e.chunks, c)
			} else {
				e.chunks[e.n] = c
			}
		}
		e.n++
	}
	return e.chunks[e.n-1]
}

// took keeps c, the chunk chunk returned with an item appended from
// start, and returns the item.
func (e *encoder) took(c []byte, start int) []byte {
	e.chunks[e.n-1] = c
	return c[start:len(c):len(c)]
}

// reset makes the chunks free for new items.
func (e *encoder) reset() {
	for i := range e.n {
		e.chunks[i] = e.chunks[i][:0]
	}
	e.n = 0
}
