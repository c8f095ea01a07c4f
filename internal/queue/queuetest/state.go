package queuetest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/queue"
)

// stats: a topic's Stats count its items by state: ready (appended and
// not handed out), in flight (handed out, not settled), retrying, dead;
// after a restart the items in flight are ready again. A topic that does
// not exist is ErrNotFound.
//
// Replicated: the counts are checked once they settle (a backend may
// show them a moment later); the byte counts are not compared, a stream
// counting its own overhead; and an item retried for later may be counted
// as Retrying or as InFlight (a stream that redelivers it later keeps it
// pending meanwhile), where Pebble counts it as Retrying.
func (s *suite) stats(t *testing.T) {
	q := s.open(t, 0)
	ctx := context.Background()
	const topic = queue.Topic("conf-stats")
	add(t, q, topic, "1", "22", "333", "4444", "55555")
	statsAre(t, q, topic, arrive, queue.Stats{Ready: 5}, false)
	c := q.Consumer(topic)
	items := take(t, c, 4, arrive)
	statsAre(t, q, topic, arrive, queue.Stats{Ready: 1, InFlight: 4}, false)
	must(t, "Retry", c.Retry(ctx, items[0], time.Now().Add(time.Hour)))
	must(t, "Dead", c.Dead(ctx, items[1], "x"))
	must(t, "Ack", c.Ack(ctx, items[2]))
	statsAre(t, q, topic, arrive, queue.Stats{Ready: 1, InFlight: 1, Retrying: 1, Dead: 1}, true)
	_, err := q.Stats("conf-stats-never")
	wantErr(t, "Stats of a topic that does not exist", err, queue.ErrNotFound)

	if s.b.Reopen == nil {
		return
	}
	q = s.reopen(t, q)
	statsAre(t, q, topic, s.redelivery(), queue.Stats{Ready: 2, Retrying: 1, Dead: 1}, true)
}

// usage: Usage rises with appends (by at least their data) and with the
// outputs of a Move, and falls back once items are acknowledged; dead
// letters count until dropped. Its limit is the bound the queue was
// opened with.
func (s *suite) usage(t *testing.T) {
	if _, limit := s.open(t, 0).Usage(); limit == 0 {
		t.Fatal("Usage of a queue of the default bound: the limit is 0, want the bound or negative (none)")
	}
	const bound = 1 << 20
	q := s.open(t, bound)
	ctx := context.Background()
	used0, limit := q.Usage()
	if limit != bound {
		t.Fatalf("Usage's limit %d, want the bound %d", limit, bound)
	}
	if used0 < 0 {
		t.Fatalf("Usage of an empty queue: %d", used0)
	}
	usedAtLeast := func(what string, n int64) {
		t.Helper()
		eventually(t, arrive, "Usage "+what, func() error {
			if used, _ := q.Usage(); used < used0+n {
				return fmt.Errorf("%d, want at least %d + %d", used, used0, n)
			}
			return nil
		})
	}
	usedBack := func(what string) {
		t.Helper()
		eventually(t, arrive, "Usage "+what, func() error {
			if used, _ := q.Usage(); used > used0 {
				return fmt.Errorf("%d, want back to %d", used, used0)
			}
			return nil
		})
	}

	const topic = queue.Topic("conf-usage")
	item := Incompressible(1000)
	for range 10 {
		must(t, "Append", q.Append(ctx, topic, item))
	}
	usedAtLeast("after 10 appends of 1000 bytes", 10*1000)
	c := q.Consumer(topic)
	must(t, "Ack", c.Ack(ctx, take(t, c, 10, arrive)...))
	usedBack("after they were acknowledged")

	buryAll(t, q, topic, 0, "x", item)
	usedAtLeast("with a dead letter of 1000 bytes", 1000)
	if n, err := q.DropDead(ctx, topic); err != nil || n != 1 {
		t.Fatalf("DropDead: %d, %v", n, err)
	}
	usedBack("after the dead letter was dropped")

	must(t, "Append", q.Append(ctx, queue.InboxTopic, []byte("in")))
	in := q.Consumer(queue.InboxTopic)
	must(t, "Move", q.Move(ctx, in, take(t, in, 1, arrive), map[queue.Topic][][]byte{"conf-usage-a": {item}, "conf-usage-b": {item}}))
	usedAtLeast("after a Move of 2000 bytes", 2000)
}

// bound: an Append past the bound fails with ErrFull and stores none of
// its items; the items stored then are at most the bound; acknowledged
// items make room again, dead letters count until dropped; a Move is
// never refused for space (its data was already accepted).
//
// Replicated: the overhead a backend counts per item is its own, so the
// suite checks that the data stored stays within the bound and that the
// bound admits at least half its size in items of 1000 bytes.
func (s *suite) bound(t *testing.T) {
	const bound, size = 64 << 10, 1000
	q := s.open(t, bound)
	ctx := context.Background()
	const topic = queue.Topic("conf-bound")
	item := Incompressible(size)
	fill := func() int {
		t.Helper()
		for n := 0; ; n++ {
			err := q.Append(ctx, topic, item)
			if errors.Is(err, queue.ErrFull) {
				return n
			}
			must(t, "Append below the bound", err)
			if (n+1)*size > bound {
				t.Fatalf("%d items of %d bytes accepted under a bound of %d", n+1, size, bound)
			}
		}
	}
	k := fill()
	if k < bound/size/2 {
		t.Fatalf("a bound of %d bytes is full after %d items of %d bytes", bound, k, size)
	}
	if _, limit := q.Usage(); limit != bound {
		t.Fatalf("Usage's limit %d, want %d", limit, bound)
	}
	// The first item would fit alone, not both: neither is stored.
	err := q.Append(ctx, topic, []byte("s"), item)
	wantErr(t, "Append of two items past the bound", err, queue.ErrFull)
	c := q.Consumer(topic)
	items := take(t, c, k, arrive)
	expectNone(t, c, quiet)

	// Room again once acknowledged, less while a dead letter is kept.
	must(t, "Dead", c.Dead(ctx, items[0], "x"))
	must(t, "Ack", c.Ack(ctx, items[1:]...))
	eventually(t, arrive, "Append after the items were acknowledged", func() error {
		err := q.Append(ctx, topic, item)
		if errors.Is(err, queue.ErrFull) {
			return err
		}
		must(t, "Append", err)
		return nil
	})
	if k2 := 1 + fill(); k2 >= k {
		t.Fatalf("%d items fit with a dead letter kept, %d without: the dead letter does not count", k2, k)
	}

	// Full, and still a Move goes through.
	in := take(t, c, 1, arrive)
	out := queue.Topic("conf-bound-out")
	must(t, "Move when full", q.Move(ctx, c, in, map[queue.Topic][][]byte{out: {item, item, item}}))
	wantErr(t, "Append after the Move", q.Append(ctx, topic, item), queue.ErrFull)
	if got := take(t, q.Consumer(out), 3, arrive); !bytes.Equal(got[2].Data, item) {
		t.Fatalf("moved items: %d, the last of %d bytes", len(got), len(got[2].Data))
	}
}

// topicNames: an empty or too long topic name fails with the name's
// error, and changes nothing; any other name is a topic of its own, its
// name kept exactly (a backend that maps names to its own, such as
// subjects, must not merge two).
func (s *suite) topicNames(t *testing.T) {
	q := s.open(t, 0)
	ctx := context.Background()
	for _, bad := range []queue.Topic{"", queue.Topic(strings.Repeat("n", queue.MaxTopicLen+1))} {
		name := fmt.Sprintf("topic name of %d bytes", len(bad))
		wantNameErr(t, "Append to a "+name, q.Append(ctx, bad, []byte("x")))
		c := q.Consumer(bad)
		_, err := c.Next(ctxFor(t, arrive), 1, 0)
		wantNameErr(t, "Next of a "+name, err)
		wantNameErr(t, "Ack of a "+name, c.Ack(ctx, queue.Item{Seq: 1}))
		wantNameErr(t, "Retry of a "+name, c.Retry(ctx, queue.Item{Seq: 1}, time.Time{}))
		wantNameErr(t, "Dead of a "+name, c.Dead(ctx, queue.Item{Seq: 1}, "x"))
		wantNameErr(t, "Move from a "+name, q.Move(ctx, c, nil, map[queue.Topic][][]byte{"conf-ok": bs("x")}))

		add(t, q, "conf-src", "s")
		src := q.Consumer("conf-src")
		item := take(t, src, 1, arrive)
		wantNameErr(t, "Move to a "+name, q.Move(ctx, src, item, map[queue.Topic][][]byte{bad: bs("x"), "conf-ok": bs("y")}))
		must(t, "Ack after a failed Move", src.Ack(ctx, item...))
		expectNone(t, q.Consumer("conf-ok"), quiet)
	}

	names := []queue.Topic{
		"a.b", "a_b", "a-b", "a b", "A.B", "a*", "a>", "a.*.>", "$JS.API", ".", "a..b",
		"dest:x/y", "dest:x.y", "ünï", "a\x00b", "\xff\xfe",
		queue.Topic(strings.Repeat("n", queue.MaxTopicLen)),
	}
	for _, name := range names {
		must(t, fmt.Sprintf("Append to %q", name), q.Append(ctx, name, []byte(name)))
	}
	cs := make([]queue.Consumer, len(names))
	for i, name := range names {
		cs[i] = q.Consumer(name)
		got := take(t, cs[i], 1, arrive)
		if string(got[0].Data) != string(name) {
			t.Fatalf("topic %q handed out %q", name, got[0].Data)
		}
		if i == 0 {
			must(t, "Dead", cs[i].Dead(ctx, got[0], "x"))
		} else {
			must(t, "Ack", cs[i].Ack(ctx, got...))
		}
	}
	expectNoneAll(t, quiet, cs...)
	if dead := deadLetters(t, q, names[0], 1); string(dead[0].Data) != string(names[0]) {
		t.Fatalf("dead letter of %q: %q", names[0], dead[0].Data)
	}
	for _, name := range names[1:] {
		if dead, err := q.DeadLetters(name, 0, 0); err != nil || len(dead) != 0 {
			t.Fatalf("dead letters of %q: %+v, %v", name, dead, err)
		}
	}
	eventually(t, arrive, "Topics", func() error {
		if got := q.Topics(); !contains(got, names...) {
			return fmt.Errorf("%q; want every one of %q", got, names)
		}
		return nil
	})
	eventually(t, arrive, "Destinations", func() error {
		if got := q.Destinations(); !contains(got, "x/y", "x.y") {
			return fmt.Errorf("%q; want %q and %q", got, "x/y", "x.y")
		}
		return nil
	})
}

// close: Close wakes a waiting Next with ErrClosed; every later call
// fails with ErrClosed (those that return no error do not fail); a second
// Close returns nil; the items in flight at Close are handed out again
// after a restart, and the settles that failed did nothing.
func (s *suite) close(t *testing.T) {
	q := s.open(t, 0)
	ctx := context.Background()
	const topic = queue.Topic("conf-close")
	add(t, q, topic, "a", "b", "c", "d")
	c := q.Consumer(topic)
	items := take(t, c, 4, arrive)
	must(t, "Dead", c.Dead(ctx, items[3], "x"))
	dead := deadLetters(t, q, topic, 1)

	errc := make(chan error, 1)
	go func() {
		_, err := c.Next(ctxFor(t, 2*arrive), 1, 0)
		errc <- err
	}()
	select {
	case err := <-errc:
		t.Fatalf("Next with nothing ready returned: %v", err)
	case <-time.After(quiet):
	}
	must(t, "Close", q.Close())
	select {
	case err := <-errc:
		wantErr(t, "Next waiting at Close", err, queue.ErrClosed)
	case <-time.After(arrive):
		t.Fatalf("Next still waiting %v after Close", arrive)
	}

	closed := func(what string, err error) {
		t.Helper()
		wantErr(t, what+" after Close", err, queue.ErrClosed)
	}
	closed("Append", q.Append(ctx, topic, []byte("x")))
	_, err := c.Next(ctx, 1, 0)
	closed("Next", err)
	_, err = q.Consumer(topic).Next(ctx, 1, 0)
	closed("Next of a new Consumer", err)
	_, err = q.Consumer("conf-close-new").Next(ctx, 1, 0)
	closed("Next of a new topic's Consumer", err)
	closed("Ack", c.Ack(ctx, items[0]))
	closed("Retry", c.Retry(ctx, items[1], time.Time{}))
	closed("Dead", c.Dead(ctx, items[2], "x"))
	closed("Move", q.Move(ctx, c, items[:1], map[queue.Topic][][]byte{"conf-close-out": bs("x")}))
	_, err = q.Stats(topic)
	closed("Stats", err)
	_, err = q.DeadLetters(topic, 0, 0)
	closed("DeadLetters", err)
	_, err = q.ListDead(queue.DeadQuery{Topic: topic})
	closed("ListDead of a topic", err)
	_, err = q.ListDead(queue.DeadQuery{})
	closed("ListDead of every topic", err)
	_, err = q.Replay(ctx, topic, dead[0].Seq)
	closed("Replay", err)
	_, err = q.Replay(ctx, topic)
	closed("Replay of all", err)
	_, err = q.DropDead(ctx, topic, dead[0].Seq)
	closed("DropDead", err)
	q.Topics()
	q.Destinations()
	q.Usage()
	must(t, "second Close", q.Close())

	if s.b.Reopen == nil {
		return
	}
	q = s.reopen(t, q)
	got := take(t, q.Consumer(topic), 3, s.redelivery())
	slices.SortFunc(got, func(a, b queue.Item) int { return cmp.Compare(a.Seq, b.Seq) })
	if !slices.Equal(datas(got), []string{"a", "b", "c"}) || !slices.Equal(seqs(got), seqs(items[:3])) {
		t.Fatalf("after Close and a restart: %q seqs %v, want %q seqs %v", datas(got), seqs(got), []string{"a", "b", "c"}, seqs(items[:3]))
	}
	for _, it := range got {
		if it.Attempts != 0 {
			t.Fatalf("%q handed out again with Attempts %d: a Retry after Close counted", it.Data, it.Attempts)
		}
	}
	if d := deadLetters(t, q, topic, 1); d[0].Seq != dead[0].Seq {
		t.Fatalf("dead letter after the restart: %+v, want seq %d", d, dead[0].Seq)
	}
}
