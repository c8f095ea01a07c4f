package queuetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/queue"
)

// clockSlack is how far a dead letter's At may be from the suite's clock:
// a replicated backend may stamp it with a server's.
const clockSlack = 2 * time.Second

// dead: Dead takes an item out of its topic into its dead letters, with
// its reason, time and Attempts, under its sequence number; DeadLetters
// pages through them; Replay makes them ready again at the end of the
// topic with Attempts 0, DropDead deletes them, both all or nothing for
// the seqs named, or all of them, and return how many.
func (s *suite) dead(t *testing.T) {
	q := s.open(t, 0)
	ctx := context.Background()
	const topic = queue.Topic("conf-dead")
	add(t, q, topic, "a", "b", "c")
	c := q.Consumer(topic)
	items := take(t, c, 3, arrive)
	must(t, "Retry", c.Retry(ctx, items[0], time.Time{}))
	a := take(t, c, 1, arrive)[0]
	before := time.Now()
	must(t, "Dead", c.Dead(ctx, a, "reason a"))
	must(t, "Dead", c.Dead(ctx, items[1], "reason b"))
	after := time.Now()
	wantErr(t, "second Dead", c.Dead(ctx, a, "again"), queue.ErrNotInFlight)
	wantErr(t, "Dead of an item never handed out", c.Dead(ctx, queue.Item{Seq: items[2].Seq + 1000}, "x"), queue.ErrNotInFlight)
	expectNone(t, c, quiet) // a and b are not handed out again; c is in flight
	statsAre(t, q, topic, arrive, queue.Stats{InFlight: 1, Dead: 2}, false)

	dead := deadLetters(t, q, topic, 2)
	want := []queue.DeadItem{
		{Seq: items[0].Seq, Data: []byte("a"), Reason: "reason a", Attempts: 1},
		{Seq: items[1].Seq, Data: []byte("b"), Reason: "reason b", Attempts: 0},
	}
	for i, d := range dead {
		w := want[i]
		if d.Seq != w.Seq || string(d.Data) != string(w.Data) || d.Reason != w.Reason || d.Attempts != w.Attempts {
			t.Fatalf("dead letter %d: %+v, want %+v", i, d, w)
		}
		if d.At.Before(before.Add(-clockSlack)) || d.At.After(after.Add(clockSlack)) {
			t.Fatalf("dead letter %d died at %v, not between %v and %v", i, d.At, before, after)
		}
	}
	if page, err := q.DeadLetters(topic, dead[0].Seq, 1); err != nil || len(page) != 1 || page[0].Seq != dead[1].Seq {
		t.Fatalf("DeadLetters after %d, limit 1: %+v, %v", dead[0].Seq, page, err)
	}
	if page, err := q.DeadLetters(topic, 0, 1); err != nil || len(page) != 1 || page[0].Seq != dead[0].Seq {
		t.Fatalf("DeadLetters limit 1: %+v, %v", page, err)
	}
	if page, err := q.DeadLetters(topic, dead[1].Seq, 0); err != nil || len(page) != 0 {
		t.Fatalf("DeadLetters after the last: %+v, %v", page, err)
	}
	_, err := q.DeadLetters("conf-dead-never", 0, 0)
	wantErr(t, "DeadLetters of a topic that does not exist", err, queue.ErrNotFound)

	// All or nothing: with a seq that is not a dead letter, nothing moves.
	missing := items[2].Seq + 1000
	n, err := q.Replay(ctx, topic, dead[1].Seq, missing)
	wantErr(t, "Replay with a seq that is not dead", err, queue.ErrNotFound)
	if n != 0 {
		t.Fatalf("failed Replay returned %d", n)
	}
	n, err = q.DropDead(ctx, topic, dead[0].Seq, missing)
	wantErr(t, "DropDead with a seq that is not dead", err, queue.ErrNotFound)
	if n != 0 {
		t.Fatalf("failed DropDead returned %d", n)
	}
	expectNone(t, c, quiet)
	deadLetters(t, q, topic, 2)

	n, err = q.Replay(ctx, topic, dead[1].Seq)
	if err != nil || n != 1 {
		t.Fatalf("Replay(%d): %d, %v", dead[1].Seq, n, err)
	}
	b := take(t, c, 1, arrive)[0]
	if string(b.Data) != "b" || b.Attempts != 0 || b.Seq <= items[2].Seq {
		t.Fatalf("replayed: %q seq %d attempts %d, want %q at a seq after %d, attempts 0", b.Data, b.Seq, b.Attempts, "b", items[2].Seq)
	}
	if left := deadLetters(t, q, topic, 1); left[0].Seq != dead[0].Seq {
		t.Fatalf("dead letters after the Replay: %+v", left)
	}
	n, err = q.DropDead(ctx, topic, dead[0].Seq)
	if err != nil || n != 1 {
		t.Fatalf("DropDead(%d): %d, %v", dead[0].Seq, n, err)
	}
	deadLetters(t, q, topic, 0)
	expectNone(t, c, quiet) // dropped, not replayed
	statsAre(t, q, topic, arrive, queue.Stats{InFlight: 2}, false)

	// All of them, in their order.
	must(t, "Dead", c.Dead(ctx, b, "again b"))
	must(t, "Dead", c.Dead(ctx, items[2], "again c"))
	both := deadLetters(t, q, topic, 2) // c, then b (replayed under a later seq)
	if n, err := q.Replay(ctx, topic); err != nil || n != 2 {
		t.Fatalf("Replay of all: %d, %v", n, err)
	}
	got := take(t, c, 2, arrive)
	if want := []string{string(both[0].Data), string(both[1].Data)}; !slices.Equal(datas(got), want) {
		t.Fatalf("replayed all: %q, want the dead letters' order %q", datas(got), want)
	}
	ascending(t, "replayed all", got)
	for _, it := range got {
		must(t, "Dead", c.Dead(ctx, it, "once more"))
	}
	deadLetters(t, q, topic, 2)
	if n, err := q.DropDead(ctx, topic); err != nil || n != 2 {
		t.Fatalf("DropDead of all: %d, %v", n, err)
	}
	deadLetters(t, q, topic, 0)
	if n, err := q.Replay(ctx, topic); err != nil || n != 0 {
		t.Fatalf("Replay of all with none: %d, %v", n, err)
	}
	_, err = q.Replay(ctx, "conf-dead-never")
	wantErr(t, "Replay of a topic that does not exist", err, queue.ErrNotFound)
	_, err = q.DropDead(ctx, "conf-dead-never")
	wantErr(t, "DropDead of a topic that does not exist", err, queue.ErrNotFound)
	expectNone(t, c, quiet)
	statsAre(t, q, topic, arrive, queue.Stats{}, false)
}

// buryAll appends items to topic, hands them out (retrying each retries
// times first) and moves them to the dead letters with reason.
func buryAll(t testing.TB, q queue.Queue, topic queue.Topic, retries int, reason string, items ...[]byte) {
	t.Helper()
	ctx := context.Background()
	must(t, "Append", q.Append(ctx, topic, items...))
	c := q.Consumer(topic)
	got := take(t, c, len(items), arrive)
	for range retries {
		for _, it := range got {
			must(t, "Retry", c.Retry(ctx, it, time.Time{}))
		}
		got = take(t, c, len(items), arrive)
	}
	for _, it := range got {
		must(t, "Dead", c.Dead(ctx, it, reason))
	}
	deadLetters(t, q, topic, len(items))
}

// listDead: ListDead lists dead letters with their event items decoded
// (a request's events in the inbox, an event in a destination's topic,
// the raw item where it does not decode), pages through a topic's, and
// lists every topic's but the inbox's by name, then the inbox's.
func (s *suite) listDead(t *testing.T) {
	q := s.open(t, 0)
	destA, destB := queue.DestinationTopic("conf-a"), queue.DestinationTopic("conf-b")
	buryAll(t, q, destB, 0, "r-b",
		queue.AppendEventItem(nil, "web", []byte(`{"n":1}`)), queue.AppendEventItem(nil, "web", []byte(`{"n":2}`)))
	buryAll(t, q, destA, 1, "r-a", queue.AppendEventItem(nil, "ios", []byte(`{"n":3}`)))
	buryAll(t, q, queue.InboxTopic, 0, "r-in", queue.AppendRequestItem(nil, "api", bs(`{"e":1}`, `{"e":2}`)))
	buryAll(t, q, "conf-raw", 0, "r-raw", []byte("not an event item"))

	type letter struct {
		topic  queue.Topic
		tries  int
		reason string
		source string
		events []string
	}
	check := func(what string, page queue.DeadPage, want ...letter) {
		t.Helper()
		if len(page.Letters) != len(want) {
			t.Fatalf("%s: %d letters %+v, want %d", what, len(page.Letters), page.Letters, len(want))
		}
		for i, l := range page.Letters {
			w := want[i]
			var events []string
			for _, ev := range l.Events {
				events = append(events, string(ev))
			}
			if l.Topic != w.topic || l.Tries != w.tries || l.Reason != w.reason || l.Source != w.source || !slices.Equal(events, w.events) {
				t.Fatalf("%s: letter %d is %q seq %d tries %d reason %q source %q events %q; want %+v",
					what, i, l.Topic, l.Seq, l.Tries, l.Reason, l.Source, events, w)
			}
		}
	}
	b1 := letter{destB, 1, "r-b", "web", []string{`{"n":1}`}}
	b2 := letter{destB, 1, "r-b", "web", []string{`{"n":2}`}}
	a := letter{destA, 2, "r-a", "ios", []string{`{"n":3}`}}
	in := letter{queue.InboxTopic, 1, "r-in", "api", []string{`{"e":1}`, `{"e":2}`}}
	raw := letter{"conf-raw", 1, "r-raw", "", []string{"not an event item"}}

	list := func(query queue.DeadQuery) queue.DeadPage {
		t.Helper()
		page, err := q.ListDead(query)
		if err != nil {
			t.Fatalf("ListDead(%+v): %v", query, err)
		}
		return page
	}
	page := list(queue.DeadQuery{Topic: destB})
	check("dead letters of "+string(destB), page, b1, b2)
	if page.Next != 0 {
		t.Fatalf("a whole list has a next page: %d", page.Next)
	}
	dead, err := q.DeadLetters(destB, 0, 0)
	if err != nil || len(dead) != 2 || page.Letters[0].Seq != dead[0].Seq || page.Letters[1].Seq != dead[1].Seq {
		t.Fatalf("ListDead seqs %d, %d; DeadLetters %+v, %v", page.Letters[0].Seq, page.Letters[1].Seq, dead, err)
	}
	first := list(queue.DeadQuery{Topic: destB, Limit: 1})
	check("first page", first, b1)
	if first.Next != first.Letters[0].Seq {
		t.Fatalf("first page's Next: %d, want %d", first.Next, first.Letters[0].Seq)
	}
	second := list(queue.DeadQuery{Topic: destB, After: first.Next, Limit: 1})
	check("second page", second, b2)
	if second.Next != 0 {
		t.Fatalf("last page's Next: %d, want 0", second.Next)
	}
	check("dead letters of "+string(destA), list(queue.DeadQuery{Topic: destA}), a)
	check("dead letters of the inbox", list(queue.DeadQuery{Topic: queue.InboxTopic}), in)
	check("dead letters that do not decode", list(queue.DeadQuery{Topic: "conf-raw"}), raw)
	check("dead letters of every topic", list(queue.DeadQuery{}), raw, a, b1, b2, in)

	if _, err := q.ListDead(queue.DeadQuery{After: 1}); err == nil {
		t.Fatal("ListDead of every topic with After: no error")
	}
	_, err = q.ListDead(queue.DeadQuery{Topic: "conf-never"})
	wantErr(t, "ListDead of a topic that does not exist", err, queue.ErrNotFound)
}

// move: Move acknowledges done and appends the outputs to their topics in
// one step; with an item not in flight it fails with ErrNotInFlight and
// changes nothing; it may append without acknowledging, acknowledge
// without appending, and append to its own topic.
func (s *suite) move(t *testing.T) {
	q := s.open(t, 0)
	ctx := context.Background()
	x, y := queue.DestinationTopic("conf-x"), queue.DestinationTopic("conf-y")
	add(t, q, queue.InboxTopic, "e1", "e2", "e3")
	in := q.Consumer(queue.InboxTopic)
	items := take(t, in, 2, arrive)
	must(t, "Move", q.Move(ctx, in, items, map[queue.Topic][][]byte{x: bs("e1>x", "e2>x"), y: bs("e2>y")}))
	cx, cy := q.Consumer(x), q.Consumer(y)
	if got := take(t, cx, 2, arrive); !slices.Equal(datas(got), []string{"e1>x", "e2>x"}) {
		t.Fatalf("%s after the Move: %q", x, datas(got))
	} else {
		must(t, "Ack", cx.Ack(ctx, got...))
	}
	if got := take(t, cy, 1, arrive); string(got[0].Data) != "e2>y" {
		t.Fatalf("%s after the Move: %q", y, datas(got))
	} else {
		must(t, "Ack", cy.Ack(ctx, got...))
	}
	e3 := take(t, in, 1, arrive)
	if string(e3[0].Data) != "e3" {
		t.Fatalf("inbox after the Move: %q", datas(e3))
	}

	// Not in flight: nothing happens.
	err := q.Move(ctx, in, items, map[queue.Topic][][]byte{x: bs("dup")})
	wantErr(t, "second Move of the same items", err, queue.ErrNotInFlight)
	err = q.Move(ctx, in, []queue.Item{e3[0], items[0]}, map[queue.Topic][][]byte{x: bs("half")})
	wantErr(t, "Move of an item in flight and one moved", err, queue.ErrNotInFlight)
	expectNoneAll(t, quiet, cx, in)
	statsAre(t, q, queue.InboxTopic, arrive, queue.Stats{InFlight: 1}, false)

	// To its own topic; the items of to are copied.
	buf := []byte("again")
	must(t, "Move to its own topic", q.Move(ctx, in, e3, map[queue.Topic][][]byte{queue.InboxTopic: {buf}}))
	buf[0] = 'X'
	again := take(t, in, 1, arrive)
	if string(again[0].Data) != "again" || again[0].Seq <= e3[0].Seq {
		t.Fatalf("moved to its own topic: %q seq %d", again[0].Data, again[0].Seq)
	}
	// Nothing done: an append.
	must(t, "Move of no items", q.Move(ctx, in, nil, map[queue.Topic][][]byte{y: bs("solo")}))
	if got := take(t, cy, 1, arrive); string(got[0].Data) != "solo" {
		t.Fatalf("%s after a Move of no items: %q", y, datas(got))
	} else {
		must(t, "Ack", cy.Ack(ctx, got...))
	}
	// Nothing to append: an acknowledgement.
	must(t, "Move to no topic", q.Move(ctx, in, again, nil))
	must(t, "Move of nothing", q.Move(ctx, in, nil, nil))
	wantErr(t, "Ack after a Move", in.Ack(ctx, again...), queue.ErrNotInFlight)
	expectNoneAll(t, quiet, in, cx, cy)
	for _, topic := range []queue.Topic{queue.InboxTopic, x, y} {
		statsAre(t, q, topic, arrive, queue.Stats{}, false)
	}
}

// moveRestart: a restart between Next and Move hands the item out again
// and appends nothing, and the item handed out before the restart cannot
// be moved; a Move survives a restart.
func (s *suite) moveRestart(t *testing.T) {
	s.needReopen(t)
	q := s.open(t, 0)
	ctx := context.Background()
	out := queue.DestinationTopic("conf-out")
	add(t, q, queue.InboxTopic, "m1")
	old := take(t, q.Consumer(queue.InboxTopic), 1, arrive)

	q = s.reopen(t, q)
	in := q.Consumer(queue.InboxTopic)
	err := q.Move(ctx, in, old, map[queue.Topic][][]byte{out: bs("out")})
	wantErr(t, "Move of an item handed out before the restart", err, queue.ErrNotInFlight)
	m1 := take(t, in, 1, s.redelivery())
	if string(m1[0].Data) != "m1" || m1[0].Seq != old[0].Seq || m1[0].Attempts != 0 {
		t.Fatalf("after the restart: %q seq %d attempts %d, want %q seq %d attempts 0", m1[0].Data, m1[0].Seq, m1[0].Attempts, "m1", old[0].Seq)
	}
	expectNone(t, q.Consumer(out), quiet)

	must(t, "Move", q.Move(ctx, in, m1, map[queue.Topic][][]byte{out: bs("out")}))
	q = s.reopen(t, q)
	if got := take(t, q.Consumer(out), 1, arrive); string(got[0].Data) != "out" {
		t.Fatalf("%s after a Move and a restart: %q", out, datas(got))
	}
	// Had the Move's acknowledgement been lost, m1 would come back within
	// the wait.
	expectNone(t, q.Consumer(queue.InboxTopic), s.b.RedeliveryWait+quiet)
}

// topics: Topics returns the topics that hold items, sorted, whatever
// wrote them (Append, Move, Dead); Destinations the names of the
// destinations among them, sorted.
func (s *suite) topics(t *testing.T) {
	q := s.open(t, 0)
	ctx := context.Background()
	add(t, q, "conf-t", "x")
	add(t, q, queue.DestinationTopic("web"), "x")
	add(t, q, queue.DestinationTopic("s3"), "x")
	add(t, q, queue.InboxTopic, "x")
	in := q.Consumer(queue.InboxTopic)
	item := take(t, in, 1, arrive)
	must(t, "Move", q.Move(ctx, in, item, map[queue.Topic][][]byte{queue.DestinationTopic("via-move"): bs("y")}))
	buryAll(t, q, queue.DestinationTopic("dead-only"), 0, "x", []byte("x"))

	want := []queue.Topic{"conf-t", queue.DestinationTopic("web"), queue.DestinationTopic("s3"),
		queue.DestinationTopic("via-move"), queue.DestinationTopic("dead-only")}
	eventually(t, arrive, "Topics", func() error {
		got := q.Topics()
		if !contains(got, want...) || !slices.IsSorted(got) {
			return fmt.Errorf("%q; want it sorted, with %q", got, want)
		}
		return nil
	})
	wantDest := []string{"dead-only", "s3", "via-move", "web"}
	eventually(t, arrive, "Destinations", func() error {
		got := q.Destinations()
		if !contains(got, wantDest...) || !slices.IsSorted(got) || slices.Contains(got, "conf-t") || slices.Contains(got, "inbox") {
			return fmt.Errorf("%q; want it sorted, with %q and only destinations", got, wantDest)
		}
		return nil
	})
}
