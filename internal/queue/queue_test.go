package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// open opens a queue in a new temporary directory, closed at the end of
// the test.
func open(t testing.TB, opts Options) (*Pebble, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), DirName)
	q, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q, path
}

// reopen closes q and opens its file again.
func reopen(t testing.TB, q *Pebble, opts Options) *Pebble {
	t.Helper()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q, err := Open(q.Path(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func bs(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func datas(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it.Data)
	}
	return out
}

// next calls Next with a timeout of d and fails the test on an error.
func next(t testing.TB, c Consumer, max int, d time.Duration) []Item {
	t.Helper()
	items, err := c.Next(ctxT(t, d), max, 0)
	if err != nil {
		t.Fatalf("Next(%d) of %s: %v", max, c.Topic(), err)
	}
	return items
}

// expectEmpty checks that Next hands out nothing within a short time.
func expectEmpty(t testing.TB, c Consumer) {
	t.Helper()
	items, err := c.Next(ctxT(t, 30*time.Millisecond), 100, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next of %s: got %q, %v; want nothing ready", c.Topic(), datas(items), err)
	}
}

func stats(t testing.TB, q *Pebble, topic Topic) Stats {
	t.Helper()
	s, err := q.Stats(topic)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOrder(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	ctx := context.Background()
	if err := q.Append(ctx, "inbox", bs("a", "b", "c")...); err != nil {
		t.Fatal(err)
	}
	if err := q.Append(ctx, "inbox", bs("d", "e")...); err != nil {
		t.Fatal(err)
	}
	if err := q.Append(ctx, "other", bs("x")...); err != nil {
		t.Fatal(err)
	}
	c := q.Consumer("inbox")
	if q.Consumer("inbox") != c {
		t.Fatal("Consumer returned a second consumer for the same topic")
	}
	got := next(t, c, 2, time.Second)
	if !slices.Equal(datas(got), []string{"a", "b"}) || got[0].Seq != 1 || got[1].Seq != 2 || got[0].Attempts != 0 {
		t.Fatalf("first Next: %+v", got)
	}
	got = next(t, c, 100, time.Second)
	if !slices.Equal(datas(got), []string{"c", "d", "e"}) || got[2].Seq != 5 {
		t.Fatalf("second Next: %+v", got)
	}
	expectEmpty(t, c)
	if got := datas(next(t, q.Consumer("other"), 0, time.Second)); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("other topic: %q", got)
	}
	if got := q.Topics(); !slices.Equal(got, []Topic{"inbox", "other"}) {
		t.Fatalf("Topics: %q", got)
	}
}

func TestNextBoundsBytes(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	ctx := context.Background()
	if err := q.Append(ctx, "t", bs("aaaa", "bbb", "cc", "dddddddd", "e")...); err != nil {
		t.Fatal(err)
	}
	c := q.Consumer("t")
	take := func(maxItems, maxBytes int) []string {
		t.Helper()
		items, err := c.Next(ctxT(t, time.Second), maxItems, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		return datas(items)
	}
	// 4+3 fit in 8, 4+3+2 do not: cc stays ready, first in line.
	if got := take(10, 8); !slices.Equal(got, []string{"aaaa", "bbb"}) {
		t.Fatalf("Next(10, 8) = %q", got)
	}
	// An item over the bound goes alone when it is first.
	if got := take(10, 1); !slices.Equal(got, []string{"cc"}) {
		t.Fatalf("Next(10, 1) = %q", got)
	}
	if got := take(10, 3); !slices.Equal(got, []string{"dddddddd"}) {
		t.Fatalf("Next(10, 3) = %q", got)
	}
	// Retried items due again are bounded the same way and stay due.
	got, err := c.Next(ctxT(t, time.Second), 10, 0)
	if err != nil || !slices.Equal(datas(got), []string{"e"}) {
		t.Fatalf("Next(10, 0) = %q, %v", datas(got), err)
	}
	if err := q.Append(ctx, "t", bs("ff", "g")...); err != nil {
		t.Fatal(err)
	}
	all, err := c.Next(ctxT(t, time.Second), 10, 0)
	if err != nil || !slices.Equal(datas(all), []string{"ff", "g"}) {
		t.Fatalf("Next(10, 0) = %q, %v", datas(all), err)
	}
	for _, it := range append(got, all...) {
		if err := c.Retry(ctx, it, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := take(10, 2); !slices.Equal(got, []string{"e"}) {
		t.Fatalf("due items, Next(10, 2) = %q", got)
	}
	if got := take(10, 3); !slices.Equal(got, []string{"ff", "g"}) {
		t.Fatalf("due items, Next(10, 3) = %q", got)
	}
	expectEmpty(t, c)
	if s := stats(t, q, "t"); s.InFlight != 7 || s.Ready != 0 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestAppendCopiesAndDataIsACopy(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	buf := []byte("hello")
	if err := q.Append(context.Background(), "t", buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX")
	c := q.Consumer("t")
	got := next(t, c, 1, time.Second)
	if string(got[0].Data) != "hello" {
		t.Fatalf("got %q: Append kept the caller's buffer", got[0].Data)
	}
	if err := c.Retry(context.Background(), got[0], time.Time{}); err != nil {
		t.Fatal(err)
	}
	got[0].Data[0] = 'J'
	again := next(t, c, 1, time.Second)
	if string(again[0].Data) != "hello" || again[0].Attempts != 1 {
		t.Fatalf("after modifying a handed-out copy: %q attempts %d", again[0].Data, again[0].Attempts)
	}
}

func TestInvalidInput(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	ctx := context.Background()
	if err := q.Append(ctx, "", []byte("x")); err == nil {
		t.Error("Append to an empty topic name: no error")
	}
	if err := q.Append(ctx, Topic(strings.Repeat("n", MaxTopicLen+1)), []byte("x")); err == nil {
		t.Error("Append to a too long topic name: no error")
	}
	if _, err := q.Consumer("").Next(ctx, 1, 0); err == nil {
		t.Error("Next on an empty topic name: no error")
	}
	if err := q.Append(ctx, "t"); err != nil {
		t.Errorf("Append of no items: %v", err)
	}
	if _, err := q.Stats("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stats of an unknown topic: %v", err)
	}
	if _, err := q.Replay(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Replay of an unknown topic: %v", err)
	}
	c := q.Consumer("t")
	if err := c.Ack(ctx, Item{Seq: 42}); !errors.Is(err, ErrNotInFlight) {
		t.Errorf("Ack of an item never handed out: %v", err)
	}
	if err := c.Retry(ctx, Item{Seq: 42}, time.Now()); !errors.Is(err, ErrNotInFlight) {
		t.Errorf("Retry of an item never handed out: %v", err)
	}
	if err := c.Dead(ctx, Item{Seq: 42}, "x"); !errors.Is(err, ErrNotInFlight) {
		t.Errorf("Dead of an item never handed out: %v", err)
	}
	if _, err := Open("", Options{}); err == nil {
		t.Error("Open of an empty path: no error")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "q.db"), Options{Sync: 7}); err == nil {
		t.Error("Open with an unknown sync policy: no error")
	}
}

func TestNextWaitsAndWakesOnAppend(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	c := q.Consumer("t")
	got := make(chan []Item, 1)
	go func() {
		items, err := c.Next(ctxT(t, 10*time.Second), 10, 0)
		if err != nil {
			t.Error(err)
		}
		got <- items
	}()
	time.Sleep(20 * time.Millisecond) // let Next block
	if err := q.Append(context.Background(), "t", bs("woken")...); err != nil {
		t.Fatal(err)
	}
	if items := <-got; !slices.Equal(datas(items), []string{"woken"}) {
		t.Fatalf("got %q", datas(items))
	}
}

func TestInFlightExclusion(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	ctx := context.Background()
	if err := q.Append(ctx, "t", bs("a", "b", "c")...); err != nil {
		t.Fatal(err)
	}
	c := q.Consumer("t")
	first := next(t, c, 2, time.Second)
	second := next(t, c, 2, time.Second)
	if !slices.Equal(datas(first), []string{"a", "b"}) || !slices.Equal(datas(second), []string{"c"}) {
		t.Fatalf("got %q then %q", datas(first), datas(second))
	}
	expectEmpty(t, c)
	s := stats(t, q, "t")
	if s.InFlight != 3 || s.Ready != 0 || s.InFlightBytes != 3 {
		t.Fatalf("stats: %+v", s)
	}
	if err := c.Ack(ctx, first...); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(ctx, first[0]); !errors.Is(err, ErrNotInFlight) {
		t.Fatalf("second Ack: %v", err)
	}
	// An Ack with one item not in flight acknowledges none of them.
	if err := c.Ack(ctx, second[0], first[0]); !errors.Is(err, ErrNotInFlight) {
		t.Fatalf("Ack of a mix: %v", err)
	}
	if s := stats(t, q, "t"); s.InFlight != 1 {
		t.Fatalf("after the failed Ack: %+v", s)
	}
	if err := c.Ack(ctx, second...); err != nil {
		t.Fatal(err)
	}
	if s := stats(t, q, "t"); s != (Stats{}) {
		t.Fatalf("all acknowledged: %+v", s)
	}
}

func TestConcurrentConsumersGetEachItemOnce(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	ctx := context.Background()
	const n = 500
	for i := range n {
		if err := q.Append(ctx, "t", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c := q.Consumer("t")
	var mu sync.Mutex
	seen := map[string]int{}
	handed := 0
	// The consumers stop once every item was handed out (or after a
	// generous time, for the check below to report): a short timeout per
	// Next would end them early on a loaded machine.
	run, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				items, err := c.Next(run, 7, 0)
				if run.Err() != nil {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				for i := 1; i < len(items); i++ {
					if items[i].Seq <= items[i-1].Seq {
						t.Errorf("out of order: %d after %d", items[i].Seq, items[i-1].Seq)
					}
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
	expectEmpty(t, c)
	if len(seen) != n {
		t.Fatalf("%d distinct items handed out, want %d", len(seen), n)
	}
	for d, k := range seen {
		if k != 1 {
			t.Fatalf("item %s handed out %d times while in flight", d, k)
		}
	}
}

func TestRetry(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	ctx := context.Background()
	if err := q.Append(ctx, "t", bs("a", "b")...); err != nil {
		t.Fatal(err)
	}
	c := q.Consumer("t")
	a := next(t, c, 1, time.Second)[0]
	notBefore := time.Now().Add(80 * time.Millisecond)
	if err := c.Retry(ctx, a, notBefore); err != nil {
		t.Fatal(err)
	}
	if s := stats(t, q, "t"); s.Retrying != 1 || s.Ready != 1 || s.RetryingBytes != 1 {
		t.Fatalf("stats after Retry: %+v", s)
	}
	b := next(t, c, 10, time.Second)
	if !slices.Equal(datas(b), []string{"b"}) {
		t.Fatalf("while a waits: %q", datas(b))
	}
	// A blocked Next wakes at notBefore.
	got := next(t, c, 10, 5*time.Second)
	if now := time.Now(); now.Before(notBefore) {
		t.Fatalf("retried item handed out %v before its time", notBefore.Sub(now))
	}
	if len(got) != 1 || string(got[0].Data) != "a" || got[0].Seq != a.Seq || got[0].Attempts != 1 {
		t.Fatalf("after the retry time: %+v", got)
	}
	// A retry with no time is ready at once, and goes before later items.
	if err := q.Append(ctx, "t", bs("c")...); err != nil {
		t.Fatal(err)
	}
	if err := c.Retry(ctx, got[0], time.Time{}); err != nil {
		t.Fatal(err)
	}
	got = next(t, c, 10, time.Second)
	if !slices.Equal(datas(got), []string{"a", "c"}) || got[0].Attempts != 2 {
		t.Fatalf("retry now: %+v", got)
	}
	if err := c.Retry(ctx, b[0], time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := c.Retry(ctx, b[0], time.Now()); !errors.Is(err, ErrNotInFlight) {
		t.Fatalf("second Retry of the same handing out: %v", err)
	}
}

func TestRetryPersistsAcrossRestart(t *testing.T) {
	q, _ := open(t, Options{})
	ctx := context.Background()
	if err := q.Append(ctx, "t", bs("a", "b")...); err != nil {
		t.Fatal(err)
	}
	c := q.Consumer("t")
	items := next(t, c, 2, time.Second)
	notBefore := time.Now().Add(time.Second) // longer than a reopen on a loaded machine
	if err := c.Retry(ctx, items[0], notBefore); err != nil {
		t.Fatal(err)
	}
	q = reopen(t, q, Options{})
	if s := stats(t, q, "t"); s.Retrying != 1 || s.Ready != 1 {
		t.Fatalf("stats after reopen: %+v", s)
	}
	c = q.Consumer("t")
	got := next(t, c, 10, time.Second)
	if !slices.Equal(datas(got), []string{"b"}) || got[0].Attempts != 0 {
		t.Fatalf("after reopen, before the retry time: %+v", got)
	}
	got = next(t, c, 10, 5*time.Second)
	if time.Now().Before(notBefore) {
		t.Fatal("retried item handed out before its time after a restart")
	}
	if !slices.Equal(datas(got), []string{"a"}) || got[0].Attempts != 1 {
		t.Fatalf("after the retry time: %+v", got)
	}
}

func TestRestartRedeliversUnacked(t *testing.T) {
	q, _ := open(t, Options{})
	ctx := context.Background()
	if err := q.Append(ctx, "t", bs("a", "b", "c", "d", "e")...); err != nil {
		t.Fatal(err)
	}
	c := q.Consumer("t")
	items := next(t, c, 5, time.Second)
	if err := c.Ack(ctx, items[1], items[3]); err != nil {
		t.Fatal(err)
	}
	q = reopen(t, q, Options{})
	c = q.Consumer("t")
	got := next(t, c, 10, time.Second)
	if !slices.Equal(datas(got), []string{"a", "c", "e"}) {
		t.Fatalf("after restart: %q", datas(got))
	}
	if err := q.Append(ctx, "t", bs("f")...); err != nil {
		t.Fatal(err)
	}
	if got := next(t, c, 10, time.Second); len(got) != 1 || got[0].Seq != 6 {
		t.Fatalf("sequence after restart: %+v", got)
	}
}

func TestDeadReplayDrop(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	ctx := context.Background()
	if err := q.Append(ctx, "t", bs("a", "b", "c", "d")...); err != nil {
		t.Fatal(err)
	}
	c := q.Consumer("t")
	items := next(t, c, 4, time.Second)
	if err := c.Retry(ctx, items[0], time.Time{}); err != nil {
		t.Fatal(err)
	}
	a := next(t, c, 1, time.Second)[0]
	before := time.Now()
	for i, it := range []Item{a, items[1], items[2]} {
		if err := c.Dead(ctx, it, fmt.Sprintf("reason %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Dead(ctx, a, "again"); !errors.Is(err, ErrNotInFlight) {
		t.Fatalf("second Dead: %v", err)
	}
	if s := stats(t, q, "t"); s.Dead != 3 || s.DeadBytes != 3 || s.InFlight != 1 || s.Ready != 0 {
		t.Fatalf("stats: %+v", s)
	}
	dead, err := q.DeadLetters("t", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 3 {
		t.Fatalf("dead letters: %+v", dead)
	}
	want := []DeadItem{{Seq: 1, Data: []byte("a"), Reason: "reason 0", Attempts: 1}, {Seq: 2, Data: []byte("b"), Reason: "reason 1"}, {Seq: 3, Data: []byte("c"), Reason: "reason 2"}}
	for i, d := range dead {
		w := want[i]
		if d.Seq != w.Seq || string(d.Data) != string(w.Data) || d.Reason != w.Reason || d.Attempts != w.Attempts || d.At.Before(before.Add(-time.Second)) || d.At.After(time.Now()) {
			t.Errorf("dead letter %d: %+v, want %+v", i, d, w)
		}
	}
	if page, _ := q.DeadLetters("t", 1, 1); len(page) != 1 || page[0].Seq != 2 {
		t.Fatalf("page after 1: %+v", page)
	}
	expectEmpty(t, c)

	// All or nothing: a seq that is not dead replays nothing.
	if n, err := q.Replay(ctx, "t", 2, 99); !errors.Is(err, ErrNotFound) || n != 0 {
		t.Fatalf("Replay with an unknown seq: %d, %v", n, err)
	}
	if n, err := q.Replay(ctx, "t", 2, 2); err != nil || n != 1 {
		t.Fatalf("Replay(2): %d, %v", n, err)
	}
	got := next(t, c, 10, time.Second)
	if !slices.Equal(datas(got), []string{"b"}) || got[0].Seq != 5 || got[0].Attempts != 0 {
		t.Fatalf("replayed: %+v", got)
	}
	if n, err := q.DropDead(ctx, "t", 3); err != nil || n != 1 {
		t.Fatalf("DropDead(3): %d, %v", n, err)
	}
	if n, err := q.Replay(ctx, "t"); err != nil || n != 1 {
		t.Fatalf("Replay all: %d, %v", n, err)
	}
	got = next(t, c, 10, time.Second)
	if !slices.Equal(datas(got), []string{"a"}) {
		t.Fatalf("replayed all: %q", datas(got))
	}
	for _, it := range got {
		if err := c.Dead(ctx, it, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := q.DropDead(ctx, "t"); err != nil || n != 1 {
		t.Fatalf("DropDead all: %d, %v", n, err)
	}
	if dead, _ := q.DeadLetters("t", 0, 0); len(dead) != 0 {
		t.Fatalf("after DropDead: %+v", dead)
	}
	// d (in flight) and b (in flight after the replay) remain.
	used, _ := q.Usage()
	if want := int64(2 * (1 + ItemOverhead)); used != want {
		t.Fatalf("usage %d, want %d", used, want)
	}
}

func TestReplayAllInChunks(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	ctx := context.Background()
	n := replayChunk + 10
	items := make([][]byte, n)
	for i := range items {
		items[i] = fmt.Appendf(nil, "%d", i)
	}
	if err := q.Append(ctx, "t", items...); err != nil {
		t.Fatal(err)
	}
	c := q.Consumer("t")
	for _, it := range next(t, c, n, time.Second) {
		if err := c.Dead(ctx, it, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := q.Replay(ctx, "t"); err != nil || got != n {
		t.Fatalf("Replay all: %d, %v", got, err)
	}
	got := next(t, c, 2*n, time.Second)
	if len(got) != n || string(got[0].Data) != "0" || string(got[n-1].Data) != fmt.Sprint(n-1) {
		t.Fatalf("replayed %d items, first %q", len(got), got[0].Data)
	}
}

func TestMove(t *testing.T) {
	q, _ := open(t, Options{})
	ctx := context.Background()
	if err := q.Append(ctx, "inbox", bs("e1", "e2", "e3")...); err != nil {
		t.Fatal(err)
	}
	in := q.Consumer("inbox")
	items := next(t, in, 2, time.Second)
	to := map[Topic][][]byte{"dest:a": bs("e1>a", "e2>a"), "dest:b": bs("e2>b")}
	if err := q.Move(ctx, in, items, to); err != nil {
		t.Fatal(err)
	}
	if err := q.Move(ctx, in, items[:1], map[Topic][][]byte{"dest:a": bs("dup")}); !errors.Is(err, ErrNotInFlight) {
		t.Fatalf("second Move of the same items: %v", err)
	}
	q = reopen(t, q, Options{})
	if got := datas(next(t, q.Consumer("inbox"), 10, time.Second)); !slices.Equal(got, []string{"e3"}) {
		t.Fatalf("inbox after the move: %q", got)
	}
	if got := datas(next(t, q.Consumer("dest:a"), 10, time.Second)); !slices.Equal(got, []string{"e1>a", "e2>a"}) {
		t.Fatalf("dest:a: %q", got)
	}
	if got := datas(next(t, q.Consumer("dest:b"), 10, time.Second)); !slices.Equal(got, []string{"e2>b"}) {
		t.Fatalf("dest:b: %q", got)
	}
}

// TestMoveFailsWhole makes the transaction of a Move fail half-way (a
// destination whose bucket key holds a plain value) and checks that
// nothing of it happened.
// TestMoveFailsWhole makes the batch of a Move fail as an I/O error
// would, and checks that nothing of it happened.
func TestMoveFailsWhole(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	ctx := context.Background()
	if err := q.Append(ctx, "inbox", bs("e1")...); err != nil {
		t.Fatal(err)
	}
	in := q.Consumer("inbox")
	items := next(t, in, 1, time.Second)
	q.beforeApply = func(*pebble.Batch) error { return errors.New("disk on fire") }
	to := map[Topic][][]byte{"ok": bs("x"), "other": bs("y")}
	if err := q.Move(ctx, in, items, to); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Move with a failing write: %v", err)
	}
	q.beforeApply = nil
	if s := stats(t, q, "inbox"); s.InFlight != 1 {
		t.Fatalf("inbox after the failed Move: %+v", s)
	}
	for _, topic := range []Topic{"ok", "other"} {
		if s := stats(t, q, topic); s != (Stats{}) {
			t.Fatalf("%s after the failed Move: %+v", topic, s)
		}
	}
	if used, _ := q.Usage(); used != int64(len("e1"))+ItemOverhead {
		t.Fatalf("Usage after the failed Move: %d", used)
	}
	// The items are still in flight and can be moved elsewhere.
	if err := q.Move(ctx, in, items, map[Topic][][]byte{"ok": bs("x")}); err != nil {
		t.Fatal(err)
	}
	if got := datas(next(t, q.Consumer("ok"), 10, time.Second)); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("ok: %q", got)
	}
	// Nothing of the failed batch reached the store.
	q = reopen(t, q, Options{Sync: SyncNever})
	if got := datas(next(t, q.Consumer("ok"), 10, time.Second)); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("ok after reopen: %q", got)
	}
	for _, topic := range []Topic{"inbox", "other"} {
		if s, err := q.Stats(topic); err == nil && s != (Stats{}) {
			t.Fatalf("%s after reopen: %+v", topic, s)
		}
	}
}

func TestFull(t *testing.T) {
	const itemLen = 100
	limit := int64(5 * (itemLen + ItemOverhead))
	q, _ := open(t, Options{Sync: SyncNever, MaxBytes: limit})
	ctx := context.Background()
	item := make([]byte, itemLen)
	for range 5 {
		if err := q.Append(ctx, "t", item); err != nil {
			t.Fatal(err)
		}
	}
	err := q.Append(ctx, "t", item)
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Append past MaxBytes: %v", err)
	}
	if !strings.Contains(err.Error(), "max_bytes") {
		t.Errorf("the error does not say which bound: %v", err)
	}
	if used, max := q.Usage(); used != limit || max != limit {
		t.Fatalf("usage %d/%d, want %d", used, max, limit)
	}
	// Dead letters count too; dropping them makes room.
	c := q.Consumer("t")
	items := next(t, c, 2, time.Second)
	if err := c.Dead(ctx, items[0], "x"); err != nil {
		t.Fatal(err)
	}
	if err := q.Append(ctx, "t", item); !errors.Is(err, ErrFull) {
		t.Fatalf("Append after Dead: %v", err)
	}
	if _, err := q.DropDead(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if err := q.Append(ctx, "t", item); err != nil {
		t.Fatalf("Append after DropDead: %v", err)
	}
	// Moves are not refused for space.
	if err := q.Move(ctx, c, items[1:], map[Topic][][]byte{"d1": {item}, "d2": {item}}); err != nil {
		t.Fatalf("Move when full: %v", err)
	}
	if used, _ := q.Usage(); used != limit+itemLen+ItemOverhead {
		t.Fatalf("usage after the move: %d", used)
	}
	// The bound survives a restart.
	q = reopen(t, q, Options{Sync: SyncNever, MaxBytes: limit})
	if err := q.Append(ctx, "t", []byte{1}); !errors.Is(err, ErrFull) {
		t.Fatalf("Append after reopen: %v", err)
	}
}

func TestLockedByAnotherProcess(t *testing.T) {
	_, path := open(t, Options{})
	start := time.Now()
	_, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("second Open took %v", d)
	}
}

func TestClose(t *testing.T) {
	q, _ := open(t, Options{})
	c := q.Consumer("t")
	errc := make(chan error, 1)
	go func() {
		_, err := c.Next(ctxT(t, 10*time.Second), 1, 0)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Next after Close: %v", err)
	}
	ctx := context.Background()
	if err := q.Append(ctx, "t", []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := c.Next(ctx, 1, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	if _, err := q.Stats("t"); !errors.Is(err, ErrClosed) {
		t.Errorf("Stats after Close: %v", err)
	}
	if _, err := q.DeadLetters("t", 0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("DeadLetters after Close: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSyncInterval(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncInterval, Interval: 5 * time.Millisecond})
	if err := q.Append(context.Background(), "t", bs("a")...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(15 * time.Millisecond) // a sync or two
	q = reopen(t, q, Options{Sync: SyncInterval})
	if got := datas(next(t, q.Consumer("t"), 1, time.Second)); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("got %q", got)
	}
}

func TestCorruptItemGoesToDeadLetters(t *testing.T) {
	q, path := open(t, Options{Sync: SyncNever})
	ctx := context.Background()
	if err := q.Append(ctx, "t", bs("a", "b", "c")...); err != nil {
		t.Fatal(err)
	}
	q.Close()
	db, err := pebble.Open(path, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Set(newTopic("t").itemKey(2), []byte{9, 9, 9}, pebble.Sync)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	q, err = Open(path, Options{Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if got := datas(next(t, q.Consumer("t"), 10, time.Second)); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("got %q", got)
	}
	dead, err := q.DeadLetters("t", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].Seq != 2 || string(dead[0].Data) != "\x09\x09\x09" || !strings.Contains(dead[0].Reason, "corrupt") {
		t.Fatalf("dead letters: %+v", dead)
	}
}

func TestStatsCountEveryState(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	ctx := context.Background()
	if err := q.Append(ctx, "t", bs("1", "22", "333", "4444", "55555")...); err != nil {
		t.Fatal(err)
	}
	c := q.Consumer("t")
	items := next(t, c, 4, time.Second)
	if err := c.Retry(ctx, items[0], time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := c.Dead(ctx, items[1], "x"); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(ctx, items[2]); err != nil {
		t.Fatal(err)
	}
	want := Stats{Ready: 1, ReadyBytes: 5, InFlight: 1, InFlightBytes: 4, Retrying: 1, RetryingBytes: 1, Dead: 1, DeadBytes: 2}
	if s := stats(t, q, "t"); s != want {
		t.Fatalf("stats %+v, want %+v", s, want)
	}
	// After a restart the in-flight item is ready again.
	q = reopen(t, q, Options{Sync: SyncNever})
	want = Stats{Ready: 2, ReadyBytes: 9, Retrying: 1, RetryingBytes: 1, Dead: 1, DeadBytes: 2}
	if s := stats(t, q, "t"); s != want {
		t.Fatalf("stats after reopen %+v, want %+v", s, want)
	}
	if used, _ := q.Usage(); used != 1+2+4+5+4*ItemOverhead {
		t.Fatalf("usage after reopen: %d", used)
	}
}

func TestSyncPolicyText(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		b, err := p.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back SyncPolicy = 99
		if err := back.UnmarshalText(b); err != nil || back != p {
			t.Fatalf("%v: round trip gave %v, %v", p, back, err)
		}
	}
	var p SyncPolicy
	if p != SyncInterval {
		t.Fatalf("the zero SyncPolicy is %v; the default is interval", p)
	}
	p = SyncNever
	if err := p.UnmarshalText(nil); err != nil || p != SyncInterval {
		t.Fatalf("an empty policy reads as %v, %v; want the default, interval", p, err)
	}
	if err := p.UnmarshalText([]byte("sometimes")); err == nil || !strings.Contains(err.Error(), "always, interval or never") {
		t.Fatalf("unknown policy: %v", err)
	}
	if _, err := SyncPolicy(9).MarshalText(); err == nil {
		t.Fatal("MarshalText of an unknown policy: no error")
	}
}

// TestConcurrentAppendersAndConsumers runs appenders and consumers (which
// retry some items once) at the same time and checks that every item is
// acknowledged exactly once.
func TestConcurrentAppendersAndConsumers(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever})
	ctx := context.Background()
	const appenders, appends, perAppend = 4, 100, 5
	const total = appenders * appends * perAppend
	var wg sync.WaitGroup
	for a := range appenders {
		wg.Go(func() {
			for i := range appends {
				items := make([][]byte, perAppend)
				for j := range items {
					items[j] = fmt.Appendf(nil, "%d-%d-%d", a, i, j)
				}
				if err := q.Append(ctx, "t", items...); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	c := q.Consumer("t")
	var mu sync.Mutex
	acked := map[string]int{}
	done := make(chan struct{})
	var finish sync.Once
	var cwg sync.WaitGroup
	for range 3 {
		cwg.Go(func() {
			for {
				items, err := c.Next(ctxT(t, 10*time.Second), 16, 0)
				if err != nil {
					select {
					case <-done:
					default:
						t.Error(err)
					}
					return
				}
				var ack []Item
				for _, it := range items {
					if it.Attempts == 0 && it.Seq%7 == 0 {
						if err := c.Retry(ctx, it, time.Now().Add(time.Millisecond)); err != nil {
							t.Error(err)
						}
						continue
					}
					ack = append(ack, it)
				}
				if err := c.Ack(ctx, ack...); err != nil {
					t.Error(err)
				}
				mu.Lock()
				for _, it := range ack {
					acked[string(it.Data)]++
				}
				n := len(acked)
				mu.Unlock()
				if n == total {
					finish.Do(func() {
						close(done)
						q.Close() // wakes the other consumers
					})
					return
				}
			}
		})
	}
	wg.Wait()
	cwg.Wait()
	if len(acked) != total {
		t.Fatalf("%d distinct items acknowledged, want %d", len(acked), total)
	}
	for d, n := range acked {
		if n != 1 {
			t.Fatalf("item %s acknowledged %d times", d, n)
		}
	}
}

// TestAllocs guards the allocations of the hot path: an Append of 100
// items, and a Next and Ack of 100. Nearly all of them are bbolt's (about
// 90 per transaction and 5 per item written or deleted); the queue's own
// are a few per call, none per item but the map entries of in-flight
// items.
func TestAllocs(t *testing.T) {
	q, _ := open(t, Options{Sync: SyncNever, MaxBytes: -1})
	ctx := context.Background()
	batch := make([][]byte, 100)
	for i := range batch {
		batch[i] = make([]byte, 1024)
	}
	if a := testing.AllocsPerRun(100, func() {
		if err := q.Append(ctx, "t", batch...); err != nil {
			t.Fatal(err)
		}
	}); a > 650 {
		t.Errorf("Append of 100 items: %.0f allocations, want at most 650", a)
	}
	c := q.Consumer("t")
	if a := testing.AllocsPerRun(100, func() {
		items, err := c.Next(ctx, 100, 0)
		if err == nil {
			err = c.Ack(ctx, items...)
		}
		if err != nil || len(items) != 100 {
			t.Fatal(len(items), err)
		}
	}); a > 650 {
		t.Errorf("Next and Ack of 100 items: %.0f allocations, want at most 650", a)
	}
}
