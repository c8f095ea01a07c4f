package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/insertfn/insertfn/internal/queue"
)

// Stats and host reports. A stream counts the messages it holds, and its
// consumer those delivered and not acknowledged, but not which of those a
// live host works on, which wait for a Retry's time, and which a host
// gave back (or left behind when it died) and are ready for the next
// pull. Each handle says so itself: it publishes a report of what it
// holds per topic (items in flight, and items retried for later with
// their times) to the subject P.hosts.<handle> of the stream P_HOSTS,
// whose messages expire (a per-message TTL): the counts in flight hold
// until the report's live time (three keep-alive periods, renewed every
// period and soon after a change), the retries until their times, so a
// handle that closed or died keeps counting its retries as Retrying and
// no longer its items as in flight. Stats reads them all (every 100 ms
// at most) and counts:
//
//	InFlight = items the live handles hold (handed out, not settled)
//	Retrying = items retried for a time still to come
//	Ready    = the items of the stream's messages (a pack's subject
//	           names its count: see pack.go) less those two, and less
//	           the items already settled in the packs the live handles
//	           hold (reported as Done)
//	Dead     = the messages of the dead-letter stream
//
// The byte counts of InFlight and Retrying are the items' data; those
// of Ready and Dead are what the streams count (their overhead
// included), Ready's in proportion to its items. Approximate: the items
// a handle fetched and has not handed out yet count as Ready; a retried
// item whose host died counts as Ready until its time; and while a host
// that died holds a pack, its items count as Ready before AckWait ends.

// hostReport is a handle's report.
type hostReport struct {
	// Live is when the counts in flight stop holding (Unix ms).
	Live   int64                  `json:"live"`
	Topics map[string]topicReport `json:"topics"` // by escaped topic
}

// topicReport is what a handle holds of one topic.
type topicReport struct {
	Held      int   `json:"held,omitempty"`
	HeldBytes int64 `json:"held_bytes,omitempty"`
	// Done is the items settled in messages held and not yet
	// acknowledged (a pack some of whose items are still held).
	Done int `json:"done,omitempty"`
	// Waits are the items retried for later: [time (Unix ms), count,
	// bytes], by time.
	Waits [][3]int64 `json:"waits,omitempty"`
}

// reports publishes this handle's report and reads the others'.
type reports struct {
	q       *Queue
	subject string
	kick    chan struct{} // a change to report

	mu        sync.Mutex
	stream    jetstream.Stream // nil until created or found
	published bool             // the last report published was not empty
	others    []hostReport     // the other handles' reports
	readAt    time.Time
}

const (
	// reportsRead is how long Stats uses the reports it read.
	reportsRead = 100 * time.Millisecond
	// reportGap is the least time between two reports of a handle.
	reportGap = 100 * time.Millisecond
)

func (r *reports) init(q *Queue) {
	r.q = q
	r.subject = q.prefix + ".hosts." + q.host
	r.kick = make(chan struct{}, 1)
}

// dirty asks for a report soon.
func (r *reports) dirty() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// hostsStream returns the stream of reports, creating it when create is
// set; nil when it does not exist and create is not set.
func (r *reports) hostsStream(ctx context.Context, create bool) (jetstream.Stream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream != nil {
		return r.stream, nil
	}
	q := r.q
	name := q.prefix + "_HOSTS"
	var s jetstream.Stream
	var err error
	if create {
		cfg := q.streamConfig(name, "hosts", nil, q.prefix+".hosts.*")
		cfg.Description = "insertfn queue: what each host holds, for Stats"
		cfg.MaxMsgsPerSubject = 1
		cfg.Discard = jetstream.DiscardOld
		cfg.AllowMsgTTL = true
		cfg.Duplicates = 0
		s, err = q.createStream(ctx, cfg)
	} else {
		s, err = q.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, nil
		}
	}
	if err != nil {
		return nil, err
	}
	r.stream = s
	return s, nil
}

// keepAlivePeriod is how often a handle keeps its items alive and
// renews its report.
func (q *Queue) keepAlivePeriod() time.Duration { return max(q.ackWait/3, 20*time.Millisecond) }

// reportLoop publishes this handle's report every keep-alive period,
// and soon after a change.
func (q *Queue) reportLoop() {
	defer q.wg.Done()
	tick := time.NewTicker(q.keepAlivePeriod())
	defer tick.Stop()
	for {
		select {
		case <-q.done:
			return
		case <-tick.C:
		case <-q.reports.kick:
		}
		q.reports.publish(q.bg, q.localReport(time.Now(), true))
		select {
		case <-q.done:
			return
		case <-time.After(reportGap):
		}
	}
}

// localReport returns what this handle holds; with live unset, as it
// closes (nothing in flight).
func (q *Queue) localReport(now time.Time, live bool) hostReport {
	rep := hostReport{Topics: make(map[string]topicReport)}
	if live {
		rep.Live = now.Add(3 * q.keepAlivePeriod()).UnixMilli()
	}
	for _, t := range q.topicList() {
		c := t.consumerIfAny()
		if c == nil {
			continue
		}
		var tr topicReport
		waits := make(map[int64][2]int64)
		c.mu.Lock()
		if live {
			tr.Held, tr.HeldBytes, tr.Done = c.heldCounts()
		}
		for _, w := range c.retrying {
			if w.at.After(now) {
				ms := w.at.UnixMilli()
				cur := waits[ms]
				waits[ms] = [2]int64{cur[0] + 1, cur[1] + int64(w.size)}
			}
		}
		c.mu.Unlock()
		for at, w := range waits {
			tr.Waits = append(tr.Waits, [3]int64{at, w[0], w[1]})
		}
		if tr.Held > 0 || len(tr.Waits) > 0 {
			rep.Topics[t.escaped] = tr
		}
	}
	return rep
}

// ttl is how long the servers keep a report: until its live time or its
// last retry time, whichever is later.
func (rep *hostReport) ttl(now time.Time) time.Duration {
	until := rep.Live
	for _, tr := range rep.Topics {
		for _, w := range tr.Waits {
			until = max(until, w[0])
		}
	}
	return max(time.Second, time.UnixMilli(until).Sub(now)+time.Second).Round(time.Second)
}

// publish publishes rep (an empty one only after one that was not).
func (r *reports) publish(ctx context.Context, rep hostReport) error {
	empty := len(rep.Topics) == 0
	r.mu.Lock()
	was := r.published
	r.mu.Unlock()
	if empty && !was {
		return nil
	}
	q := r.q
	ctx, cancel := q.opCtx(ctx)
	defer cancel()
	s, err := r.hostsStream(ctx, !empty)
	if err != nil || s == nil {
		return err
	}
	if empty {
		err = s.Purge(ctx, jetstream.WithPurgeSubject(r.subject))
	} else {
		data, _ := json.Marshal(rep)
		_, err = q.js.PublishMsg(ctx, &nats.Msg{Subject: r.subject, Data: data},
			jetstream.WithMsgTTL(rep.ttl(time.Now())), jetstream.WithExpectStream(q.prefix+"_HOSTS"))
	}
	if err == nil {
		r.mu.Lock()
		r.published = !empty
		r.mu.Unlock()
	}
	return err
}

// final publishes the report of a handle that closes: its retries only.
func (r *reports) final(ctx context.Context) error {
	return r.publish(ctx, r.q.localReport(time.Now(), false))
}

// read returns the other handles' reports, read at most reportsRead ago.
func (r *reports) read(ctx context.Context) ([]hostReport, error) {
	r.mu.Lock()
	if time.Since(r.readAt) < reportsRead {
		defer r.mu.Unlock()
		return r.others, nil
	}
	r.mu.Unlock()
	s, err := r.hostsStream(ctx, false)
	if err != nil || s == nil {
		return nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(r.q.prefix+".hosts.*"))
	if err != nil {
		return nil, err
	}
	var subjects []string
	for subj, n := range info.State.Subjects {
		if n > 0 && subj != r.subject {
			subjects = append(subjects, subj)
		}
	}
	out := make([]hostReport, len(subjects))
	err = parallel(len(subjects), func(i int) error {
		m, err := s.GetLastMsgForSubject(ctx, subjects[i])
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil // expired meanwhile
		}
		if err != nil {
			return err
		}
		return json.Unmarshal(m.Data, &out[i])
	})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.others, r.readAt = out, time.Now()
	r.mu.Unlock()
	return out, nil
}

// statsCache is the servers' part of a topic's Stats, read at most
// reportsRead ago.
type statsCache struct {
	mu        sync.Mutex
	at        time.Time
	items     uint64 // items in the stream's messages (see readStats)
	bytes     uint64
	dead      uint64
	deadBytes uint64
	found     bool
}

// Stats returns the counts of the named topic (see the comment above
// hostReport for how they are counted in a cluster), or an error
// wrapping queue.ErrNotFound for a topic that does not exist.
func (q *Queue) Stats(name queue.Topic) (queue.Stats, error) {
	if q.closed.Load() {
		return queue.Stats{}, queue.ErrClosed
	}
	if checkTopic(name) != nil {
		return queue.Stats{}, fmt.Errorf("%w: topic %q", queue.ErrNotFound, name)
	}
	if err := q.enter(); err != nil {
		return queue.Stats{}, err
	}
	defer q.leave()
	ctx, cancel := q.opCtx(context.Background())
	defer cancel()
	t := q.topic(name, false)
	sc := &t.stats
	sc.mu.Lock()
	if time.Since(sc.at) >= reportsRead {
		if err := q.readStats(ctx, t, sc); err != nil {
			sc.mu.Unlock()
			return queue.Stats{}, q.wrapErr("stats of "+string(name), err)
		}
		sc.at = time.Now()
	}
	items, bytes, dead, deadBytes, found := sc.items, sc.bytes, sc.dead, sc.deadBytes, sc.found
	sc.mu.Unlock()
	if !found && !t.named.Load() {
		return queue.Stats{}, fmt.Errorf("%w: topic %q", queue.ErrNotFound, name)
	}
	others, err := q.reports.read(ctx)
	if err != nil {
		return queue.Stats{}, q.wrapErr("stats of "+string(name), err)
	}
	now := time.Now()
	var s queue.Stats
	done := 0 // items settled in messages not yet acknowledged
	count := func(rep hostReport) {
		tr, ok := rep.Topics[t.escaped]
		if !ok {
			return
		}
		if rep.Live > now.UnixMilli() {
			s.InFlight += tr.Held
			s.InFlightBytes += tr.HeldBytes
			done += tr.Done
		}
		for _, w := range tr.Waits {
			if w[0] > now.UnixMilli() {
				s.Retrying += int(w[1])
				s.RetryingBytes += w[2]
			}
		}
	}
	for _, rep := range others {
		count(rep)
	}
	if c := t.consumerIfAny(); c != nil {
		c.mu.Lock()
		held, heldBytes, doneHere := c.heldCounts()
		s.InFlight += held
		s.InFlightBytes += heldBytes
		done += doneHere
		for _, w := range c.retrying {
			if w.at.After(now) {
				s.Retrying++
				s.RetryingBytes += int64(w.size)
			}
		}
		c.mu.Unlock()
	}
	s.Ready = max(0, int(items)-s.InFlight-s.Retrying-done)
	if items > 0 {
		s.ReadyBytes = int64(bytes) * int64(s.Ready) / int64(items)
	}
	s.Dead, s.DeadBytes = int(dead), int64(deadBytes)
	return s, nil
}

// readStats reads the counts of t's streams.
func (q *Queue) readStats(ctx context.Context, t *topic, sc *statsCache) error {
	sc.items, sc.bytes, sc.dead, sc.deadBytes, sc.found = 0, 0, 0, 0, false
	if s, err := t.itemsStream(ctx); err == nil {
		// The packs' subjects name their counts of items (pack.go).
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(t.subject+".*"))
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		if err != nil {
			t.forget(err)
		} else {
			sc.items, sc.bytes, sc.found = info.State.Msgs, info.State.Bytes, true
			for subj, n := range info.State.Subjects {
				if k, err := strconv.ParseUint(subj[strings.LastIndexByte(subj, '.')+1:], 10, 64); err == nil && k > 1 {
					sc.items += (k - 1) * n
				}
			}
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	if s, err := t.deadStream(ctx, false); err == nil {
		info, err := s.Info(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		if err != nil {
			t.forget(err)
		} else {
			sc.dead, sc.deadBytes, sc.found = info.State.Msgs, info.State.Bytes, true
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	return nil
}

// heldCounts returns the items in flight here and their bytes, and the
// items settled in messages held here.
func (c *consumer) heldCounts() (held int, heldBytes int64, done int) {
	for _, f := range c.held {
		for _, p := range f.parts {
			switch p.state {
			case partInFlight, partSettling:
				held++
				heldBytes += int64(len(p.data))
			case partSettled:
				done++
			}
		}
	}
	return held, heldBytes, done
}
