package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/insertfn/insertfn/internal/queue"
	"github.com/insertfn/insertfn/internal/queue/jetstream/jstest"
	"github.com/insertfn/insertfn/internal/queue/queuetest"
)

// next calls Next with a deadline of d and fails the test on an error.
func next(t testing.TB, c queue.Consumer, max int, d time.Duration) []queue.Item {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	items, err := c.Next(ctx, max, 0)
	if err != nil {
		t.Fatalf("Next of %q: %v", c.Topic(), err)
	}
	return items
}

// takeN calls Next until it has n items, within d.
func takeN(t testing.TB, c queue.Consumer, n int, d time.Duration) []queue.Item {
	t.Helper()
	deadline := time.Now().Add(d)
	var out []queue.Item
	for len(out) < n {
		out = append(out, next(t, c, n-len(out), time.Until(deadline))...)
	}
	return out
}

// nothing fails the test unless Next hands out nothing for d.
func nothing(t testing.TB, c queue.Consumer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if items, err := c.Next(ctx, 100, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next of %q: %d items, %v; want nothing for %v", c.Topic(), len(items), err, d)
	}
}

func datas(items []queue.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it.Data)
	}
	return out
}

func TestTopicNames(t *testing.T) {
	topics := []queue.Topic{
		"inbox", "health", "dest:webhook-1", "dest:Web_1", "a.b", "a_b", "a-b", "a b", "A.B", "a*", "a>",
		"$JS.API", ".", "ünï", "a\x00b", "\xff\xfe", "_41", "_h", queue.Topic(strings.Repeat("n", queue.MaxTopicLen)),
		queue.Topic(strings.Repeat("n", queue.MaxTopicLen-1) + "m"),
	}
	streams := map[string]queue.Topic{}
	for _, topic := range topics {
		n := namesOf("P", topic)
		back, err := unescapeTopic(n.escaped)
		if err != nil || back != topic {
			t.Errorf("%q escapes to %q, back to %q, %v", topic, n.escaped, back, err)
		}
		if other, dup := streams[n.itemsName]; dup {
			t.Errorf("%q and %q share the stream %s", topic, other, n.itemsName)
		}
		streams[n.itemsName] = topic
		if len(n.itemsName) > 200 || strings.ContainsAny(n.itemsName, ". *>/\\\x00") || n.itemsName != strings.TrimSpace(n.itemsName) {
			t.Errorf("%q: stream name %q", topic, n.itemsName)
		}
		for _, tok := range strings.Split(n.subject, ".") {
			if tok == "" || strings.ContainsAny(tok, " *>\t\r\n") {
				t.Errorf("%q: subject %q", topic, n.subject)
			}
		}
	}
	if got := namesOf("INSERTFN", "dest:Web_1"); got.itemsName != "INSERTFN_Q_dest_3A_57eb_5F1" || got.subject != "INSERTFN.q.dest_3A_57eb_5F1" {
		t.Errorf("names of dest:Web_1: %+v", got)
	}
	for _, bad := range []string{"A", "_4", "_4g", "a.b", "_4a"} {
		if _, err := unescapeTopic(bad); err == nil {
			t.Errorf("unescapeTopic(%q): no error", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	var zero Options
	if err := zero.Validate(); err != nil {
		t.Fatalf("the zero Options: %v", err)
	}
	bad := Options{
		URLs:     []string{" "},
		Replicas: 7,
		Prefix:   "a.b",
		AckWait:  30,
		Storage:  "disk",
		User:     "u",
		Token:    "t",
		TLS:      TLSOptions{CertFile: "/nonexistent/cert.pem"},
	}
	err := errors.Join(bad.Validate(), (&Options{AckWait: time.Minute, DuplicateWindow: time.Second}).Validate())
	for _, key := range []string{"urls[0]", "replicas", "prefix", "ack_wait", "duplicate_window", "storage", "credentials_file", "tls.cert_file", "tls.key_file"} {
		if !strings.Contains(err.Error(), "queue.jetstream."+key+":") {
			t.Errorf("no error about %s in:\n%v", key, err)
		}
	}
	var ke *KeyError
	if !errors.As(err, &ke) || ke.ConfigKey() == "" || ke.ConfigProblem() == "" {
		t.Errorf("not a KeyError: %v", err)
	}
}

// TestAcrossServers appends through one server of a cluster of three
// and consumes through another: the streams have three replicas, and
// each host's connection is to a server of its own.
func TestAcrossServers(t *testing.T) {
	cl := sharedCluster(t)
	opts := testOptions([]string{cl.URL(0)})
	qa := openQueue(t, opts)
	opts.URLs = []string{cl.URL(1)}
	qb := openQueue(t, opts)
	if a, b := qa.nc.ConnectedServerName(), qb.nc.ConnectedServerName(); a == b {
		t.Fatalf("both handles on server %s", a)
	}
	ctx := context.Background()
	if err := qa.Append(ctx, queue.InboxTopic, []byte("1"), []byte("2"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	c := qb.Consumer(queue.InboxTopic)
	got := takeN(t, c, 3, 5*time.Second)
	if !slices.Equal(datas(got), []string{"1", "2", "3"}) {
		t.Fatalf("on the other server: %q", datas(got))
	}
	if err := c.Ack(ctx, got...); err != nil {
		t.Fatal(err)
	}
	info, err := qa.js.Stream(ctx, namesOf(opts.Prefix, queue.InboxTopic).itemsName)
	if err != nil {
		t.Fatal(err)
	}
	si := info.CachedInfo()
	if si.Config.Replicas != 3 || si.Cluster == nil || len(si.Cluster.Replicas) != 2 {
		t.Fatalf("stream of %d replicas, cluster %+v", si.Config.Replicas, si.Cluster)
	}
	nothing(t, qa.Consumer(queue.InboxTopic), 100*time.Millisecond)
}

// TestHostDies: the items a handle holds are not handed to another
// handle while it lives, also past AckWait (it keeps them alive); when
// it dies without a word (its connection closes) they come back to the
// other after AckWait, not before, with Attempts unchanged; when it
// closes, at once.
func TestHostDies(t *testing.T) {
	cl := sharedCluster(t)
	opts := testOptions([]string{cl.URL(0)})
	q1 := openQueue(t, opts)
	opts.URLs = []string{cl.URL(1)}
	q2 := openQueue(t, opts)
	ctx := context.Background()
	const topic = queue.Topic("dies")
	if err := q1.Append(ctx, topic, []byte("a"), []byte("b"), []byte("c")); err != nil {
		t.Fatal(err)
	}
	c1, c2 := q1.Consumer(topic), q2.Consumer(topic)
	first := takeN(t, c1, 2, 5*time.Second)
	if err := c1.Retry(ctx, first[1], time.Time{}); err != nil { // b: Attempts 1
		t.Fatal(err)
	}
	held := takeN(t, c1, 2, 5*time.Second) // b again, and c
	nothing(t, c2, 2*testAckWait)

	q1.crash()
	died := time.Now()
	got := takeN(t, c2, 3, 5*time.Second)
	// Kept alive every third of AckWait, they come back between two
	// thirds of it and all of it after the crash.
	if d := time.Since(died); d < testAckWait/3 {
		t.Fatalf("items of a host that died back after %v, before AckWait %v", d, testAckWait)
	}
	slices.SortFunc(got, func(a, b queue.Item) int { return int(a.Seq) - int(b.Seq) })
	want := map[string]int{"a": 0, "b": 1, "c": 0}
	for _, it := range got {
		if a, ok := want[string(it.Data)]; !ok || it.Attempts != a {
			t.Fatalf("after the crash: %q attempts %d (held %q)", it.Data, it.Attempts, datas(held))
		}
	}
	// q2 closes holding them: a third handle gets them at once.
	q3 := openQueue(t, opts)
	c3 := q3.Consumer(topic)
	if err := q2.Close(); err != nil {
		t.Fatal(err)
	}
	closed := time.Now()
	back := takeN(t, c3, 3, 5*time.Second)
	if d := time.Since(closed); d > testAckWait {
		t.Fatalf("items of a closed handle back after %v", d)
	}
	if err := c3.Ack(ctx, back...); err != nil {
		t.Fatal(err)
	}
	nothing(t, c3, 100*time.Millisecond)
}

// TestLeaderLoss stops the server that leads the inbox's stream while
// items are appended and consumed through the other two: every item
// whose Append returned nil is consumed (at least once).
func TestLeaderLoss(t *testing.T) {
	cl := jstest.Start(t, 3)
	opts := testOptions([]string{cl.URL(0)})
	qa := openQueue(t, opts)
	ctx := context.Background()
	if err := qa.Append(ctx, queue.InboxTopic, []byte("first")); err != nil {
		t.Fatal(err)
	}
	leader, err := cl.StreamLeader(namesOf(opts.Prefix, queue.InboxTopic).itemsName, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The appender and the consumer connect to the two others.
	opts.URLs = []string{cl.URL((leader + 1) % 3)}
	qa = openQueue(t, opts)
	opts.URLs = []string{cl.URL((leader + 2) % 3)}
	qc := openQueue(t, opts)

	run, stop := context.WithTimeout(ctx, 25*time.Second)
	defer stop()
	var mu sync.Mutex
	acked := map[string]bool{"first": true}
	seen := map[string]int{}
	var failed int
	const n = 300
	appended := make(chan struct{})
	go func() {
		defer close(appended)
		for i := 0; i < n && run.Err() == nil; i++ {
			item := fmt.Sprintf("item-%d", i)
			for run.Err() == nil {
				actx, cancel := context.WithTimeout(run, 2*time.Second)
				err := qa.Append(actx, queue.InboxTopic, []byte(item))
				cancel()
				if err == nil {
					mu.Lock()
					acked[item] = true
					mu.Unlock()
					break
				}
				mu.Lock()
				failed++
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
			if i == n/3 {
				cl.Stop(leader)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	c := qc.Consumer(queue.InboxTopic)
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		select {
		case <-appended:
		default:
			return false
		}
		for item := range acked {
			if seen[item] == 0 {
				return false
			}
		}
		return true
	}
	for !done() && run.Err() == nil {
		nctx, cancel := context.WithTimeout(run, 500*time.Millisecond)
		items, err := c.Next(nctx, 50, 0)
		cancel()
		if err != nil {
			continue
		}
		mu.Lock()
		for _, it := range items {
			seen[string(it.Data)]++
		}
		mu.Unlock()
		_ = c.Ack(run, items...) // one that fails comes back after AckWait
	}
	mu.Lock()
	defer mu.Unlock()
	var lost []string
	for item := range acked {
		if seen[item] == 0 {
			lost = append(lost, item)
		}
	}
	if len(lost) > 0 || len(acked) < n/2 {
		t.Fatalf("%d of %d acknowledged items never consumed (%d appends failed during the election): %q", len(lost), len(acked), failed, lost)
	}
	dups := 0
	for _, k := range seen {
		dups += k - 1
	}
	now, err := cl.StreamLeader(namesOf(opts.Prefix, queue.InboxTopic).itemsName, 5*time.Second)
	if err != nil || now == leader {
		t.Fatalf("stream leader after the stop: server %d (%v), before: %d", now, err, leader)
	}
	t.Logf("%d items acknowledged, %d appends failed and were tried again, %d handed out twice; leader server %d, then %d",
		len(acked), failed, dups, leader, now)
}

// TestMoveReplayed: a Move whose acknowledgement is lost (its host dies
// after the publishes) is done again by another host once the items come
// back, with the same outputs: the destinations get each output once.
// The outputs to a topic are one message (a pack): when one of them
// differs the second time, the pack is appended again, whole.
func TestMoveReplayed(t *testing.T) {
	cl := sharedCluster(t)
	opts := testOptions([]string{cl.URL(0)})
	q1 := openQueue(t, opts)
	opts.URLs = []string{cl.URL(2)}
	q2 := openQueue(t, opts)
	ctx := context.Background()
	x, y := queue.DestinationTopic("x"), queue.DestinationTopic("y")
	if err := q1.Append(ctx, queue.InboxTopic, []byte("e1"), []byte("e2")); err != nil {
		t.Fatal(err)
	}
	in1 := q1.Consumer(queue.InboxTopic)
	items := takeN(t, in1, 2, 5*time.Second)
	to := func(last string) map[queue.Topic][][]byte {
		return map[queue.Topic][][]byte{
			x: {[]byte("e1>x"), []byte("same"), []byte("same")},
			y: {[]byte("e2>y"), []byte(last)},
		}
	}
	crash := errors.New("crash before the acknowledgement")
	q1.beforeMoveAck = func() error { return crash }
	if err := q1.Move(ctx, in1, items, to("v1")); !errors.Is(err, crash) {
		t.Fatalf("Move: %v", err)
	}
	q1.crash()

	in2 := q2.Consumer(queue.InboxTopic)
	again := takeN(t, in2, 2, 5*time.Second)
	if !slices.Equal(datas(again), datas(items)) || again[0].Seq != items[0].Seq {
		t.Fatalf("after the crash: %q", datas(again))
	}
	if err := q2.Move(ctx, in2, again, to("v2")); err != nil {
		t.Fatal(err)
	}
	cx, cy := q2.Consumer(x), q2.Consumer(y)
	if got := takeN(t, cx, 3, 5*time.Second); !slices.Equal(datas(got), []string{"e1>x", "same", "same"}) {
		t.Fatalf("%s: %q", x, datas(got))
	}
	// y's outputs are one pack, which changed the second time: appended
	// again whole.
	if got := takeN(t, cy, 4, 5*time.Second); !slices.Equal(datas(got), []string{"e2>y", "v1", "e2>y", "v2"}) {
		t.Fatalf("%s: %q", y, datas(got))
	}
	nothing(t, cx, 200*time.Millisecond)
	nothing(t, cy, 10*time.Millisecond)
	nothing(t, in2, 10*time.Millisecond)
}

// TestFull: an Append past MaxBytes fails with ErrFull and stores
// nothing; so does one a server refuses for its own storage limit.
func TestFull(t *testing.T) {
	t.Run("max_bytes", func(t *testing.T) {
		cl := jstest.Start(t, 1)
		opts := testOptions(cl.URLs())
		opts.MaxBytes = 10 << 10
		q := openQueue(t, opts)
		ctx := context.Background()
		item := queuetest.Incompressible(1000) // compression does not shrink it
		n := 0
		var err error
		for ; n < 20; n++ {
			if err = q.Append(ctx, "full", item); err != nil {
				break
			}
		}
		if !errors.Is(err, queue.ErrFull) || !strings.Contains(err.Error(), "max_bytes") || n < 8 {
			t.Fatalf("after %d items of 1000 bytes under a bound of 10 KiB: %v", n, err)
		}
		if used, limit := q.Usage(); used > limit || limit != opts.MaxBytes {
			t.Fatalf("Usage %d of %d", used, limit)
		}
		s, err := q.Stats("full")
		if err != nil || s.Ready != n {
			t.Fatalf("Stats: %+v, %v; want %d ready", s, err, n)
		}
	})
	t.Run("server", func(t *testing.T) {
		cl := jstest.StartWith(t, 1, func(_ int, o *server.Options) { o.JetStreamMaxStore = 64 << 10 })
		opts := testOptions(cl.URLs())
		opts.MaxBytes = -1
		q := openQueue(t, opts)
		ctx := context.Background()
		item := queuetest.Incompressible(1000) // compression does not shrink it
		var err error
		for n := 0; n < 200; n++ {
			if err = q.Append(ctx, "full", item); err != nil {
				break
			}
		}
		if !errors.Is(err, queue.ErrFull) {
			t.Fatalf("past the server's storage: %v", err)
		}
	})
}

// TestNextRefused: a configuration the servers refuse (three replicas on
// a lone server) fails Append and Next with the servers' error, rather
// than leaving Next waiting.
func TestNextRefused(t *testing.T) {
	cl := jstest.Start(t, 1)
	opts := testOptions(cl.URLs())
	opts.Replicas = 3
	q := openQueue(t, opts)
	if err := q.Append(context.Background(), "r3", []byte("x")); err == nil || errors.Is(err, queue.ErrFull) {
		t.Fatalf("Append to a stream of 3 replicas on a lone server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := q.Consumer("r3").Next(ctx, 1, 0); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next of a stream of 3 replicas on a lone server: %v", err)
	}
}

// TestPacks: a Move's outputs to a topic are one message, unpacked into
// items of ascending Seq that Next hands out within its bounds; a Retry
// of one item comes back alone with its Seq and Attempts one more, a Dead
// one is a dead letter under its Seq, and the message is acknowledged
// once every item is settled. A handle that closes holding a pack partly
// settled gives back only the items not settled; one that dies gives
// back the whole pack.
func TestPacks(t *testing.T) {
	cl := sharedCluster(t)
	opts := testOptions([]string{cl.URL(0)})
	q1 := openQueue(t, opts)
	ctx := context.Background()
	const topic = queue.Topic("packs")
	move := func(q *Queue, n int, tag string) {
		t.Helper()
		if err := q.Append(ctx, queue.InboxTopic, []byte(tag)); err != nil {
			t.Fatal(err)
		}
		in := q.Consumer(queue.InboxTopic)
		done := takeN(t, in, 1, 5*time.Second)
		out := make([][]byte, n)
		for i := range out {
			out[i] = fmt.Appendf(nil, "%s-%03d", tag, i)
		}
		if err := q.Move(ctx, in, done, map[queue.Topic][][]byte{topic: out}); err != nil {
			t.Fatal(err)
		}
	}
	move(q1, 300, "a")
	info, err := q1.js.Stream(ctx, namesOf(opts.Prefix, topic).itemsName)
	if err != nil {
		t.Fatal(err)
	}
	if si, err := info.Info(ctx); err != nil || si.State.Msgs != 1 {
		t.Fatalf("300 items moved: %d messages, %v; want 1", si.State.Msgs, err)
	}
	c := q1.Consumer(topic)
	first := next(t, c, 100, 5*time.Second)
	if len(first) != 100 || string(first[0].Data) != "a-000" || string(first[99].Data) != "a-099" {
		t.Fatalf("Next of 100: %d items, %q...", len(first), datas(first[:1]))
	}
	for i := 1; i < len(first); i++ {
		if first[i].Seq <= first[i-1].Seq {
			t.Fatalf("seq %d after %d", first[i].Seq, first[i-1].Seq)
		}
	}
	eventuallyStats(t, q1, topic, queue.Stats{Ready: 200, InFlight: 100})
	if err := c.Retry(ctx, first[0], time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Dead(ctx, first[1], "dead one"); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(ctx, first[2:]...); err != nil {
		t.Fatal(err)
	}
	eventuallyStats(t, q1, topic, queue.Stats{Ready: 201, Dead: 1})
	rest := takeN(t, c, 201, 5*time.Second)
	var retried *queue.Item
	for i, it := range rest {
		if it.Seq == first[0].Seq {
			retried = &rest[i]
		}
	}
	if retried == nil || string(retried.Data) != "a-000" || retried.Attempts != 1 {
		t.Fatalf("retried item: %+v", retried)
	}
	if dead, err := q1.DeadLetters(topic, 0, 0); err != nil || len(dead) != 1 || dead[0].Seq != first[1].Seq || string(dead[0].Data) != "a-001" {
		t.Fatalf("dead letters: %+v, %v", dead, err)
	}
	if err := c.Ack(ctx, rest...); err != nil {
		t.Fatal(err)
	}
	nothing(t, c, 100*time.Millisecond)
	if si, err := info.Info(ctx); err != nil || si.State.Msgs != 0 {
		t.Fatalf("every item settled: %d messages left, %v", si.State.Msgs, err)
	}

	// Closes with a pack partly settled: the others come back at once.
	move(q1, 3, "b")
	b := takeN(t, c, 3, 5*time.Second)
	if err := c.Ack(ctx, b[1]); err != nil {
		t.Fatal(err)
	}
	if err := q1.Close(); err != nil {
		t.Fatal(err)
	}
	opts.URLs = []string{cl.URL(1)}
	q2 := openQueue(t, opts)
	c2 := q2.Consumer(topic)
	back := takeN(t, c2, 2, 5*time.Second)
	if !slices.Equal(datas(back), []string{"b-000", "b-002"}) || back[0].Seq != b[0].Seq || back[1].Seq != b[2].Seq {
		t.Fatalf("after Close: %q seqs %d, %d; want b-000, b-002 seqs %d, %d", datas(back), back[0].Seq, back[1].Seq, b[0].Seq, b[2].Seq)
	}
	// Dies holding a pack: it comes back whole to another.
	move(q2, 2, "c")
	held := takeN(t, c2, 2, 5*time.Second)
	if err := c2.Ack(ctx, held[0]); err != nil {
		t.Fatal(err)
	}
	q2.crash()
	opts.URLs = []string{cl.URL(2)}
	q3 := openQueue(t, opts)
	c3 := q3.Consumer(topic)
	again := takeN(t, c3, 4, 5*time.Second)
	if got := datas(again); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"b-000", "b-002", "c-000", "c-001"}) {
		t.Fatalf("after the crash: %q", got)
	}
	if err := c3.Ack(ctx, again...); err != nil {
		t.Fatal(err)
	}
	nothing(t, c3, 100*time.Millisecond)
}

// eventuallyStats waits until the topic's Stats are want (the byte
// counts not compared).
func eventuallyStats(t testing.TB, q *Queue, topic queue.Topic, want queue.Stats) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := q.Stats(topic)
		if err != nil {
			t.Fatal(err)
		}
		s.ReadyBytes, s.InFlightBytes, s.RetryingBytes, s.DeadBytes = 0, 0, 0, 0
		if s == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stats of %q: %+v, want %+v", topic, s, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestUnpack(t *testing.T) {
	tp := &topic{names: namesOf("P", "x")}
	m := packMsg(tp, []entry{{data: []byte("a")}, {seq: 7, attempts: 2, data: []byte("")}, {data: []byte("ccc")}})
	if m.Subject != "P.q.x.3" {
		t.Fatalf("subject %q", m.Subject)
	}
	got, nb, err := unpack(m.Header, m.Data, 5)
	if err != nil || !nb.IsZero() || len(got) != 3 {
		t.Fatalf("unpack: %+v, %v, %v", got, nb, err)
	}
	if got[0].seq != 5<<16 || string(got[0].data) != "a" || got[1].seq != 7 || got[1].attempts != 2 || got[2].seq != 5<<16|2 || string(got[2].data) != "ccc" {
		t.Fatalf("unpack: %+v", got)
	}
	if _, _, err := unpack(m.Header, m.Data[:len(m.Data)-1], 5); err == nil {
		t.Fatal("a truncated pack unpacks")
	}
	plain, _, err := unpack(nil, []byte("raw"), 9)
	if err != nil || len(plain) != 1 || plain[0].seq != 9<<16 || string(plain[0].data) != "raw" {
		t.Fatalf("plain: %+v, %v", plain, err)
	}
}
