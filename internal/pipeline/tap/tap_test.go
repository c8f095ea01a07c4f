package tap

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func record(source, typ, user string, fate Fate) *Record {
	return &Record{Time: time.Unix(1000, 0), Stage: StagePipeline, Source: source, Type: typ, UserID: user, Fate: fate}
}

func drain(s *Subscription) []*Record {
	var out []*Record
	for {
		select {
		case r := <-s.Records():
			out = append(out, r)
		default:
			return out
		}
	}
}

func TestFilterMatch(t *testing.T) {
	r := record("web", "track", "u1", Routed)
	r.AnonymousID = "a1"
	r.Destinations = []DestinationFate{{Name: "ads", Fate: FilteredConsent}, {Name: "file", Fate: Queued}}
	for _, c := range []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{Source: "web"}, true},
		{Filter{Source: "app"}, false},
		{Filter{Type: "track"}, true},
		{Filter{Type: "page"}, false},
		{Filter{User: "u1"}, true},
		{Filter{User: "a1"}, true},
		{Filter{User: "u2"}, false},
		{Filter{Fate: Routed}, true},
		{Filter{Fate: Queued}, true},
		{Filter{Fate: FilteredConsent}, true},
		{Filter{Fate: Filtered}, true}, // a destination filtered by consent
		{Filter{Fate: FilteredIntegrations}, false},
		{Filter{Fate: Dropped}, false},
		{Filter{Fate: Delivered}, false},
		{Filter{Source: "web", User: "u2"}, false},
	} {
		if got := c.f.Match(r); got != c.want {
			t.Errorf("%+v matches %v, want %v", c.f, got, c.want)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{Type: "trak"}, "type"},
		{Filter{Fate: "lost"}, "fate"},
		{Filter{Rate: -1}, "rate"},
		{Filter{Rate: MaxRate + 1}, "rate"},
		{Filter{Sample: -2}, "sample"},
	} {
		err := c.f.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error about %s", c.f, err, c.want)
		}
	}
	if err := (Filter{Type: "identify", Fate: Retried, Rate: MaxRate, Sample: 3}).Validate(); err != nil {
		t.Errorf("a good filter: %v", err)
	}
}

// TestWant: without watchers only the history wants records, and only
// within its rate; a watcher's early filter and rate decide for it, and
// Want reserves: a batch of events asks before any record is published.
func TestWant(t *testing.T) {
	tp := New()
	ev := []byte(`{"type":"track","userId":"u1"}`)
	const sec = 1000
	for i := range HistoryRate {
		if k := tp.Want(sec, "web", "track", ev); !k.OK() || !k.Full() {
			t.Fatalf("record %d: ticket %+v, want the history to take it with its payload", i, k)
		}
	}
	if k := tp.Want(sec, "web", "track", ev); k.OK() {
		t.Fatal("the history's rate is reserved and there is no watcher, yet Want is OK")
	}
	s, err := tp.Subscribe(Filter{Source: "app", Rate: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if k := tp.Want(sec, "web", "track", ev); k.OK() {
		t.Error("a watcher of source app wants an event of source web")
	}
	var tickets []Ticket
	for range 3 {
		tickets = append(tickets, tp.Want(sec, "app", "track", ev))
	}
	if !tickets[0].OK() || tickets[0].Full() || !tickets[1].OK() || tickets[2].OK() {
		t.Errorf("a watcher of app at 2 a second, without Full: tickets %+v, want two OK, not full, then none", tickets)
	}
	for _, k := range tickets[:2] {
		r := record("app", "track", "u1", Routed)
		r.Time, r.Ticket = time.Unix(sec, 0), k
		tp.Publish(r)
	}
	if got := len(drain(s)); got != 2 {
		t.Errorf("the watcher got %d of the 2 records reserved for it", got)
	}
	if k := tp.Want(sec+1, "app", "track", ev); !k.OK() {
		t.Error("a new second, yet Want is not OK")
	}
	// A record reserved for the history alone does not reach the watcher.
	r := record("app", "track", "u1", Routed)
	r.Ticket = Ticket{takers: historyBit}
	tp.Publish(r)
	if got := len(drain(s)); got != 0 {
		t.Errorf("the watcher got %d records it did not reserve", got)
	}
}

// TestUserAndFateFilters: a watcher of one user reserves only that
// user's events, so a busy server's other events do not spend its rate; a
// watcher of a fate reserves from the build budget, and its own rate
// counts only what matches.
func TestUserAndFateFilters(t *testing.T) {
	tp := New()
	for range HistoryRate { // the history's rate spent: only the watchers reserve
		tp.Want(1000, "web", "track", nil)
	}
	u7, err := tp.Subscribe(Filter{User: "u7", Rate: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer u7.Close()
	var tickets int
	for i := range 50 {
		ev := fmt.Appendf(nil, `{"type":"track","userId":"u%d","anonymousId":"a%d"}`, i%10, i%10)
		if tp.Want(1000, "web", "track", ev).OK() {
			tickets++
		}
	}
	if tickets != 2 {
		t.Errorf("a watcher of u7 at 2 a second reserved %d of 50 events (5 of them u7's), want 2", tickets)
	}
	if !tp.Want(1001, "web", "track", []byte(`{"anonymousId":"u7"}`)).OK() {
		t.Error("an event whose anonymousId is u7 was not reserved")
	}
	u7.Close()

	dropped, err := tp.Subscribe(Filter{Fate: Dropped, Rate: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer dropped.Close()
	for i := range 10 {
		r := record("web", "track", "u", Routed)
		if i >= 5 {
			r.Fate = Dropped
			r.UserID = fmt.Sprint(i)
		}
		tp.Offer(r)
	}
	if got := drain(dropped); len(got) != 1 || got[0].UserID != "5" {
		t.Errorf("a watcher of dropped events at 1 a second got %v, want the first dropped (5)", users(got))
	}
	for range FateBudget {
		tp.Want(1000, "web", "track", nil)
	}
	if k := tp.Want(1000, "web", "track", nil); k.OK() {
		t.Error("the build budget is spent, yet the watcher of a fate reserves")
	}
}

func TestTooManyWatchers(t *testing.T) {
	tp := New()
	var subs []*Subscription
	for range MaxWatchers {
		s, err := tp.Subscribe(Filter{})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	if _, err := tp.Subscribe(Filter{}); !errors.Is(err, ErrTooManyWatchers) {
		t.Fatalf("watcher %d: %v, want ErrTooManyWatchers", MaxWatchers+1, err)
	}
	subs[5].Close()
	s, err := tp.Subscribe(Filter{})
	if err != nil {
		t.Fatalf("a slot was freed, yet: %v", err)
	}
	if s.slot != 5 {
		t.Errorf("slot %d, want the freed 5", s.slot)
	}
}

func TestSampleAndMissed(t *testing.T) {
	tp := New()
	s, err := tp.Subscribe(Filter{Sample: 3, Rate: MaxRate})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		r := record("web", "track", fmt.Sprint(i), Routed)
		tp.Offer(r)
	}
	got := drain(s)
	if len(got) != 3 || got[0].UserID != "0" || got[1].UserID != "3" || got[2].UserID != "6" {
		t.Errorf("one in 3 of 9: got %d records", len(got))
	}
	s.Close()

	s, _ = tp.Subscribe(Filter{Rate: MaxRate})
	defer s.Close()
	for range Buffer + 10 {
		tp.Offer(record("web", "track", "u", Routed))
	}
	if m := s.Missed(); m != 10 {
		t.Errorf("a full buffer: missed %d, want 10", m)
	}
	if m := s.Missed(); m != 0 {
		t.Errorf("Missed again: %d, want 0 (it starts counting again)", m)
	}
	if got := len(drain(s)); got != Buffer {
		t.Errorf("buffered %d, want %d", got, Buffer)
	}
}

func TestCloseAndRecent(t *testing.T) {
	tp := New()
	s, _ := tp.Subscribe(Filter{})
	if tp.Watchers() != 1 {
		t.Fatalf("watchers %d, want 1", tp.Watchers())
	}
	s.Close()
	s.Close()
	if tp.Watchers() != 0 {
		t.Fatalf("watchers %d after Close, want 0", tp.Watchers())
	}
	tp.Offer(record("web", "track", "u1", Routed))
	if got := len(drain(s)); got != 0 {
		t.Errorf("a closed subscription got %d records", got)
	}
	for i := range HistorySize + 5 {
		r := record("web", "track", fmt.Sprint(i), Routed)
		r.Time = time.Unix(int64(i), 0) // a second each: the history's rate has room
		if i%2 == 1 {
			r.Fate = Dropped
		}
		tp.Offer(r)
	}
	rec := tp.Recent(Filter{Fate: Dropped}, 3)
	if len(rec) != 3 || rec[0].UserID != fmt.Sprint(HistorySize-1) || rec[2].UserID != fmt.Sprint(HistorySize+3) {
		t.Errorf("the last 3 dropped, oldest first: %v", users(rec))
	}
	if n := len(tp.Recent(Filter{}, 1000)); n != HistorySize {
		t.Errorf("the history holds %d, want %d", n, HistorySize)
	}
}

func users(rs []*Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.UserID)
	}
	return out
}

func TestReadEvent(t *testing.T) {
	ev := []byte(`{"type":"page","name":"Home","userId":"u1","anonymousId":"a1","messageId":"m1","properties":{}}`)
	var r Record
	r.ReadEvent(ev, true)
	if r.Type != "page" || r.Event != "Home" || r.UserID != "u1" || r.AnonymousID != "a1" || r.MessageID != "m1" {
		t.Errorf("read %+v", r)
	}
	ev[0] = ' ' // the payload is a copy
	b, _ := json.Marshal(&r)
	if !strings.Contains(string(b), `"payload":{"type":"page"`) {
		t.Errorf("the payload is not the event's JSON: %s", b)
	}
	var big Record
	big.ReadEvent([]byte(`{"type":"track","event":"`+strings.Repeat("x", MaxPayload)+`"}`), true)
	if big.Payload != nil || big.PayloadBytes <= MaxPayload {
		t.Errorf("a payload over MaxPayload: kept %d bytes, omitted %d", len(big.Payload), big.PayloadBytes)
	}
	var bad Record
	bad.ReadEvent([]byte(`not json`), true)
	if string(bad.Payload) != `"not json"` {
		t.Errorf("a payload that is not JSON: %s, want it as a JSON string", bad.Payload)
	}
}

// TestWantAllocatesNothing: the check the pipeline makes for every event
// allocates nothing, with or without watchers.
func TestWantAllocatesNothing(t *testing.T) {
	tp := New()
	s, _ := tp.Subscribe(Filter{Source: "app"})
	defer s.Close()
	u, _ := tp.Subscribe(Filter{User: "a1"})
	defer u.Close()
	ev := []byte(`{"type":"track","userId":"u1","anonymousId":"a1"}`)
	if n := testing.AllocsPerRun(100, func() { tp.Want(1000, "web", "track", ev) }); n != 0 {
		t.Errorf("Want allocates %v per call", n)
	}
}

func BenchmarkWant(b *testing.B) {
	tp := New()
	ev := []byte(`{"type":"track","userId":"u1"}`)
	for range HistoryRate {
		tp.Want(1000, "web", "track", ev)
	}
	b.Run("history-full", func(b *testing.B) {
		for b.Loop() {
			tp.Want(1000, "web", "track", ev)
		}
	})
	s, _ := tp.Subscribe(Filter{Rate: 1})
	defer s.Close()
	tp.Want(1000, "web", "track", ev)
	b.Run("watcher-rate-spent", func(b *testing.B) {
		for b.Loop() {
			tp.Want(1000, "web", "track", ev)
		}
	})
}
