package queuetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/insertfn/insertfn/internal/queue"
)

// The cases of several hosts run with Backend.Shared: two handles on one
// queue, as two hosts of a cluster have. Each topic has one logical
// consumer shared by every host.

// hostsShare: items appended on either host are seen by both (Stats,
// Topics), and two hosts consuming one topic together get each item once.
func (s *suite) hostsShare(t *testing.T) {
	q1 := s.open(t, 0)
	q2 := s.shared(t, q1)
	const topic, n = queue.Topic("conf-hosts"), 200
	for i, q := range []queue.Queue{q1, q2} {
		items := make([][]byte, n/2)
		for j := range items {
			items[j] = fmt.Appendf(nil, "%d", i*n/2+j)
		}
		must(t, fmt.Sprintf("Append on host %d", i+1), q.Append(context.Background(), topic, items...))
	}
	for i, q := range []queue.Queue{q1, q2} {
		statsAre(t, q, topic, arrive, queue.Stats{Ready: n}, false)
		eventually(t, arrive, fmt.Sprintf("Topics on host %d", i+1), func() error {
			if got := q.Topics(); !contains(got, topic) {
				return fmt.Errorf("%q, without %q", got, topic)
			}
			return nil
		})
	}
	c1, c2 := q1.Consumer(topic), q2.Consumer(topic)
	seen := consumeAll(t, n, c1, c1, c2, c2)
	expectNoneAll(t, quiet, c1, c2)
	for i := range n {
		if k := seen[fmt.Sprint(i)]; k != 1 {
			t.Fatalf("item %d handed out %d times", i, k)
		}
	}
}

// hostsRedeliver: an item one host holds is not handed out to another
// while that host's handle lives, also past RedeliveryWait; once the
// handle closes without settling it, the other host gets it, within
// RedeliveryWait, with its sequence number and Attempts (the redelivery
// does not count).
func (s *suite) hostsRedeliver(t *testing.T) {
	q1 := s.open(t, 0)
	q2 := s.shared(t, q1)
	const topic = queue.Topic("conf-hosts-redeliver")
	add(t, q1, topic, "held")
	held := take(t, q1.Consumer(topic), 1, arrive)[0]
	c2 := q2.Consumer(topic)
	expectNone(t, c2, s.b.RedeliveryWait+quiet)

	must(t, "Close of host 1", q1.Close())
	got := take(t, c2, 1, s.redelivery())[0]
	if string(got.Data) != "held" || got.Seq != held.Seq || got.Attempts != 0 {
		t.Fatalf("on host 2 after host 1 closed: %q seq %d attempts %d, want %q seq %d attempts 0",
			got.Data, got.Seq, got.Attempts, "held", held.Seq)
	}
	must(t, "Ack on host 2", c2.Ack(context.Background(), got))
	expectNone(t, c2, quiet)
}

// hostsSettle: what one host settles the other sees: its dead letters
// (listed, replayed and dropped from the other host, as the admin API of
// any host does) and the outputs of its Moves.
func (s *suite) hostsSettle(t *testing.T) {
	q1 := s.open(t, 0)
	q2 := s.shared(t, q1)
	ctx := context.Background()
	topic := queue.DestinationTopic("conf-hosts-dead")
	buryAll(t, q1, topic, 0, "died on host 1",
		queue.AppendEventItem(nil, "web", []byte(`{"n":1}`)), queue.AppendEventItem(nil, "web", []byte(`{"n":2}`)))
	dead := deadLetters(t, q2, topic, 2)
	eventually(t, arrive, "ListDead on host 2", func() error {
		page, err := q2.ListDead(queue.DeadQuery{Topic: topic})
		if err != nil {
			return err
		}
		if len(page.Letters) != 2 || page.Letters[0].Reason != "died on host 1" || page.Letters[0].Source != "web" {
			return fmt.Errorf("%+v", page.Letters)
		}
		return nil
	})
	statsAre(t, q2, topic, arrive, queue.Stats{Dead: 2}, false)

	if n, err := q2.Replay(ctx, topic, dead[0].Seq); err != nil || n != 1 {
		t.Fatalf("Replay on host 2: %d, %v", n, err)
	}
	c1 := q1.Consumer(topic)
	back := take(t, c1, 1, arrive)
	if string(back[0].Data) != string(dead[0].Data) || back[0].Attempts != 0 {
		t.Fatalf("replayed on host 2, handed out on host 1: %q attempts %d", back[0].Data, back[0].Attempts)
	}
	if n, err := q2.DropDead(ctx, topic, dead[1].Seq); err != nil || n != 1 {
		t.Fatalf("DropDead on host 2: %d, %v", n, err)
	}
	deadLetters(t, q1, topic, 0)

	out := queue.DestinationTopic("conf-hosts-out")
	must(t, "Move on host 1", q1.Move(ctx, c1, back, map[queue.Topic][][]byte{out: bs("moved")}))
	if got := take(t, q2.Consumer(out), 1, arrive); string(got[0].Data) != "moved" {
		t.Fatalf("output of host 1's Move on host 2: %q", datas(got))
	}
	statsAre(t, q2, topic, arrive, queue.Stats{}, false)
}
