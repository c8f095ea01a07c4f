package queuetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/queue"
)

// bigItem is the size of the large item of the Order case: an inbox item
// of a batch at ingest's default bound (500 KB), the largest item insertfn
// writes by default.
const bigItem = 512 << 10

// order: Append then Next hands a topic's items out in append order,
// with their data, and only that topic's; sequence numbers ascend in
// append order; Append copies the items, and the data handed out is a
// copy.
func (s *suite) order(t *testing.T) {
	q := s.open(t, 0)
	const topic = queue.Topic("conf-order")
	add(t, q, topic, "a", "b", "c")
	buf := []byte("d")
	must(t, "Append", q.Append(context.Background(), topic, buf, []byte("e")))
	buf[0] = 'X' // Append copied it
	add(t, q, "conf-order-other", "x")

	c := q.Consumer(topic)
	if c.Topic() != topic {
		t.Fatalf("Consumer(%q).Topic() = %q", topic, c.Topic())
	}
	got := take(t, c, 5, arrive)
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(datas(got), want) {
		t.Fatalf("handed out %q, want %q", datas(got), want)
	}
	// Replicated: the numbers ascend; they need not be contiguous.
	ascending(t, "items in append order", got)
	for _, it := range got {
		if it.Attempts != 0 {
			t.Fatalf("first delivery of %q with Attempts %d", it.Data, it.Attempts)
		}
	}
	expectNone(t, c, quiet)
	if other := take(t, q.Consumer("conf-order-other"), 1, arrive); string(other[0].Data) != "x" {
		t.Fatalf("other topic: %q", datas(other))
	}

	// The data handed out is a copy: changing it changes nothing stored.
	got[0].Data[0] = 'Z'
	must(t, "Retry", c.Retry(context.Background(), got[0], time.Time{}))
	again := take(t, c, 1, arrive)[0]
	if string(again.Data) != "a" || again.Seq != got[0].Seq {
		t.Fatalf("after changing a handed-out copy: %q seq %d, want %q seq %d", again.Data, again.Seq, "a", got[0].Seq)
	}

	// A large item goes through whole, after the items before it.
	big := bytes.Repeat([]byte("0123456789abcdef"), bigItem/16)
	must(t, "Append of a large item", q.Append(context.Background(), topic, big))
	it := take(t, c, 1, arrive)[0]
	if !bytes.Equal(it.Data, big) || it.Seq <= got[4].Seq {
		t.Fatalf("large item: %d bytes (equal: %v) seq %d after seq %d", len(it.Data), bytes.Equal(it.Data, big), it.Seq, got[4].Seq)
	}
}

// takeBounded calls Next(maxItems, maxBytes) until it has handed out n
// items, checking each call's bounds: at least one item and at most
// maxItems (1 when maxItems < 1), whose data add up to at most maxBytes
// when maxBytes > 0, unless the call handed out a single item (the first
// is handed out whatever its size).
func takeBounded(t testing.TB, c queue.Consumer, n, maxItems, maxBytes int) []queue.Item {
	t.Helper()
	ctx := ctxFor(t, arrive)
	var out []queue.Item
	for len(out) < n {
		items, err := c.Next(ctx, maxItems, maxBytes)
		if err != nil {
			t.Fatalf("Next(%d, %d) of %q: %v, after %q", maxItems, maxBytes, c.Topic(), err, datas(out))
		}
		if len(items) == 0 || len(items) > max(maxItems, 1) {
			t.Fatalf("Next(%d, %d) of %q handed out %d items", maxItems, maxBytes, c.Topic(), len(items))
		}
		size := 0
		for _, it := range items {
			size += len(it.Data)
		}
		if maxBytes > 0 && len(items) > 1 && size > maxBytes {
			t.Fatalf("Next(%d, %d) of %q handed out %d bytes in %q", maxItems, maxBytes, c.Topic(), size, datas(items))
		}
		out = append(out, items...)
	}
	return out
}

// nextBounds: Next hands out at most maxItems items (maxItems < 1
// meaning 1) of at most maxBytes together, the first whatever its size.
// Replicated: a call may hand out fewer items than are ready and fit,
// so the suite checks the bounds of each call and the order over calls.
func (s *suite) nextBounds(t *testing.T) {
	q := s.open(t, 0)
	add(t, q, "conf-bytes", "aaaa", "bbb", "cc", "dddddddd", "e")
	c := q.Consumer("conf-bytes")
	if got := takeBounded(t, c, 5, 10, 8); !slices.Equal(datas(got), []string{"aaaa", "bbb", "cc", "dddddddd", "e"}) {
		t.Fatalf("Next(10, 8): %q", datas(got))
	}

	// The first item goes whatever its size, alone when the next would
	// not fit.
	add(t, q, "conf-first", "dddddddd", "e")
	got, err := q.Consumer("conf-first").Next(ctxFor(t, arrive), 10, 3)
	if err != nil || !slices.Equal(datas(got), []string{"dddddddd"}) {
		t.Fatalf("Next(10, 3) with a first item of 8 bytes: %q, %v", datas(got), err)
	}

	add(t, q, "conf-items", "1", "2", "3", "4", "5", "6")
	c = q.Consumer("conf-items")
	all := takeBounded(t, c, 2, 2, 0)
	all = append(all, takeBounded(t, c, 1, 0, 0)...)  // maxItems 0 means 1
	all = append(all, takeBounded(t, c, 1, -1, 0)...) // so does a negative one
	all = append(all, takeBounded(t, c, 6-len(all), 100, 0)...)
	if !slices.Equal(datas(all), []string{"1", "2", "3", "4", "5", "6"}) {
		t.Fatalf("Next with maxItems: %q", datas(all))
	}

	// A large item among small ones, under a bound smaller than it.
	big := bytes.Repeat([]byte("b"), bigItem)
	must(t, "Append", q.Append(context.Background(), "conf-big", []byte("s1"), big, []byte("s2")))
	got = takeBounded(t, q.Consumer("conf-big"), 3, 10, 1000)
	if len(got) != 3 || string(got[0].Data) != "s1" || !bytes.Equal(got[1].Data, big) || string(got[2].Data) != "s2" {
		t.Fatalf("Next(10, 1000) around a large item: %d items", len(got))
	}
}

// nextWaits: Next waits until an Append to its topic wakes it, and is not
// woken by another topic's.
func (s *suite) nextWaits(t *testing.T) {
	q := s.open(t, 0)
	c := q.Consumer("conf-wait")
	type result struct {
		items []queue.Item
		err   error
	}
	res := make(chan result, 1)
	go func() {
		items, err := c.Next(ctxFor(t, 2*arrive), 10, 0)
		res <- result{items, err}
	}()
	add(t, q, "conf-wait-other", "not for it")
	select {
	case r := <-res:
		t.Fatalf("Next returned before an Append to its topic: %q, %v", datas(r.items), r.err)
	case <-time.After(quiet):
	}
	add(t, q, "conf-wait", "woken")
	select {
	case r := <-res:
		if r.err != nil || !slices.Equal(datas(r.items), []string{"woken"}) {
			t.Fatalf("woken Next: %q, %v", datas(r.items), r.err)
		}
	case <-time.After(arrive):
		t.Fatalf("Next not woken %v after an Append", arrive)
	}
}

// nextContext: Next returns ctx's error when ctx ends, before or while it
// waits; an Append whose ctx is done returns its error and stores nothing.
func (s *suite) nextContext(t *testing.T) {
	q := s.open(t, 0)
	c := q.Consumer("conf-ctx")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Next(ctx, 1, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next past its deadline: %v", err)
	}
	if d := time.Since(start); d > arrive {
		t.Fatalf("Next returned %v after its deadline of 50ms", d)
	}

	done, stop := context.WithCancel(context.Background())
	stop()
	if _, err := c.Next(done, 1, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with a canceled ctx: %v", err)
	}

	waiting, stopWaiting := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Next(waiting, 1, 0)
		errc <- err
	}()
	select {
	case err := <-errc:
		t.Fatalf("Next returned before its ctx ended: %v", err)
	case <-time.After(quiet):
	}
	stopWaiting()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Next whose ctx was canceled while it waited: %v", err)
		}
	case <-time.After(arrive):
		t.Fatalf("Next still waiting %v after its ctx was canceled", arrive)
	}

	if err := q.Append(done, "conf-ctx", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a canceled ctx: %v", err)
	}
	expectNone(t, c, quiet)
}

// sharedConsumer: goroutines sharing a topic's consumer (the same value,
// or another that Consumer returns for the topic: one logical consumer)
// get each item exactly once, each call's items in order.
func (s *suite) sharedConsumer(t *testing.T) {
	q := s.open(t, 0)
	const topic, n = queue.Topic("conf-shared"), 300
	for i := 0; i < n; i += 100 {
		items := make([][]byte, 100)
		for j := range items {
			items[j] = fmt.Appendf(nil, "%d", i+j)
		}
		must(t, "Append", q.Append(context.Background(), topic, items...))
	}
	c := q.Consumer(topic)
	consumers := []queue.Consumer{c, c, q.Consumer(topic), q.Consumer(topic)}
	seen := consumeAll(t, n, consumers...)
	expectNone(t, c, quiet)
	for i := range n {
		if k := seen[fmt.Sprint(i)]; k != 1 {
			t.Fatalf("item %d handed out %d times", i, k)
		}
	}
}

// consumeAll runs a goroutine per consumer, each taking up to 7 items per
// Next and acknowledging them, until n items were handed out in all (or
// for at most 4 arrive times, for the check to report), and returns how
// many times each item's data was handed out.
func consumeAll(t testing.TB, n int, cs ...queue.Consumer) map[string]int {
	t.Helper()
	run, stop := context.WithTimeout(context.Background(), 4*arrive)
	defer stop()
	var mu sync.Mutex
	seen := map[string]int{}
	handed := 0
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			for {
				items, err := c.Next(run, 7, 0)
				if run.Err() != nil {
					return
				}
				if err != nil {
					t.Errorf("Next of %q: %v", c.Topic(), err)
					return
				}
				for i := 1; i < len(items); i++ {
					if items[i].Seq <= items[i-1].Seq {
						t.Errorf("one Next of %q handed out seq %d after %d", c.Topic(), items[i].Seq, items[i-1].Seq)
					}
				}
				if err := c.Ack(context.Background(), items...); err != nil {
					t.Errorf("Ack of %q: %v", c.Topic(), err)
				}
				mu.Lock()
				for _, it := range items {
					seen[string(it.Data)]++
				}
				if handed += len(items); handed >= n {
					stop()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if handed < n {
		t.Fatalf("%d of %d items handed out in %v", handed, n, 4*arrive)
	}
	return seen
}

// ack: Ack removes items; an item handed out and not settled is not
// handed out again (until a restart: see Restart); an Ack with an item
// not in flight acknowledges none; acknowledged items do not come back
// after a restart.
func (s *suite) ack(t *testing.T) {
	q := s.open(t, 0)
	ctx := context.Background()
	const topic = queue.Topic("conf-ack")
	add(t, q, topic, "a", "b", "c", "d")
	c := q.Consumer(topic)
	items := take(t, c, 4, arrive)
	must(t, "Ack of no items", c.Ack(ctx))
	must(t, "Ack", c.Ack(ctx, items[0], items[1]))
	wantErr(t, "second Ack", c.Ack(ctx, items[0]), queue.ErrNotInFlight)
	wantErr(t, "Ack of an item in flight and one acknowledged", c.Ack(ctx, items[2], items[0]), queue.ErrNotInFlight)
	wantErr(t, "Retry of an acknowledged item", c.Retry(ctx, items[0], time.Time{}), queue.ErrNotInFlight)
	wantErr(t, "Dead of an acknowledged item", c.Dead(ctx, items[0], "x"), queue.ErrNotInFlight)
	wantErr(t, "Ack of an item never handed out", c.Ack(ctx, queue.Item{Seq: items[3].Seq + 1000}), queue.ErrNotInFlight)
	// The failed Ack left c in flight.
	must(t, "Ack after a failed Ack", c.Ack(ctx, items[2]))

	// d is in flight: not handed out again, also by the consumer that
	// Consumer returns again for the topic, which settles it (one logical
	// consumer per topic).
	c2 := q.Consumer(topic)
	expectNoneAll(t, quiet, c, c2)
	must(t, "Ack through another Consumer of the topic", c2.Ack(ctx, items[3]))
	wantErr(t, "Ack after that", c.Ack(ctx, items[3]), queue.ErrNotInFlight)
	statsAre(t, q, topic, arrive, queue.Stats{}, false)

	if s.b.Reopen == nil {
		return
	}
	q = s.reopen(t, q)
	// Had an Ack been lost, its item would come back within the wait.
	expectNone(t, q.Consumer(topic), s.b.RedeliveryWait+quiet)
}

// retry: a retried item comes back no earlier than notBefore, and a
// waiting Next gets it then, with Attempts one more; a zero or past
// notBefore makes it ready at once.
func (s *suite) retry(t *testing.T) {
	q := s.open(t, 0)
	ctx := context.Background()
	const topic = queue.Topic("conf-retry")
	add(t, q, topic, "a", "b")
	c := q.Consumer(topic)
	a := take(t, c, 1, arrive)[0]
	notBefore := time.Now().Add(300 * time.Millisecond)
	must(t, "Retry", c.Retry(ctx, a, notBefore))
	wantErr(t, "second Retry of one handing out", c.Retry(ctx, a, notBefore), queue.ErrNotInFlight)
	if b := take(t, c, 1, arrive)[0]; string(b.Data) != "b" {
		t.Fatalf("while a waits for its time: %q", b.Data)
	}
	// This Next waits for a's time.
	got := take(t, c, 1, arrive+time.Until(notBefore))[0]
	now := time.Now()
	if now.Before(notBefore.Add(-early)) {
		t.Fatalf("retried item handed out %v before its time", notBefore.Sub(now))
	}
	if now.After(notBefore.Add(late)) {
		t.Fatalf("retried item handed out %v after its time", now.Sub(notBefore))
	}
	if string(got.Data) != "a" || got.Seq != a.Seq || got.Attempts != 1 {
		t.Fatalf("retried item: %q seq %d attempts %d, want %q seq %d attempts 1", got.Data, got.Seq, got.Attempts, "a", a.Seq)
	}

	must(t, "Retry with no time", c.Retry(ctx, got, time.Time{}))
	got = take(t, c, 1, arrive)[0]
	if string(got.Data) != "a" || got.Attempts != 2 {
		t.Fatalf("retried at once: %q attempts %d, want %q attempts 2", got.Data, got.Attempts, "a")
	}
	must(t, "Retry with a past time", c.Retry(ctx, got, time.Now().Add(-time.Hour)))
	got = take(t, c, 1, arrive)[0]
	if string(got.Data) != "a" || got.Attempts != 3 {
		t.Fatalf("retried for a past time: %q attempts %d, want %q attempts 3", got.Data, got.Attempts, "a")
	}
	must(t, "Ack", c.Ack(ctx, got))
	expectNone(t, c, quiet)
}

// restart: after a restart every item not acknowledged is handed out
// again (at-least-once): those in flight at once (within RedeliveryWait),
// with their sequence numbers and Attempts not counting the redelivery;
// those retried at their time with their Attempts; acknowledged and dead
// items are not; dead letters, other topics and the sequence survive.
//
// The sequence is asserted to go on after a restart while the topic holds
// items (here a dead letter): Pebble numbers a drained topic's items
// from 1 again after a restart, where a stream never reuses a number, so
// a sequence number names an item only while it is stored.
func (s *suite) restart(t *testing.T) {
	s.needReopen(t)
	q := s.open(t, 0)
	ctx := context.Background()
	const topic = queue.Topic("conf-restart")
	add(t, q, topic, "a", "b", "c", "d", "e")
	add(t, q, "conf-restart-untouched", "u")
	c := q.Consumer(topic)
	items := take(t, c, 5, arrive)
	must(t, "Ack", c.Ack(ctx, items[1], items[3]))
	notBefore := time.Now().Add(300 * time.Millisecond)
	must(t, "Retry", c.Retry(ctx, items[2], notBefore))
	must(t, "Dead", c.Dead(ctx, items[4], "dead before the restart"))
	// items[0] stays in flight.

	q = s.reopen(t, q)
	if _, err := c.Next(ctx, 1, 0); !errors.Is(err, queue.ErrClosed) {
		t.Fatalf("Next of a consumer of the closed queue: %v", err)
	}
	c = q.Consumer(topic)
	next := ctxFor(t, s.redelivery()+time.Until(notBefore))
	var back []queue.Item
	for len(back) < 2 {
		got, err := c.Next(next, 1, 0)
		if err != nil {
			t.Fatalf("after the restart, Next: %v, after %q", err, datas(back))
		}
		now := time.Now()
		for _, it := range got {
			switch it.Seq {
			case items[0].Seq:
				if string(it.Data) != "a" || it.Attempts != 0 {
					t.Fatalf("item in flight at the restart: %q attempts %d, want %q attempts 0", it.Data, it.Attempts, "a")
				}
			case items[2].Seq:
				if string(it.Data) != "c" || it.Attempts != 1 {
					t.Fatalf("item retried before the restart: %q attempts %d, want %q attempts 1", it.Data, it.Attempts, "c")
				}
				if now.Before(notBefore.Add(-early)) {
					t.Fatalf("item retried before the restart handed out %v before its time", notBefore.Sub(now))
				}
			default:
				t.Fatalf("after the restart, %q seq %d handed out: neither the item in flight (seq %d) nor the one retried (seq %d)",
					it.Data, it.Seq, items[0].Seq, items[2].Seq)
			}
			if slices.Contains(seqs(back), it.Seq) {
				t.Fatalf("item %q handed out twice after the restart", it.Data)
			}
			back = append(back, it)
		}
	}
	expectNone(t, c, quiet)
	dead := deadLetters(t, q, topic, 1)
	if dead[0].Seq != items[4].Seq || string(dead[0].Data) != "e" || dead[0].Reason != "dead before the restart" {
		t.Fatalf("dead letter after the restart: %+v", dead[0])
	}
	if u := take(t, q.Consumer("conf-restart-untouched"), 1, arrive); string(u[0].Data) != "u" {
		t.Fatalf("other topic after the restart: %q", datas(u))
	}
	add(t, q, topic, "f")
	if f := take(t, c, 1, arrive)[0]; string(f.Data) != "f" || f.Seq <= items[4].Seq {
		t.Fatalf("appended after the restart: %q seq %d, want a seq after %d", f.Data, f.Seq, items[4].Seq)
	}
}
