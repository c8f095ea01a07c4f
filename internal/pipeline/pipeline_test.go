package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/delivery"
	"github.com/insertfn/insertfn/internal/pipeline/tap"
	"github.com/insertfn/insertfn/internal/queue"
	"github.com/insertfn/insertfn/sdk/consent"
)

// sink is a webhook receiver that records how often it accepted each
// messageId, in batches or one event per request. It can be told to fail
// (503), or to answer request n (from 1) with answer(n) (0: as usual), and
// it refuses (400) any request holding an event whose messageId starts
// with "bad-", as receivers that validate a batch as a whole do.
type sink struct {
	srv      *httptest.Server
	mu       sync.Mutex
	got      map[string]int
	requests int
	failing  atomic.Bool
	answer   func(n int) int
}

func newSink(t *testing.T) *sink {
	s := &sink{got: make(map[string]int)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		events := gjson.GetBytes(body, "batch").Array()
		if !gjson.GetBytes(body, "batch").Exists() {
			events = []gjson.Result{gjson.ParseBytes(body)} // one event per request
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests++
		if s.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if s.answer != nil {
			if st := s.answer(s.requests); st != 0 {
				w.WriteHeader(st)
				return
			}
		}
		for _, ev := range events {
			if strings.HasPrefix(ev.Get("messageId").String(), "bad-") {
				http.Error(w, `{"error":"invalid event"}`, http.StatusBadRequest)
				return
			}
		}
		for _, ev := range events {
			s.got[ev.Get("messageId").String()]++
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// accepted returns how often each messageId was accepted, and how many
// requests came.
func (s *sink) accepted() (map[string]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.got), s.requests
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func (s *sink) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[id] > 0
}

func webhook(t *testing.T, url string) delivery.Sink {
	w, err := delivery.NewWebhook(delivery.WebhookConfig{URL: url, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func event(id string, ads, analytics bool) []byte {
	return []byte(`{"type":"track","event":"Viewed","userId":"u1","messageId":"` + id + `","context":{"consent":{"categoryPreferences":{"Advertising":` +
		map[bool]string{true: "true", false: "false"}[ads] + `,"Analytics":` + map[bool]string{true: "true", false: "false"}[analytics] + `}}}}`)
}

// TestPipelineDelivers: accepted events reach the sinks their consent
// allows; mismatched ones reach none; a destination that is down keeps its
// backlog and gets it in full once it recovers, without holding up the
// other destination.
func TestPipelineDelivers(t *testing.T) {
	proc, _ := newProcessor(t)
	q, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ads, analytics, archive := newSink(t), newSink(t), newSink(t)
	ads.failing.Store(true)
	tp := tap.New()
	watch := watchTap(t, tp)
	p, err := New(q, proc, []delivery.Sink{webhook(t, ads.srv.URL), webhook(t, analytics.srv.URL), webhook(t, archive.srv.URL)},
		Options{Settings: delivery.Settings{Backoff: delivery.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, MaxAttempts: -1}}, Tap: tp})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { p.Run(ctx); close(ran) }()

	// 50 matching events (ads yes, analytics no) and 10 stale ones.
	var evs [][]byte
	for i := range 50 {
		evs = append(evs, event("ok-"+string(rune('a'+i%26))+string(rune('a'+i/26)), true, false))
	}
	for i := range 10 {
		evs = append(evs, event("stale-"+string(rune('a'+i)), true, true))
	}
	if err := p.Accept(context.Background(), "web", evs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the archive to get the 50 matching events", func() bool { return archive.count() == 50 })
	if analytics.count() != 0 {
		t.Errorf("analytics got %d events; consent refused them all", analytics.count())
	}
	if archive.has("stale-a") {
		t.Error("a stale event reached the archive")
	}
	if ads.count() != 0 {
		t.Errorf("the failing ads sink recorded %d events", ads.count())
	}
	st, err := q.Stats(queue.DestinationTopic("ads"))
	if err != nil || st.Ready+st.InFlight+st.Retrying != 50 {
		t.Errorf("ads backlog while down: %+v, %v; want 50 waiting", st, err)
	}
	ads.failing.Store(false)
	waitFor(t, "the ads backlog to arrive", func() bool { return ads.count() == 50 })

	cancel()
	<-ran
	f := p.Overview().Flow("web", time.Now().Add(-time.Hour), time.Now())
	want := fmt.Sprintf("%+v", []DestinationFlow{
		{Name: "ads", Delivered: 50, Dropped: []Drop{}},
		{Name: "analytics", FilteredConsent: 50, Dropped: []Drop{}},
		{Name: "archive", Delivered: 50, Dropped: []Drop{}},
	})
	if f.Received != 60 || len(f.Dropped) != 1 || f.Dropped[0] != (Drop{Function: "consent-match", Reason: "Consent mismatch", Count: 10}) ||
		fmt.Sprintf("%+v", f.Destinations) != want {
		t.Errorf("overview = %+v\nwant 60 received, 10 dropped by consent-match, destinations %s", f, want)
	}
	if got := p.Overview().Sources(); len(got) != 1 || got[0] != "web" {
		t.Errorf("overview sources %v", got)
	}

	// The live debugger saw each event's fate, at each stage.
	records := watch()
	fates := make(map[string]int)
	for _, r := range records {
		key := string(r.Stage) + " " + string(r.Fate) + " " + r.Destination
		if r.Stage == tap.StagePipeline && r.Fate == tap.Routed {
			key += fmt.Sprintf("%+v", r.Destinations)
		}
		if r.Fate == tap.Dropped {
			key += r.Function + ": " + r.Reason
		}
		if r.Fate != tap.Retried {
			fates[key]++
		} else if r.Error == "" || r.Attempt < 1 {
			t.Errorf("a retry record without its error or attempt: %+v", r)
		}
	}
	routed := fmt.Sprintf("%+v", []tap.DestinationFate{{Name: "ads", Fate: tap.Queued},
		{Name: "analytics", Fate: tap.FilteredConsent, Categories: []string{"Analytics"}}, {Name: "archive", Fate: tap.Queued}})
	wantFates := map[string]int{"pipeline routed " + routed: 50, "pipeline dropped consent-match: Consent mismatch": 10,
		"delivery delivered archive": 50, "delivery delivered ads": 50}
	if !maps.Equal(fates, wantFates) {
		t.Errorf("tap records by fate:\n%v\nwant\n%v", fates, wantFates)
	}
	if !slices.ContainsFunc(records, func(r *tap.Record) bool { return r.Fate == tap.Retried && r.Destination == "ads" }) {
		t.Error("no retry record for the ads destination that was down")
	}
	s := proc.Counters().Snapshot()
	if s.Dropped["Consent mismatch"] != 10 || s.Destinations["ads"].Delivered != 50 || s.Destinations["archive"].Delivered != 50 {
		t.Errorf("counters %+v", s)
	}
}

// watchTap subscribes to every record of tp, with payloads, and returns
// a function that ends the subscription and returns what it got.
func watchTap(t *testing.T, tp *tap.Tap) func() []*tap.Record {
	s, err := tp.Subscribe(tap.Filter{Rate: tap.MaxRate, Full: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []*tap.Record
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case r := <-s.Records():
				got = append(got, r)
			case <-done:
				for {
					select {
					case r := <-s.Records():
						got = append(got, r)
					default:
						return
					}
				}
			}
		}
	}()
	return func() []*tap.Record {
		close(done)
		<-stopped
		s.Close()
		if m := s.Missed(); m > 0 {
			t.Errorf("the watcher missed %d records", m)
		}
		return got
	}
}

// TestPipelineResumes: events accepted before a stop are delivered by the
// next run over the same queue.
func TestPipelineResumes(t *testing.T) {
	proc, _ := newProcessor(t)
	path := filepath.Join(t.TempDir(), queue.DirName)
	q, err := queue.Open(path, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	archive := newSink(t)
	sinks := []delivery.Sink{webhook(t, archive.srv.URL), webhook(t, archive.srv.URL), webhook(t, archive.srv.URL)}
	p, err := New(q, proc, sinks, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Accept(context.Background(), "web", [][]byte{event("m1", true, false), event("m2", true, false)}); err != nil {
		t.Fatal(err)
	}
	q.Close() // never ran
	q, err = queue.Open(path, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	p, _ = New(q, proc, sinks, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	waitFor(t, "both events", func() bool { return archive.has("m1") && archive.has("m2") })
}

func TestInboxEncoding(t *testing.T) {
	var enc encoder
	big := []byte(`{"a":"` + strings.Repeat("x", encoderChunk) + `"}`)
	for round := range 2 { // the second reuses the chunks after reset
		var items [][]byte
		var want []string
		for i := range 300 { // more than a chunk
			ev := fmt.Appendf(nil, `{"a":%d,"pad":"%s"}`, i, strings.Repeat("p", 1000))
			if i == 150 {
				ev = big
			}
			items = append(items, enc.item("web", ev))
			want = append(want, string(ev))
		}
		for i, b := range items {
			src, ev, err := queue.DecodeEventItem(b, "")
			if err != nil || src != "web" || string(ev) != want[i] {
				t.Fatalf("round %d: item %d decodes as %q %.40q %v", round, i, src, ev, err)
			}
		}
		enc.reset()
	}
	for _, bad := range [][]byte{nil, {1, 5, 'a'}, []byte(`{"a":1}`)} {
		if _, _, err := queue.DecodeEventItem(bad, ""); err == nil {
			t.Errorf("DecodeEventItem(%q) accepted a truncated item", bad)
		}
	}
}

// flakyBackend is a memory consent store whose next fail updates fail as
// a store that cannot be reached does.
type flakyBackend struct {
	*consentstore.Memory
	fail atomic.Int32
}

func (b *flakyBackend) Update(ctx context.Context, u *consentstore.Update) (*consent.Record, []consent.Change, error) {
	if b.fail.Add(-1) >= 0 {
		return nil, nil, fmt.Errorf("flaky: %w", consentstore.ErrUnavailable)
	}
	return b.Memory.Update(ctx, u)
}

// TestPipelineRetriesRequest: the events of one request leave the inbox
// together. When one of them must wait (its consent update cannot be
// stored), the whole request is retried, and what its other events gave
// before is taken back: each reaches the sink once, and the overview
// counts each once.
func TestPipelineRetriesRequest(t *testing.T) {
	backend := &flakyBackend{Memory: consentstore.NewMemory()}
	proc, _ := newProcessorOn(t, backend)
	q, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ads, analytics, archive := newSink(t), newSink(t), newSink(t)
	sinks := []delivery.Sink{webhook(t, ads.srv.URL), webhook(t, analytics.srv.URL), webhook(t, archive.srv.URL)}
	tp := tap.New()
	watch := watchTap(t, tp)
	p, err := New(q, proc, sinks, Options{Settings: delivery.Settings{Backoff: delivery.Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond, MaxAttempts: -1}}, Tap: tp})
	if err != nil {
		t.Fatal(err)
	}
	backend.fail.Store(3) // the update fails on arrival (Accept) and on the pipeline's first two tries
	update := []byte(`{"type":"track","event":"Segment Consent Preference","userId":"u1","messageId":"m2",` +
		`"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}}}`)
	if err := p.Accept(context.Background(), "web", [][]byte{event("m1", true, false), update, event("m3", true, false)}); err != nil {
		t.Fatal(err)
	}
	// A second request, which the pipeline takes in the same batch.
	if err := p.Accept(context.Background(), "web", [][]byte{event("m4", true, false), event("m5", true, false)}); err != nil {
		t.Fatal(err)
	}
	if st, err := q.Stats(queue.InboxTopic); err != nil || st.Ready != 2 {
		t.Fatalf("inbox after accepting two requests of 3 and 2 events: %+v, %v; want 2 items", st, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { p.Run(ctx); close(ran) }()
	waitFor(t, "the five events", func() bool {
		return archive.count() == 5 && ads.count() == 5
	})
	cancel()
	<-ran
	if backend.fail.Load() >= 0 {
		t.Errorf("the update failed only %d times; want 3 (on arrival, then twice in the pipeline)", 3-backend.fail.Load())
	}
	for name, s := range map[string]*sink{"ads": ads, "archive": archive} {
		s.mu.Lock()
		for id, n := range s.got {
			if n != 1 {
				t.Errorf("%s reached %s %d times; want once", id, name, n)
			}
		}
		s.mu.Unlock()
	}
	if analytics.count() != 0 {
		t.Errorf("analytics got %d events; consent refused them all", analytics.count())
	}
	if f := p.Overview().Flow("web", time.Now().Add(-time.Hour), time.Now()); f.Received != 5 {
		t.Errorf("overview: %d received; want 5", f.Received)
	}
	// The counters count each event once, however often its request ran;
	// function runs count every run: the first request's two failed tries
	// ran consent-match on m1 before the update of m2 failed.
	s := proc.Counters().Snapshot()
	if s.Processed != 5 || s.ConsentUpdates != 1 || s.Destinations["analytics"].FilteredConsent != 5 {
		t.Errorf("counters: processed %d, consent updates %d, filtered at analytics %d; want 5, 1, 5",
			s.Processed, s.ConsentUpdates, s.Destinations["analytics"].FilteredConsent)
	}
	if runs := s.Functions["consent-match"].Runs; runs != 7 {
		t.Errorf("consent-match ran %d times; want 7 (5 events, m1 twice more)", runs)
	}
	// The live debugger tells of each event once, as the counters count it,
	// though m1 ran three times.
	seen := make(map[string]int)
	for _, r := range watch() {
		if r.Stage == tap.StagePipeline {
			seen[r.MessageID]++
			if r.MessageID == "m2" && r.ConsentUpdate != tap.ConsentApplied {
				t.Errorf("m2's consent update: %q, want %q", r.ConsentUpdate, tap.ConsentApplied)
			}
		}
	}
	if want := map[string]int{"m1": 1, "m2": 1, "m3": 1, "m4": 1, "m5": 1}; !maps.Equal(seen, want) {
		t.Errorf("pipeline records per messageId %v, want one each", seen)
	}
}

// TestAcceptUpdatesConsentFirst: a consent-preference event updates the
// store before Accept returns, before any worker processes it, so that the
// person's next request is checked against it; when the pipeline processes
// it, it is counted once, and the event that follows with the new consent
// reaches the destinations it now allows.
func TestAcceptUpdatesConsentFirst(t *testing.T) {
	proc, store := newProcessorOn(t, consentstore.NewMemory()) // u1: Advertising true, Analytics false
	q, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ads, analytics, archive := newSink(t), newSink(t), newSink(t)
	sinks := []delivery.Sink{webhook(t, ads.srv.URL), webhook(t, analytics.srv.URL), webhook(t, archive.srv.URL)}
	p, err := New(q, proc, sinks, Options{})
	if err != nil {
		t.Fatal(err)
	}
	update := []byte(`{"type":"track","event":"Segment Consent Preference","userId":"u1","messageId":"m1","timestamp":"2026-12-05T09:00:00Z",` +
		`"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}}`)
	if err := p.Accept(ctx, "web", [][]byte{update}); err != nil {
		t.Fatal(err)
	}
	rec, err := store.Get(ctx, "u1")
	if err != nil || rec == nil {
		t.Fatalf("Get u1: %v %v", rec, err)
	}
	if i := rec.CategoryIndex("Analytics"); i < 0 || !rec.Categories[i].Consented {
		t.Fatalf("after Accept, before processing: stored %+v; want Analytics consented", rec.Categories)
	}
	if err := p.Accept(ctx, "web", [][]byte{event("m2", true, true)}); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { p.Run(runCtx); close(ran) }()
	waitFor(t, "both events at analytics", func() bool { return analytics.count() == 2 && archive.count() == 2 })
	cancel()
	<-ran
	if s := proc.Counters().Snapshot(); s.ConsentUpdates != 1 || s.Processed != 2 {
		t.Errorf("counted %d consent updates and %d events; want 1 and 2", s.ConsentUpdates, s.Processed)
	}
}

// TestAcceptConsentEarlyLimits: a request the queue refuses changes no
// stored consent; after the store's first failure, the rest of a request's
// updates wait for the pipeline.
func TestAcceptConsentEarlyLimits(t *testing.T) {
	pref := func(user, id string) []byte {
		return []byte(`{"type":"track","event":"Segment Consent Preference","userId":"` + user + `","messageId":"` + id +
			`","timestamp":"2026-12-05T09:00:00Z","context":{"consent":{"categoryPreferences":{"Analytics":true}}}}`)
	}
	backend := &flakyBackend{Memory: consentstore.NewMemory()}
	proc, store := newProcessorOn(t, backend)
	full, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{MaxBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	p, err := New(full, proc, []delivery.Sink{nil, nil, nil}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Accept(ctx, "web", [][]byte{pref("u2", "m1")}); !errors.Is(err, ErrFull) || !errors.Is(err, queue.ErrFull) {
		t.Fatalf("Accept into a full queue: %v; want ErrFull", err)
	}
	if rec, err := store.Get(ctx, "u2"); !errors.Is(err, consent.ErrNotFound) {
		t.Errorf("a refused request changed the store: %+v, %v", rec, err)
	}

	q, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if p, err = New(q, proc, []delivery.Sink{nil, nil, nil}, Options{}); err != nil {
		t.Fatal(err)
	}
	backend.fail.Store(1)
	if err := p.Accept(ctx, "web", [][]byte{pref("u3", "m2"), pref("u4", "m3")}); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"u3", "u4"} {
		if rec, err := store.Get(ctx, user); !errors.Is(err, consent.ErrNotFound) {
			t.Errorf("%s stored on arrival after the store failed: %+v, %v", user, rec, err)
		}
	}
	if st, err := q.Stats(queue.InboxTopic); err != nil || st.Ready != 1 {
		t.Errorf("inbox: %+v, %v; want the request queued all the same", st, err)
	}
}

// TestCorruptInboxItem: an inbox item the pipeline cannot read goes to the
// inbox's dead letters; the requests taken with it in the same batch are
// delivered and counted.
func TestCorruptInboxItem(t *testing.T) {
	proc, _ := newProcessorOn(t, consentstore.NewMemory())
	q, err := queue.Open(filepath.Join(t.TempDir(), queue.DirName), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ads, analytics, archive := newSink(t), newSink(t), newSink(t)
	sinks := []delivery.Sink{webhook(t, ads.srv.URL), webhook(t, analytics.srv.URL), webhook(t, archive.srv.URL)}
	p, err := New(q, proc, sinks, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Accept(ctx, "web", [][]byte{event("m1", true, false), event("m2", true, false)}); err != nil {
		t.Fatal(err)
	}
	if err := q.Append(ctx, queue.InboxTopic, []byte("\x02\x03web\x09{}")); err != nil { // an event cut short
		t.Fatal(err)
	}
	if err := p.Accept(ctx, "web", [][]byte{event("m3", true, false)}); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { p.Run(runCtx); close(ran) }()
	waitFor(t, "the three events", func() bool { return archive.count() == 3 })
	cancel()
	<-ran
	if st, err := q.Stats(queue.InboxTopic); err != nil || st.Dead != 1 || st.Ready+st.InFlight+st.Retrying != 0 {
		t.Errorf("inbox: %+v, %v; want the corrupt item dead and nothing else left", st, err)
	}
	if n := proc.Counters().Snapshot().Processed; n != 3 {
		t.Errorf("%d events counted as processed; want 3", n)
	}
}

// TestRequestEncoding: a request's events, encoded as one inbox item
// between items of the other format, decode as they were; the worked
// example of requestFormat's documentation holds; truncated and empty
// items are refused.
func TestRequestEncoding(t *testing.T) {
	var enc encoder
	worked := enc.request("web", [][]byte{[]byte(`{"a":1}`), []byte(`{}`)})
	if want := "\x02\x03web\x07{\"a\":1}\x02{}"; string(worked) != want {
		t.Errorf("worked example: %q; want %q", worked, want)
	}
	enc.reset()
	big := []byte(`{"a":"` + strings.Repeat("x", encoderChunk) + `"}`)
	for round := range 2 { // the second reuses the chunks after reset
		type encoded struct {
			item   []byte
			source string
			events []string
		}
		var all []encoded
		for i := range 60 {
			var events [][]byte
			var want []string
			for j := range i%7 + 1 { // Accept writes no item without events
				ev := fmt.Appendf(nil, `{"a":%d,"pad":"%s"}`, j, strings.Repeat("p", 100*i))
				if i == 30 && j == 2 {
					ev = big
				}
				events = append(events, ev)
				want = append(want, string(ev))
			}
			source := fmt.Sprintf("src-%d", i%3)
			if len(events) == 1 {
				all = append(all, encoded{enc.item(source, events[0]), source, want})
			} else {
				all = append(all, encoded{enc.request(source, events), source, want})
			}
		}
		var events [][]byte
		last := ""
		for i, e := range all {
			var err error
			last, events, err = queue.DecodeInboxItem(e.item, last, events[:0])
			if err != nil || last != e.source || len(events) != len(e.events) {
				t.Fatalf("round %d: item %d decodes as %q with %d events, %v; want %q with %d", round, i, last, len(events), err, e.source, len(e.events))
			}
			for j, ev := range events {
				if string(ev) != e.events[j] {
					t.Fatalf("round %d: item %d event %d is %.40q; want %.40q", round, i, j, ev, e.events[j])
				}
			}
		}
		enc.reset()
	}
	for _, bad := range [][]byte{
		nil,
		{queue.RequestItemFormat},
		{queue.RequestItemFormat, 5, 'a'},
		[]byte("\x02\x03web\x08{\"a\":1}"),     // an event one byte short
		[]byte("\x02\x03web\x07{\"a\":1}\x80"), // a length cut short
		[]byte("\x02\x03web"),                  // no events
		[]byte(`{"a":1}`),
	} {
		if _, _, err := queue.DecodeInboxItem(bad, "", nil); err == nil {
			t.Errorf("DecodeInboxItem(%q) accepted a truncated or empty item", bad)
		}
	}
}

// FuzzInboxItem: decoding never panics, and events decoded from any bytes
// encode back to an item that decodes to the same.
func FuzzInboxItem(f *testing.F) {
	var enc encoder
	f.Add(enc.request("web", [][]byte{[]byte(`{"a":1}`), []byte(`{}`)}))
	f.Add(enc.item("web", []byte(`{}`)))
	f.Add([]byte("\x02\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		source, events, err := queue.DecodeInboxItem(b, "", nil)
		if err != nil {
			return
		}
		for _, ev := range events {
			if len(ev) > len(b) {
				t.Fatalf("an event of %d bytes from an item of %d", len(ev), len(b))
			}
		}
		var enc encoder
		again, events2, err := queue.DecodeInboxItem(enc.request(source, events), "", nil)
		if err != nil || again != source || len(events2) != len(events) {
			t.Fatalf("re-encoded: %q, %d events, %v; want %q, %d", again, len(events2), err, source, len(events))
		}
		for i := range events {
			if string(events[i]) != string(events2[i]) {
				t.Fatalf("re-encoded event %d: %q; want %q", i, events2[i], events[i])
			}
		}
	})
}
