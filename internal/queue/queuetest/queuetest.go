// Package queuetest is the conformance suite of [queue.Queue]: the
// executable form of the contract that the pipeline, the admin API, the
// metrics and insertfn dead rely on, which every implementation must pass
// (the Pebble queue of one host, the JetStream queue of a cluster).
//
// A backend's test runs it with the functions that open its queues:
//
//	func TestConformance(t *testing.T) {
//		queuetest.Run(t, queuetest.Backend{
//			Open:   func(t testing.TB, maxBytes int64) queue.Queue { ... },
//			Reopen: func(t testing.TB, q queue.Queue) queue.Queue { ... },
//		})
//	}
//
// The suite is black-box: it uses the [queue.Queue] and [queue.Consumer]
// interfaces only. Its cases assert what the doc comments of
// [queue.Pebble]'s methods promise, except where a promise is one only a
// single store can keep; there it asserts what a replicated stream can
// also promise, and says so in a comment (look for "replicated"):
//
//   - Sequence numbers ascend in append order; they need not be
//     contiguous (a stream may share its numbers between topics).
//   - Next hands out up to maxItems items: it may hand out fewer than are
//     ready (a pull from a stream returns what arrived), so the suite
//     checks each call's bounds and the order over calls, not how a call
//     fills its batch.
//   - Stats' counts are exact once the queue has settled, which the
//     suite waits for (a replicated backend's counts may lag); their
//     byte counts are not checked (a stream counts its own overhead).
//     An item retried for later may be counted as Retrying or InFlight.
//   - Usage rises with appends by at least the data, and falls back once
//     the items are gone, eventually; the per-item overhead is the
//     backend's.
//   - Items of a closed handle come back within [Backend.RedeliveryWait],
//     not at once.
//
// Every case opens its own queue and uses topic names of its own; the
// suite closes every queue it gets. Cases wait for what they expect with
// deadlines (a few seconds) and conclude that nothing is handed out after
// a short quiet time, so that they are fast on a healthy backend and
// still pass on a loaded machine.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/queue"
)

// Backend opens the queues of one implementation for the suite.
type Backend struct {
	// Open returns a new, empty queue whose stored bytes are bounded by
	// maxBytes (0: the backend's default bound). The suite closes it.
	Open func(t testing.TB, maxBytes int64) queue.Queue
	// Reopen closes q and opens the same queue again, as a restart does:
	// for Pebble, the same directory; for JetStream, a new connection to
	// the same streams. The suite closes the queue it returns. nil: the
	// cases of a restart are skipped.
	Reopen func(t testing.TB, q queue.Queue) queue.Queue
	// Shared, when set, opens a second handle on the same queue as q, as
	// another host of a cluster does; the suite closes it. nil: the cases
	// of several hosts are skipped (one process has a Pebble directory).
	Shared func(t testing.TB, q queue.Queue) queue.Queue
	// RedeliveryWait is the longest the backend takes to hand out again
	// the items a handle left in flight when it closed (or its host died):
	// to the handle Reopen returns, and to the other hosts' handles. 0
	// means at once (Pebble, whose in-flight state dies with the
	// process); a JetStream queue waits for its consumers' ack wait. The
	// suite also checks that the items a live handle holds are not handed
	// out elsewhere during that time.
	RedeliveryWait time.Duration
}

// Timing of the cases.
const (
	// arrive bounds the time an expected item takes to be handed out, or
	// an expected count to show, beyond any documented delay.
	arrive = 5 * time.Second
	// quiet is how long a Next must hand out nothing for the suite to
	// conclude that nothing is ready.
	quiet = 100 * time.Millisecond
	// early is how much before its notBefore a retried item may come
	// back: the clocks read by the suite and by the queue may differ by
	// that much.
	early = 5 * time.Millisecond
	// late bounds how long after its notBefore a waiting Next must hand a
	// retried item out ("a waiting Next is woken at that time").
	late = time.Second
)

// Run runs the suite on b, each case a subtest.
func Run(t *testing.T, b Backend) {
	if b.Open == nil {
		t.Fatal("queuetest: Backend.Open is nil")
	}
	s := &suite{b: b}
	for _, c := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"Order", s.order},
		{"NextBounds", s.nextBounds},
		{"NextWaits", s.nextWaits},
		{"NextContext", s.nextContext},
		{"SharedConsumer", s.sharedConsumer},
		{"Ack", s.ack},
		{"Retry", s.retry},
		{"Restart", s.restart},
		{"Dead", s.dead},
		{"ListDead", s.listDead},
		{"Move", s.move},
		{"MoveRestart", s.moveRestart},
		{"Topics", s.topics},
		{"Stats", s.stats},
		{"Usage", s.usage},
		{"Bound", s.bound},
		{"TopicNames", s.topicNames},
		{"Close", s.close},
		{"Hosts/ShareItems", s.hostsShare},
		{"Hosts/Redeliver", s.hostsRedeliver},
		{"Hosts/Settle", s.hostsSettle},
	} {
		t.Run(c.name, c.run)
	}
}

// suite holds the backend for the cases.
type suite struct {
	b Backend
}

// open opens a queue of the backend, closed at the end of the test.
func (s *suite) open(t testing.TB, maxBytes int64) queue.Queue {
	t.Helper()
	q := s.b.Open(t, maxBytes)
	if q == nil {
		t.Fatal("queuetest: Backend.Open returned nil")
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// needReopen skips a case of a restart when the backend has no Reopen.
func (s *suite) needReopen(t testing.TB) {
	t.Helper()
	if s.b.Reopen == nil {
		t.Skip("the backend has no Reopen: restart cases skipped")
	}
}

// reopen restarts q, the new queue closed at the end of the test.
func (s *suite) reopen(t testing.TB, q queue.Queue) queue.Queue {
	t.Helper()
	q = s.b.Reopen(t, q)
	if q == nil {
		t.Fatal("queuetest: Backend.Reopen returned nil")
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// shared opens a second handle on q, or skips the case when the backend
// has no Shared.
func (s *suite) shared(t testing.TB, q queue.Queue) queue.Queue {
	t.Helper()
	if s.b.Shared == nil {
		t.Skip("the backend has no Shared: cases of several hosts skipped")
	}
	q2 := s.b.Shared(t, q)
	if q2 == nil {
		t.Fatal("queuetest: Backend.Shared returned nil")
	}
	t.Cleanup(func() { q2.Close() })
	return q2
}

// redelivery bounds the time the items a closed handle held take to be
// handed out again.
func (s *suite) redelivery() time.Duration { return s.b.RedeliveryWait + arrive }

// ctxFor returns a context that ends after d, or at the end of the test.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// bs returns the strings as byte slices.
func bs(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// datas returns the items' data as strings.
func datas(items []queue.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it.Data)
	}
	return out
}

// seqs returns the items' sequence numbers.
func seqs(items []queue.Item) []uint64 {
	out := make([]uint64, len(items))
	for i, it := range items {
		out[i] = it.Seq
	}
	return out
}

// add appends items to topic and fails the test on an error.
func add(t testing.TB, q queue.Queue, topic queue.Topic, items ...string) {
	t.Helper()
	if err := q.Append(context.Background(), topic, bs(items...)...); err != nil {
		t.Fatalf("Append to %q: %v", topic, err)
	}
}

// must fails the test when err is not nil.
func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantErr fails the test unless err wraps target.
func wantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got %v, want an error wrapping %q", what, err, target)
	}
}

// wantNameErr fails the test unless err is the error of an invalid topic
// name: not nil, none of the queue's other errors, and about the topic.
func wantNameErr(t testing.TB, what string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatalf("%s: no error, want the topic name's", what)
	case errors.Is(err, queue.ErrFull), errors.Is(err, queue.ErrClosed), errors.Is(err, queue.ErrNotInFlight),
		errors.Is(err, queue.ErrNotFound), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("%s: %v, want the topic name's error", what, err)
	case !strings.Contains(strings.ToLower(err.Error()), "topic"):
		t.Fatalf("%s: %v does not say that the topic name is wrong", what, err)
	}
}

// take calls Next until it has handed out n items, within d, and returns
// them in the order handed out. Each call must hand out between one item
// and the number asked for.
func take(t testing.TB, c queue.Consumer, n int, d time.Duration) []queue.Item {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out []queue.Item
	for len(out) < n {
		want := n - len(out)
		items, err := c.Next(ctx, want, 0)
		if err != nil {
			t.Fatalf("Next of %q: %v, after %d of %d items %q", c.Topic(), err, len(out), n, datas(out))
		}
		if len(items) == 0 || len(items) > want {
			t.Fatalf("Next(%d) of %q handed out %d items", want, c.Topic(), len(items))
		}
		out = append(out, items...)
	}
	return out
}

// Incompressible returns n bytes that no compression shrinks (the same
// pseudo-random ones each time): a backend may compress what it stores,
// and the cases about the bytes stored count the bytes appended.
func Incompressible(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// none returns an error unless Next hands out nothing for d.
func none(c queue.Consumer, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	items, err := c.Next(ctx, 100, 0)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return nil
	case err != nil:
		return fmt.Errorf("Next of %q: %v; want nothing ready", c.Topic(), err)
	}
	return fmt.Errorf("Next of %q handed out %q (seqs %v); want nothing ready", c.Topic(), datas(items), seqs(items))
}

// expectNone fails the test unless Next of c hands out nothing for d.
func expectNone(t testing.TB, c queue.Consumer, d time.Duration) {
	t.Helper()
	if err := none(c, d); err != nil {
		t.Fatal(err)
	}
}

// expectNoneAll is expectNone on several consumers at once, so that the
// wait is paid once.
func expectNoneAll(t testing.TB, d time.Duration, cs ...queue.Consumer) {
	t.Helper()
	errs := make(chan error, len(cs))
	for _, c := range cs {
		go func() { errs <- none(c, d) }()
	}
	var all []error
	for range cs {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	if err := errors.Join(all...); err != nil {
		t.Fatal(err)
	}
}

// eventually calls f until it returns nil, every 10 ms for up to d, and
// fails the test with f's last error otherwise. A replicated backend may
// show the effect of a write to its readers a moment later.
func eventually(t testing.TB, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s, after %v: %v", what, d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ascending fails the test unless the items' sequence numbers ascend.
func ascending(t testing.TB, what string, items []queue.Item) {
	t.Helper()
	for i := 1; i < len(items); i++ {
		if items[i].Seq <= items[i-1].Seq {
			t.Fatalf("%s: sequence numbers %v do not ascend", what, seqs(items))
		}
	}
}

// deadLetters returns the dead letters of topic once there are n of
// them (within arrive).
func deadLetters(t testing.TB, q queue.Queue, topic queue.Topic, n int) []queue.DeadItem {
	t.Helper()
	var dead []queue.DeadItem
	eventually(t, arrive, fmt.Sprintf("dead letters of %q", topic), func() error {
		var err error
		dead, err = q.DeadLetters(topic, 0, 0)
		if err != nil {
			return err
		}
		if len(dead) != n {
			return fmt.Errorf("%d dead letters %+v, want %d", len(dead), dead, n)
		}
		return nil
	})
	return dead
}

// statsAre waits (up to d) until the counts of topic are want; the byte
// counts are not compared (see the package's documentation). When
// retryingOrInFlight is set, Retrying and InFlight may share their sum
// (see the Stats case).
func statsAre(t testing.TB, q queue.Queue, topic queue.Topic, d time.Duration, want queue.Stats, retryingOrInFlight bool) {
	t.Helper()
	eventually(t, d, fmt.Sprintf("Stats of %q", topic), func() error {
		s, err := q.Stats(topic)
		if err != nil {
			return err
		}
		ok := s.Ready == want.Ready && s.Dead == want.Dead
		if retryingOrInFlight {
			ok = ok && s.InFlight+s.Retrying == want.InFlight+want.Retrying && s.InFlight >= want.InFlight
		} else {
			ok = ok && s.InFlight == want.InFlight && s.Retrying == want.Retrying
		}
		if !ok {
			return fmt.Errorf("counts ready %d, in flight %d, retrying %d, dead %d; want %d, %d, %d, %d",
				s.Ready, s.InFlight, s.Retrying, s.Dead, want.Ready, want.InFlight, want.Retrying, want.Dead)
		}
		if s.ReadyBytes < 0 || s.InFlightBytes < 0 || s.RetryingBytes < 0 || s.DeadBytes < 0 {
			return fmt.Errorf("negative byte counts: %+v", s)
		}
		return nil
	})
}

// contains reports whether every one of want is in got.
func contains[T comparable](got []T, want ...T) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}
