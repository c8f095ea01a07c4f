package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/internal/delivery"
	"github.com/insertfn/insertfn/internal/queue"
)

// TestPermanentFailureNarrowed: a destination that refuses a batch for one
// bad event gets the good ones all the same (the batch is sent again in
// halves), a webhook posting one event per request does not send the
// events it delivered again, and only the bad events reach the dead
// letters.
func TestPermanentFailureNarrowed(t *testing.T) {
	proc, _ := newProcessor(t)
	q, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	batch, single := newSink(t), newSink(t)
	perEvent, err := delivery.NewWebhook(delivery.WebhookConfig{URL: single.srv.URL, Timeout: 2 * time.Second, Mode: delivery.ModeEvent})
	if err != nil {
		t.Fatal(err)
	}
	defer perEvent.Close()
	// ads (batches), analytics (consent filters everything), archive (one
	// event per request).
	p, err := New(q, proc, []delivery.Sink{webhook(t, batch.srv.URL), webhook(t, batch.srv.URL), perEvent},
		Options{Settings: delivery.Settings{Backoff: delivery.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, MaxAttempts: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	bad := map[int]bool{0: true, 21: true, 22: true, 63: true}
	var evs [][]byte
	for i := range n {
		id := fmt.Sprintf("ok-%02d", i)
		if bad[i] {
			id = fmt.Sprintf("bad-%02d", i)
		}
		evs = append(evs, event(id, true, false))
	}
	if err := p.Accept(context.Background(), "web", evs); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { p.Run(ctx); close(ran) }()
	settled := func(dest string) bool {
		st, err := q.Stats(queue.DestinationTopic(dest))
		return err == nil && st.Ready+st.InFlight+st.Retrying == 0 && st.Dead == len(bad)
	}
	waitFor(t, "both backlogs to settle", func() bool { return settled("ads") && settled("archive") })
	cancel()
	<-ran

	for name, s := range map[string]*sink{"batches": batch, "one per request": single} {
		got, requests := s.accepted()
		if len(got) != n-len(bad) {
			t.Errorf("%s: %d events accepted, want the %d good ones", name, len(got), n-len(bad))
		}
		for id, times := range got {
			if times != 1 {
				t.Errorf("%s: %s accepted %d times, want once", name, id, times)
			}
		}
		// Batches: four bad events among 64 cost at most 2·log2(64) more
		// requests each. One per request: each event is sent once.
		if (s == batch && requests > 1+4*2*6) || (s == single && requests != n) {
			t.Errorf("%s: %d requests for %d events, %d bad", name, requests, n, len(bad))
		}
	}
	for _, dest := range []string{"ads", "archive"} {
		dead, err := q.DeadLetters(queue.DestinationTopic(dest), 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range dead {
			_, ev, _ := queue.DecodeEventItem(d.Data, "")
			ids = append(ids, gjson.GetBytes(ev, "messageId").String())
		}
		if fmt.Sprint(ids) != "[bad-00 bad-21 bad-22 bad-63]" {
			t.Errorf("%s: dead letters %v, want the four bad events", dest, ids)
		}
		if s := proc.Counters().Snapshot().Destinations[dest]; s.Delivered != n-uint64(len(bad)) || s.Failed != uint64(len(bad)) {
			t.Errorf("%s: counters %+v, want %d delivered and %d failed", dest, s, n-len(bad), len(bad))
		}
	}
}

// TestNarrowingBounded: a destination that refuses every request for its
// content costs a bounded number of requests per batch before all of it is
// dead-lettered; one that goes down in the middle of narrowing stops it,
// and nothing is dead-lettered for that.
func TestNarrowingBounded(t *testing.T) {
	for _, c := range []struct {
		name           string
		answer         func(n int) int
		dead, maxCalls int
	}{
		{"refuses everything", func(int) int { return http.StatusBadRequest }, 100, 1 + narrowBudget(100) + 2*7},
		{"down after the first refusal", func(n int) int {
			if n == 1 {
				return http.StatusBadRequest
			}
			return http.StatusServiceUnavailable
		}, 0, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			proc, _ := newProcessor(t)
			q, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			picky := newSink(t)
			picky.answer = c.answer
			other := newSink(t)
			p, err := New(q, proc, []delivery.Sink{webhook(t, picky.srv.URL), webhook(t, other.srv.URL), webhook(t, other.srv.URL)},
				Options{Settings: delivery.Settings{Backoff: delivery.Backoff{Initial: time.Hour, Max: time.Hour, MaxAttempts: 3}}})
			if err != nil {
				t.Fatal(err)
			}
			var evs [][]byte
			for i := range 100 {
				evs = append(evs, event(fmt.Sprintf("ok-%03d", i), true, false))
			}
			if err := p.Accept(context.Background(), "web", evs); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan struct{})
			go func() { p.Run(ctx); close(ran) }()
			waitFor(t, "the batch to be settled", func() bool {
				st, err := q.Stats(queue.DestinationTopic("ads"))
				return err == nil && st.Ready+st.InFlight == 0 && st.Dead+st.Retrying == 100
			})
			cancel()
			<-ran
			st, _ := q.Stats(queue.DestinationTopic("ads"))
			_, calls := picky.accepted()
			if st.Dead != c.dead || st.Retrying != 100-c.dead || calls > c.maxCalls {
				t.Errorf("dead %d, retrying %d after %d requests; want %d dead, the rest retrying, at most %d requests",
					st.Dead, st.Retrying, calls, c.dead, c.maxCalls)
			}
		})
	}
}
