package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/pipeline/tap"
)

// until polls cond until it holds, failing the test after a minute (a
// bound against hanging, not a measurement).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rec returns a pipeline record of a track event.
func rec(source, typ, user, msgID string, fate tap.Fate) *tap.Record {
	return &tap.Record{Time: time.Now(), Stage: tap.StagePipeline, Source: source, Type: typ, Event: "Order Completed",
		UserID: user, MessageID: msgID, Fate: fate, Payload: json.RawMessage(`{"messageId":"` + msgID + `","html":"<b>&</b>"}`)}
}

// tailServer serves admin.TailHandler(t) without authentication.
func tailServer(t *testing.T, tp *tap.Tap) (*httptest.Server, *admin.Client) {
	t.Helper()
	srv := httptest.NewServer(admin.TailHandler(tp))
	t.Cleanup(srv.Close)
	return srv, &admin.Client{URL: srv.URL, Token: token, HTTP: srv.Client()}
}

// errEnough stops a Tail once a test has what it waited for.
var errEnough = errors.New("enough")

// follow runs c.Tail with q in the background until it has n messages,
// and returns a function that waits for them.
func follow(t *testing.T, tp *tap.Tap, c *admin.Client, q admin.TailQuery, n int) func() ([]admin.TailMessage, error) {
	t.Helper()
	before := tp.Watchers()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	var got []admin.TailMessage
	done := make(chan error, 1)
	go func() {
		done <- c.Tail(ctx, q, func(m admin.TailMessage) error {
			got = append(got, m)
			if len(got) == n {
				return errEnough
			}
			return nil
		})
	}()
	until(t, "the stream's subscription", func() bool { return tp.Watchers() == before+1 })
	return func() ([]admin.TailMessage, error) {
		defer cancel()
		err := <-done
		if errors.Is(err, errEnough) {
			err = nil
		}
		return got, err
	}
}

// TestTailFilters: a stream gets only the records its filter matches, in
// order, without payloads unless it asked for them; its subscription
// ends when the client goes.
func TestTailFilters(t *testing.T) {
	tp := tap.New()
	_, c := tailServer(t, tp)
	cases := []struct {
		name  string
		query admin.TailQuery
		match *tap.Record // published last, after records the filter refuses
	}{
		{"source", admin.TailQuery{Filter: tap.Filter{Source: "app"}}, rec("app", "track", "u1", "want", tap.Routed)},
		{"type", admin.TailQuery{Filter: tap.Filter{Type: "identify"}}, rec("web", "identify", "u1", "want", tap.Routed)},
		{"user", admin.TailQuery{Filter: tap.Filter{User: "u2"}}, rec("web", "track", "u2", "want", tap.Routed)},
		{"fate", admin.TailQuery{Filter: tap.Filter{Fate: tap.Dropped}}, rec("web", "track", "u1", "want", tap.Dropped)},
		{"fate of a destination", admin.TailQuery{Filter: tap.Filter{Fate: tap.FilteredConsent}}, func() *tap.Record {
			r := rec("web", "track", "u1", "want", tap.Routed)
			r.Destinations = []tap.DestinationFate{{Name: "ads", Fate: tap.FilteredConsent, Categories: []string{"Advertising"}}}
			return r
		}()},
		{"full", admin.TailQuery{Filter: tap.Filter{Source: "app", Full: true}}, rec("app", "track", "u1", "want", tap.Routed)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wait := follow(t, tp, c, tc.query, 1)
			for _, r := range []*tap.Record{ // none of these match any case's filter
				rec("web", "track", "u1", "other1", tap.Routed),
				rec("web", "page", "u3", "other2", tap.Delivered),
			} {
				tp.Offer(r)
			}
			tp.Offer(tc.match)
			got, err := wait()
			if err != nil {
				t.Fatal(err)
			}
			r := got[0].Record
			if r == nil || r.MessageID != "want" || r.Source != tc.match.Source || r.Type != tc.match.Type || r.Fate != tc.match.Fate {
				t.Fatalf("first message %+v, want the record the filter matches (messageId want)", got[0])
			}
			if len(tc.match.Destinations) > 0 && (len(r.Destinations) != 1 || r.Destinations[0].Categories[0] != "Advertising") {
				t.Errorf("destinations %+v, want %+v", r.Destinations, tc.match.Destinations)
			}
			if tc.query.Filter.Full != (r.Payload != nil) {
				t.Errorf("full=%v: payload %s", tc.query.Filter.Full, r.Payload)
			}
			if tc.query.Filter.Full && string(r.Payload) != string(tc.match.Payload) {
				t.Errorf("payload %s, want %s as it was", r.Payload, tc.match.Payload)
			}
			until(t, "the subscription to close after the client went", func() bool { return tp.Watchers() == 0 })
		})
	}
}

// TestTailRecent: n sends the last records the tap kept first, oldest
// first; follow=0 ends the answer after them, never subscribing.
func TestTailRecent(t *testing.T) {
	tp := tap.New()
	srv, c := tailServer(t, tp)
	for i := range 5 {
		tp.Offer(rec("web", "track", "u1", fmt.Sprintf("m%d", i), tap.Routed))
	}
	tp.Offer(rec("app", "track", "u1", "other-source", tap.Routed))

	var ids []string
	err := c.Tail(context.Background(), admin.TailQuery{Filter: tap.Filter{Source: "web"}, Recent: 3, NoFollow: true}, func(m admin.TailMessage) error {
		if m.Record == nil || m.Record.Payload != nil {
			t.Errorf("message %+v: want a record without its payload", m)
		} else {
			ids = append(ids, m.Record.MessageID)
		}
		return nil
	})
	if err != nil || strings.Join(ids, ",") != "m2,m3,m4" {
		t.Fatalf("n=3 follow=0: %v, %v; want m2,m3,m4 and the end", ids, err)
	}
	if tp.Watchers() != 0 {
		t.Errorf("follow=0 left %d subscriptions", tp.Watchers())
	}

	resp, err := srv.Client().Get(srv.URL + "?n=1&follow=0&full=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for h, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	body, _ := io.ReadAll(resp.Body)
	want := `data: {"time":` // one event, the record's JSON on one line, then a blank line
	if !strings.HasPrefix(string(body), want) || !strings.HasSuffix(string(body), "}\n\n") || strings.Count(string(body), "\n") != 2 ||
		!strings.Contains(string(body), `"payload":{"messageId":"other-source","html":"<b>&</b>"}`) {
		t.Errorf("n=1 full=1 follow=0: %q, want one data event with the payload as it is", body)
	}
}

// TestTailBadQuery: a bad parameter is a 400 whose JSON error names it,
// and opens no subscription.
func TestTailBadQuery(t *testing.T) {
	tp := tap.New()
	srv, c := tailServer(t, tp)
	for query, name := range map[string]string{
		"type=nope": "type", "fate=lost": "fate", "rate=-1": "rate", "rate=20000": "rate", "rate=fast": "rate",
		"sample=-2": "sample", "n=257": "n", "n=-1": "n", "full=maybe": "full", "follow=2": "follow", "users=u1": "users",
	} {
		resp, err := srv.Client().Get(srv.URL + "?" + query)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 400 || err != nil || !strings.HasPrefix(e.Error, name+" ") && !strings.Contains(e.Error, `"`+name+`"`) {
			t.Errorf("?%s: %d %q, want 400 and an error naming %s", query, resp.StatusCode, e.Error, name)
		}
	}
	err := c.Tail(context.Background(), admin.TailQuery{Filter: tap.Filter{Fate: "lost"}}, func(admin.TailMessage) error { return nil })
	var apiErr *admin.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "fate") {
		t.Errorf("Tail with a bad fate: %v, want the 400 naming fate", err)
	}
	if tp.Watchers() != 0 {
		t.Errorf("bad queries left %d subscriptions", tp.Watchers())
	}
}

// TestTailStreamsBounded: beyond MaxTailStreams streams at once, a 503
// that says why.
func TestTailStreamsBounded(t *testing.T) {
	tp := tap.New()
	srv, c := tailServer(t, tp)
	var waits []func() ([]admin.TailMessage, error)
	for range admin.MaxTailStreams {
		waits = append(waits, follow(t, tp, c, admin.TailQuery{}, 1))
	}
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "tail streams are open") {
		t.Errorf("one stream too many: %d %s, want 503 saying why", resp.StatusCode, body)
	}
	tp.Offer(rec("web", "track", "u1", "m1", tap.Routed))
	for _, wait := range waits {
		if got, err := wait(); err != nil || got[0].Record.MessageID != "m1" {
			t.Errorf("stream: %+v, %v", got, err)
		}
	}
	until(t, "the streams to close", func() bool { return tp.Watchers() == 0 })
	wait := follow(t, tp, c, admin.TailQuery{}, 1) // a slot is free again
	tp.Offer(rec("web", "track", "u1", "m2", tap.Routed))
	if got, err := wait(); err != nil || got[0].Record.MessageID != "m2" {
		t.Errorf("a stream after the others closed: %+v, %v", got, err)
	}
}

// blockedWriter is a ResponseWriter whose writes go into a pipe: they
// wait until the test reads them. entered is signalled on each write.
type blockedWriter struct {
	hdr     http.Header
	pw      *io.PipeWriter
	entered chan struct{}
}

func (w *blockedWriter) Header() http.Header { return w.hdr }
func (w *blockedWriter) WriteHeader(int)     {}
func (w *blockedWriter) Flush()              {}
func (w *blockedWriter) Write(b []byte) (int, error) {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	return w.pw.Write(b)
}

// TestTailMissed: records that do not fit the buffer of a stream that
// is behind are counted, and the stream says how many it missed: every
// record published is either sent or counted.
func TestTailMissed(t *testing.T) {
	tp := tap.New()
	pr, pw := io.Pipe()
	w := &blockedWriter{hdr: http.Header{}, pw: pw, entered: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/admin/tail?rate="+fmt.Sprint(tap.MaxRate), nil)
	served := make(chan struct{})
	go func() {
		defer close(served)
		admin.TailHandler(tp).ServeHTTP(w, req)
	}()
	until(t, "the subscription", func() bool { return tp.Watchers() == 1 })

	// The first record's write waits for the reader, which reads nothing
	// yet: the stream is stuck and its buffer empty.
	tp.Offer(rec("web", "track", "u1", "first", tap.Routed))
	<-w.entered
	const over = 10
	for i := range tap.Buffer + over {
		tp.Offer(rec("web", "track", "u1", fmt.Sprint(i), tap.Routed))
	}

	var records, missed int
	sc := bufio.NewScanner(pr)
	sc.Buffer(nil, 1<<20)
	event := ""
	for records+missed < 1+tap.Buffer+over && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "missed":
			var m struct{ Missed int }
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m); err != nil {
				t.Fatalf("missed event %q: %v", line, err)
			}
			missed += m.Missed
		case strings.HasPrefix(line, "data: "):
			records++
		case line == "":
			event = ""
		}
	}
	if records != 1+tap.Buffer || missed != over {
		t.Errorf("%d records and %d missed, want %d and %d", records, missed, 1+tap.Buffer, over)
	}
	cancel()
	go io.Copy(io.Discard, pr) // whatever the stream still writes
	<-served
	if n := tp.Watchers(); n != 0 {
		t.Errorf("%d subscriptions after the client went, want 0", n)
	}
}

// TestTailEndsWithServer: a stream ends when the admin server stops,
// and Serve returns without waiting for it.
func TestTailEndsWithServer(t *testing.T) {
	tp := tap.New()
	store := consentstore.New(consentstore.NewMemory(), consentstore.Options{})
	t.Cleanup(func() { store.Close() })
	reg, vs := newRegistry(t, newEngine(t), store, filepath.Join(t.TempDir(), "functions"))
	a, err := admin.New(admin.Config{Token: token}, admin.Deps{Registry: reg, Versions: vs, Logger: slog.New(slog.DiscardHandler),
		Handlers: map[string]http.Handler{"GET /admin/tail": admin.TailHandler(tp)}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()

	c := admin.Client{URL: "http://" + ln.Addr().String(), Token: token}
	var wg sync.WaitGroup
	var tailErr error
	tctx, cancel := context.WithTimeout(context.Background(), time.Minute) // against hanging
	defer cancel()
	wg.Go(func() {
		tailErr = c.Tail(tctx, admin.TailQuery{}, func(admin.TailMessage) error { return nil })
	})
	until(t, "the subscription", func() bool { return tp.Watchers() == 1 })
	stop()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v, want nil: the stream should end when the server stops", err)
	}
	wg.Wait()
	if !errors.Is(tailErr, admin.ErrTailEnded) {
		t.Errorf("Tail: %v, want ErrTailEnded", tailErr)
	}
	if n := tp.Watchers(); n != 0 {
		t.Errorf("%d subscriptions after the server stopped", n)
	}
}

// TestTailClientReads: the client reads a stream as the server writes
// it: comments skipped, missed counts, data over several lines, an
// unknown event type skipped, a record with a payload near the largest.
func TestTailClientReads(t *testing.T) {
	big := `{"x":"` + strings.Repeat("\\u0001", tap.MaxPayload/6-10) + `"}`
	stream := ": keep-alive\n\n" +
		"data: {\"time\":\"2026-01-02T03:04:05Z\",\"stage\":\"pipeline\",\"source\":\"web\",\"type\":\"track\",\"messageId\":\"m1\",\"fate\":\"dropped\",\"function\":\"consent-match\",\"reason\":\"Consent mismatch\"}\n\n" +
		"event: missed\ndata: {\"missed\":7}\n\n" +
		"event: something-new\ndata: {}\n\n" +
		"data: {\"time\":\"2026-01-02T03:04:05Z\",\"fate\":\"delivered\",\n" +
		"data:  \"messageId\":\"m2\"}\n\n" +
		"data: {\"fate\":\"routed\",\"messageId\":\"m3\",\"payload\":" + big + "}\n\n"
	var mu sync.Mutex
	body := stream
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":"unauthorized"}`)
			return
		}
		v := r.URL.Query()
		if f := v.Get("follow"); f != "" && f != "0" {
			t.Errorf("follow=%s: want 0 or left out (1)", f)
		}
		v.Del("follow")
		if got := v.Encode(); got != "fate=dropped&full=1&n=5&rate=3&sample=2&source=web&type=track&user=u1" {
			t.Errorf("query %s", got)
		}
		mu.Lock()
		defer mu.Unlock()
		io.WriteString(w, body)
	}))
	defer srv.Close()
	c := admin.Client{URL: srv.URL, Token: token}
	q := admin.TailQuery{Filter: tap.Filter{Source: "web", Type: "track", User: "u1", Fate: tap.Dropped, Full: true, Rate: 3, Sample: 2},
		Recent: 5, NoFollow: true}
	var got []string
	err := c.Tail(context.Background(), q, func(m admin.TailMessage) error {
		if m.Record != nil {
			got = append(got, fmt.Sprintf("%s %s %s %d", m.Record.MessageID, m.Record.Fate, m.Record.Reason, len(m.Record.Payload)))
		} else {
			got = append(got, fmt.Sprintf("missed %d", m.Missed))
		}
		return nil
	})
	want := []string{"m1 dropped Consent mismatch 0", "missed 7", "m2 delivered  0", fmt.Sprintf("m3 routed  %d", len(big))}
	if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Tail: %q, %v\nwant %q", got, err, want)
	}

	q.NoFollow = false // the server ends a stream that should follow
	if err := c.Tail(context.Background(), q, func(admin.TailMessage) error { return nil }); !errors.Is(err, admin.ErrTailEnded) {
		t.Errorf("a following stream the server ended: %v, want ErrTailEnded", err)
	}
	q.NoFollow = true

	mu.Lock()
	body = "data: {not json}\n\n"
	mu.Unlock()
	if err := c.Tail(context.Background(), q, func(admin.TailMessage) error { return nil }); err == nil || !strings.Contains(err.Error(), "not the JSON") {
		t.Errorf("a broken record: %v, want an error saying so", err)
	}

	bad := admin.Client{URL: srv.URL, Token: "wrong-token-0123456789"}
	var apiErr *admin.APIError
	if err := bad.Tail(context.Background(), q, nil); !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Message != "unauthorized" {
		t.Errorf("a refused token: %v, want the 401", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if err := (&admin.Client{URL: "http://" + addr, Token: token}).Tail(context.Background(), q, nil); err == nil || errors.As(err, &apiErr) {
		t.Errorf("no server: %v, want a connection error", err)
	}
}

// TestTailLargestPayload: the largest payload a record carries, even one
// escaped to six times its size (a function's output that is not JSON,
// of control characters), reaches the client whole.
func TestTailLargestPayload(t *testing.T) {
	tp := tap.New()
	_, c := tailServer(t, tp)
	event := strings.Repeat("\x01", tap.MaxPayload)
	r := &tap.Record{Time: time.Now(), Stage: tap.StageDelivery, Source: "web", Type: "track", Fate: tap.Delivered, Destination: "hook"}
	r.ReadEvent([]byte(event), true)
	tp.Offer(r)
	var got string
	err := c.Tail(context.Background(), admin.TailQuery{Filter: tap.Filter{Full: true}, Recent: 1, NoFollow: true}, func(m admin.TailMessage) error {
		return json.Unmarshal(m.Record.Payload, &got)
	})
	if err != nil || got != event {
		t.Errorf("Tail: %v; payload of %d bytes, want the event's %d", err, len(got), len(event))
	}
}
