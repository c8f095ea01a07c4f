package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestTopicNames: the pipeline's topics keep the names stored in existing
// queues, and read back without taking names apart.
func TestTopicNames(t *testing.T) {
	if InboxTopic != "inbox" || DestinationTopic("ads") != "dest:ads" || HealthTopic != "health" {
		t.Fatalf("topic names changed: %q %q %q; stored queues would lose their items", InboxTopic, DestinationTopic("ads"), HealthTopic)
	}
	for _, c := range []struct {
		t     Topic
		dest  string
		ok    bool
		inbox bool
	}{
		{DestinationTopic("ads"), "ads", true, false},
		{DestinationTopic(""), "", true, false},
		{DestinationTopic("inbox"), "inbox", true, false},
		{InboxTopic, "", false, true},
		{HealthTopic, "", false, false},
		{"other", "", false, false},
	} {
		dest, ok := c.t.Destination()
		if dest != c.dest || ok != c.ok || c.t.IsInbox() != c.inbox {
			t.Errorf("%q: Destination() = %q, %v, IsInbox() = %v; want %q, %v, %v", c.t, dest, ok, c.t.IsInbox(), c.dest, c.ok, c.inbox)
		}
	}

	q, _ := open(t, Options{})
	ctx := context.Background()
	for _, topic := range []Topic{InboxTopic, HealthTopic, DestinationTopic("b"), DestinationTopic("a"), "other"} {
		if err := q.Append(ctx, topic, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if got := q.Destinations(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Destinations() = %q; want [a b]", got)
	}
}

// deadOf appends items to topic and moves them to its dead letters.
func deadOf(t *testing.T, q *Pebble, topic Topic, items ...[]byte) {
	t.Helper()
	ctx := context.Background()
	if err := q.Append(ctx, topic, items...); err != nil {
		t.Fatal(err)
	}
	c := q.Consumer(topic)
	got := next(t, c, len(items), time.Second)
	for _, it := range got {
		if err := c.Dead(ctx, it, "reason of "+string(topic)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestListDead: dead letters come back decoded per their topic, a page at
// a time, or those of every topic with the inbox's last.
func TestListDead(t *testing.T) {
	q, _ := open(t, Options{})
	ev := func(source, event string) []byte { return AppendEventItem(nil, source, []byte(event)) }
	request := AppendRequestItem(nil, "web", [][]byte{[]byte(`{"n":1}`), []byte(`{"n":2}`)})
	deadOf(t, q, InboxTopic, request, []byte("\x07junk"), ev("app", `{"n":3}`))
	deadOf(t, q, DestinationTopic("b"), ev("web", `{"b":1}`), request, []byte("raw"))
	deadOf(t, q, DestinationTopic("a"), ev("", `{"a":1}`))

	show := func(p DeadPage) string {
		var s string
		for _, d := range p.Letters {
			s += fmt.Sprintf("%s/%d/%d/%s/%q %q;", d.Topic, d.Seq, d.Tries, d.Source, d.Events, d.Reason)
		}
		return s + fmt.Sprintf("next %d", p.Next)
	}
	all, err := q.ListDead(DeadQuery{})
	if err != nil {
		t.Fatal(err)
	}
	want := `dest:a/1/1//["{\"a\":1}"] "reason of dest:a";` +
		`dest:b/1/1/web/["{\"b\":1}"] "reason of dest:b";` +
		// A request item is no destination's: shown as it is stored.
		`dest:b/2/1//["\x02\x03web\a{\"n\":1}\a{\"n\":2}"] "reason of dest:b";` +
		`dest:b/3/1//["raw"] "reason of dest:b";` +
		`inbox/1/1/web/["{\"n\":1}" "{\"n\":2}"] "reason of inbox";` +
		`inbox/2/1//["\ajunk"] "reason of inbox";` +
		`inbox/3/1/app/["{\"n\":3}"] "reason of inbox";next 0`
	if got := show(all); got != want {
		t.Errorf("every dead letter:\n%s\nwant\n%s", got, want)
	}
	for _, c := range []struct {
		after uint64
		limit int
		want  string
	}{
		{0, 2, `dest:b/1/1/web/["{\"b\":1}"] "reason of dest:b";dest:b/2/1//["\x02\x03web\a{\"n\":1}\a{\"n\":2}"] "reason of dest:b";next 2`},
		{2, 2, `dest:b/3/1//["raw"] "reason of dest:b";next 0`},
		{2, 1, `dest:b/3/1//["raw"] "reason of dest:b";next 0`},
		{3, 0, `next 0`},
	} {
		p, err := q.ListDead(DeadQuery{Topic: DestinationTopic("b"), After: c.after, Limit: c.limit})
		if got := show(p); err != nil || got != c.want {
			t.Errorf("after %d limit %d: %s, %v; want %s", c.after, c.limit, got, err, c.want)
		}
	}
	if _, err := q.ListDead(DeadQuery{Topic: DestinationTopic("none")}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a destination with no topic: %v; want ErrNotFound", err)
	}
	if _, err := q.ListDead(DeadQuery{Limit: 1}); err == nil {
		t.Error("a page of every topic's dead letters was not refused")
	}

	// Without an inbox, every topic's dead letters are those of the rest.
	q2, _ := open(t, Options{})
	deadOf(t, q2, DestinationTopic("a"), ev("web", "{}"))
	if p, err := q2.ListDead(DeadQuery{}); err != nil || len(p.Letters) != 1 {
		t.Errorf("no inbox: %s, %v; want the destination's one dead letter", show(p), err)
	}
}
