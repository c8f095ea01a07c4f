package tap

import (
	"encoding/json"
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
// within its rate; a watcher's early filter and rate decide for it.
func TestWant(t *testing.T) {
	tp := New()
	const sec = 1000
	for i := range HistoryRate {
		if want, full := tp.Want(sec, "web", "track"); !want || !full {
			t.Fatalf("record %d: want %v full %v, want the history to take it with its payload", i, want, full)
		}
		tp.Publish(record("web", "track", "u1", Routed))
	}
	if want, _ := tp.Want(sec, "web", "track"); want {
		t.Fatal("the history's rate is spent and there is no watcher, yet Want is true")
	}
	s, err := tp.Subscribe(Filter{Source: "app", Rate: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if want, _ := tp.Want(sec, "web", "track"); want {
		t.Error("a watcher of source app wants an event of source web")
	}
	if want, full := tp.Want(sec, "app", "track"); !want || full {
		t.Errorf("a watcher of app without Full: want %v full %v, want true false", want, full)
	}
	for range 3 {
		r := record("app", "track", "u1", Routed)
		r.Time = time.Unix(sec, 0)
		tp.Publish(r)
	}
	if got := len(drain(s)); got != 2 {
		t.Errorf("a watcher at 2 records a second got %d of 3", got)
	}
	if want, _ := tp.Want(sec, "app", "track"); want {
		t.Error("the watcher's rate is spent, yet Want is true")
	}
	if want, _ := tp.Want(sec+1, "app", "track"); !want {
		t.Error("a new second, yet Want is false")
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
		tp.Publish(r)
	}
	got := drain(s)
	if len(got) != 3 || got[0].UserID != "0" || got[1].UserID != "3" || got[2].UserID != "6" {
		t.Errorf("one in 3 of 9: got %d records", len(got))
	}
	s.Close()

	s, _ = tp.Subscribe(Filter{Rate: MaxRate})
	defer s.Close()
	for range Buffer + 10 {
		tp.Publish(record("web", "track", "u", Routed))
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
	tp.Publish(record("web", "track", "u1", Routed))
	if got := len(drain(s)); got != 0 {
		t.Errorf("a closed subscription got %d records", got)
	}
	for i := range HistorySize + 5 {
		r := record("web", "track", fmt.Sprint(i), Routed)
		r.Time = time.Unix(int64(i), 0) // a second each: the history's rate has room
		if i%2 == 1 {
			r.Fate = Dropped
		}
		tp.Publish(r)
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
	if n := testing.AllocsPerRun(100, func() { tp.Want(1000, "web", "track") }); n != 0 {
		t.Errorf("Want allocates %v per call", n)
	}
}

func BenchmarkWant(b *testing.B) {
	tp := New()
	for i := range HistoryRate {
		_ = i
		tp.Publish(record("web", "track", "u", Routed))
	}
	b.Run("history-full", func(b *testing.B) {
		for b.Loop() {
			tp.Want(1000, "web", "track")
		}
	})
	s, _ := tp.Subscribe(Filter{Rate: 1})
	defer s.Close()
	tp.Publish(record("web", "track", "u", Routed))
	b.Run("watcher-rate-spent", func(b *testing.B) {
		for b.Loop() {
			tp.Want(1000, "web", "track")
		}
	})
}
