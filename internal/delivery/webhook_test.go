package delivery

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

// tricky is an event whose bytes must reach the destination unchanged:
// raw UTF-8, escaped unicode and surrogate pairs, escaped quotes and
// control characters, and a slash escape gjson would not produce itself.
var tricky = []byte(`{"type":"track","event":"Zahlung \u00fcber \"Stra\u00dfe\"","properties":{"name":"Zoë 😀 日本","esc":"a\\b\/c\n\t\u0000\ud83d\ude00","n":1.50e+3},"messageId":"m-tricky"}`)

func testEvents(n int) [][]byte {
	evs := make([][]byte, n)
	for i := range evs {
		evs[i] = []byte(`{"type":"track","event":"Order Completed","userId":"u` + strconv.Itoa(i) + `","messageId":"m-` + strconv.Itoa(i) + `","properties":{"revenue":12.5}}`)
	}
	return evs
}

// recorder is an httptest handler that records requests and answers with
// the statuses queued in answers (200 once they run out).
type recorder struct {
	mu      sync.Mutex
	bodies  [][]byte
	headers []http.Header
	answers []answer
}

type answer struct {
	status int
	header map[string]string
	body   string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			http.Error(w, "bad gzip", 400)
			return
		}
		body, _ = io.ReadAll(zr)
	}
	rec.mu.Lock()
	rec.bodies = append(rec.bodies, body)
	rec.headers = append(rec.headers, r.Header.Clone())
	a := answer{status: 200, body: `{"success":true}`}
	if len(rec.answers) > 0 {
		a, rec.answers = rec.answers[0], rec.answers[1:]
	}
	rec.mu.Unlock()
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (rec *recorder) requests() ([][]byte, []http.Header) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([][]byte(nil), rec.bodies...), append([]http.Header(nil), rec.headers...)
}

func newWebhookServer(t *testing.T, cfg WebhookConfig, answers ...answer) (*Webhook, *recorder) {
	t.Helper()
	rec := &recorder{answers: answers}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	cfg.URL = srv.URL + "/hook?token=secret"
	w, err := NewWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, rec
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *delivery.Error", err, err)
	}
	return e
}

func TestWebhookBatchBodyAndHeaders(t *testing.T) {
	w, rec := newWebhookServer(t, WebhookConfig{Headers: map[string]string{"Authorization": "Bearer t0k", "X-Source": "insertfn-test"}})
	events := append(testEvents(3), tricky)
	if err := w.Deliver(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	bodies, headers := rec.requests()
	if len(bodies) != 1 {
		t.Fatalf("%d requests, want 1 batch", len(bodies))
	}
	if !gjson.ValidBytes(bodies[0]) {
		t.Fatalf("batch body is not valid JSON: %s", bodies[0])
	}
	batch := gjson.GetBytes(bodies[0], "batch").Array()
	if len(batch) != len(events) {
		t.Fatalf("batch has %d events, want %d", len(batch), len(events))
	}
	for i, ev := range batch {
		if ev.Raw != string(events[i]) {
			t.Errorf("event %d changed on the way:\n got %s\nwant %s", i, ev.Raw, events[i])
		}
	}
	if got := gjson.GetBytes(bodies[0], "batch.3.properties.name").String(); got != "Zoë 😀 日本" {
		t.Errorf("unicode property = %q", got)
	}
	h := headers[0]
	for k, want := range map[string]string{"Authorization": "Bearer t0k", "X-Source": "insertfn-test", "Content-Type": "application/json"} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

func TestWebhookEventMode(t *testing.T) {
	w, rec := newWebhookServer(t, WebhookConfig{Mode: ModeEvent})
	events := append(testEvents(2), tricky)
	if err := w.Deliver(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	bodies, _ := rec.requests()
	if len(bodies) != len(events) {
		t.Fatalf("%d requests, want one per event (%d)", len(bodies), len(events))
	}
	for i := range events {
		if !bytes.Equal(bodies[i], events[i]) {
			t.Errorf("request %d body = %s, want %s", i, bodies[i], events[i])
		}
	}
}

func TestWebhookEventModePartialFailure(t *testing.T) {
	w, rec := newWebhookServer(t, WebhookConfig{Mode: ModeEvent}, answer{status: 200}, answer{status: 200}, answer{status: 502, body: "bad gateway"})
	err := w.Deliver(context.Background(), testEvents(5))
	e := asError(t, err)
	if e.Delivered != 2 || e.Event != 3 || e.Status != 502 || !Retryable(err) {
		t.Fatalf("got Delivered=%d Event=%d Status=%d retryable=%v, want 2, 3, 502, true (%v)", e.Delivered, e.Event, e.Status, Retryable(err), err)
	}
	if bodies, _ := rec.requests(); len(bodies) != 3 {
		t.Fatalf("%d requests, want the first failure to stop the batch after 3", len(bodies))
	}
}

func TestWebhookServerErrorThenSuccess(t *testing.T) {
	w, rec := newWebhookServer(t, WebhookConfig{}, answer{status: 500, body: "database on fire"})
	events := testEvents(2)
	err := w.Deliver(context.Background(), events)
	if err == nil {
		t.Fatal("500 answer: got nil error")
	}
	e := asError(t, err)
	if !Retryable(err) || e.Status != 500 || e.Body != "database on fire" {
		t.Fatalf("500: retryable=%v status=%d body=%q", Retryable(err), e.Status, e.Body)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error message leaks the URL's query: %v", err)
	}
	if err := w.Deliver(context.Background(), events); err != nil {
		t.Fatalf("retry after 500: %v", err)
	}
	if bodies, _ := rec.requests(); len(bodies) != 2 || !bytes.Equal(bodies[0], bodies[1]) {
		t.Fatalf("the retry should send the same body again")
	}
}

func TestWebhookClassification(t *testing.T) {
	long := strings.Repeat("x", 150) + strings.Repeat("é", 100) // 350 bytes
	cases := []struct {
		status    int
		retryable bool
	}{
		{400, false}, {401, false}, {403, false}, {404, false}, {413, false}, {422, false},
		{408, true}, {429, true}, {500, true}, {502, true}, {503, true}, {504, true},
		{301, false},
	}
	for _, c := range cases {
		t.Run(strconv.Itoa(c.status), func(t *testing.T) {
			w, _ := newWebhookServer(t, WebhookConfig{}, answer{status: c.status, body: long, header: map[string]string{"Location": "/elsewhere"}})
			err := w.Deliver(context.Background(), testEvents(1))
			e := asError(t, err)
			if Retryable(err) != c.retryable || e.Permanent == c.retryable {
				t.Fatalf("status %d: Retryable=%v, want %v", c.status, Retryable(err), c.retryable)
			}
			if e.Status != c.status {
				t.Errorf("Status = %d", e.Status)
			}
			if len(e.Body) > 200 || !strings.HasPrefix(e.Body, "xxxxx") || !strings.Contains(err.Error(), e.Body) {
				t.Errorf("body excerpt %d bytes %q; error %v", len(e.Body), e.Body, err)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(c.status)) {
				t.Errorf("error does not name the status: %v", err)
			}
		})
	}
}

func TestWebhookRetryAfter(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	w, _ := newWebhookServer(t, WebhookConfig{},
		answer{status: 429, header: map[string]string{"Retry-After": "7"}},
		answer{status: 503, header: map[string]string{"Retry-After": date}},
		answer{status: 500, header: map[string]string{"Retry-After": "7"}},
	)
	err := w.Deliver(context.Background(), testEvents(1))
	if d, ok := RetryAfter(err); !ok || d != 7*time.Second || !Retryable(err) {
		t.Fatalf("429 Retry-After 7: got %v %v retryable=%v", d, ok, Retryable(err))
	}
	if got := (Backoff{}).Next(1, err, nil); got != 7*time.Second {
		t.Errorf("Backoff.Next after Retry-After 7 = %v, want 7s", got)
	}
	err = w.Deliver(context.Background(), testEvents(1))
	if d, ok := RetryAfter(err); !ok || d < 80*time.Second || d > 90*time.Second {
		t.Fatalf("503 Retry-After date: got %v %v", d, ok)
	}
	err = w.Deliver(context.Background(), testEvents(1))
	if d, ok := RetryAfter(err); ok {
		t.Fatalf("500 with Retry-After: got %v, want it ignored", d)
	}
}

func TestWebhookTimeoutIsRetryable(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	w, err := NewWebhook(WebhookConfig{URL: srv.URL, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	start := time.Now()
	err = w.Deliver(context.Background(), testEvents(1))
	if err == nil || !Retryable(err) || !errors.Is(err, fasthttp.ErrTimeout) {
		t.Fatalf("slow server: got %v, want a retryable timeout", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("Deliver took %v with a 100ms timeout", el)
	}

	// A context deadline shorter than Timeout bounds the request too.
	w2, _ := NewWebhook(WebhookConfig{URL: srv.URL})
	defer w2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := w2.Deliver(ctx, testEvents(1)); !Retryable(err) || !errors.Is(err, fasthttp.ErrTimeout) {
		t.Fatalf("context deadline: got %v", err)
	}
}

func TestWebhookConnectionRefusedIsRetryable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w, err := NewWebhook(WebhookConfig{URL: "http://" + addr + "/", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = w.Deliver(context.Background(), testEvents(1))
	if err == nil || !Retryable(err) {
		t.Fatalf("connection refused: got %v, want retryable", err)
	}
	if e := asError(t, err); e.Status != 0 || e.Err == nil {
		t.Fatalf("connection error: Status=%d Err=%v", e.Status, e.Err)
	}
}

func TestWebhookGzip(t *testing.T) {
	w, rec := newWebhookServer(t, WebhookConfig{Gzip: true})
	events := append(testEvents(50), tricky)
	if err := w.Deliver(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	bodies, headers := rec.requests()
	if headers[0].Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding = %q", headers[0].Get("Content-Encoding"))
	}
	if got := gjson.GetBytes(bodies[0], "batch.50").Raw; got != string(tricky) {
		t.Fatalf("gzip batch event 50 = %s", got)
	}
}

func TestWebhookRejectsNonObjectBeforeSending(t *testing.T) {
	w, rec := newWebhookServer(t, WebhookConfig{})
	events := testEvents(3)
	events[1] = []byte(`  `)
	err := w.Deliver(context.Background(), events)
	if err == nil || Retryable(err) || !strings.Contains(err.Error(), "event 1") {
		t.Fatalf("empty event: got %v, want a permanent error naming event 1", err)
	}
	if bodies, _ := rec.requests(); len(bodies) != 0 {
		t.Fatalf("%d requests sent for a batch with a bad event", len(bodies))
	}
}

func TestWebhookContextAndClose(t *testing.T) {
	w, rec := newWebhookServer(t, WebhookConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Deliver(ctx, testEvents(1)); !errors.Is(err, context.Canceled) || !Retryable(err) {
		t.Fatalf("cancelled context: got %v", err)
	}
	if err := w.Deliver(context.Background(), nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	w.Close()
	if err := w.Deliver(context.Background(), testEvents(1)); !errors.Is(err, ErrClosed) || !Retryable(err) {
		t.Fatalf("after Close: got %v", err)
	}
	if bodies, _ := rec.requests(); len(bodies) != 0 {
		t.Fatalf("%d requests sent", len(bodies))
	}
}

func TestWebhookDoesNotKeepEvents(t *testing.T) {
	w, rec := newWebhookServer(t, WebhookConfig{})
	events := testEvents(2)
	want := string(events[0])
	if err := w.Deliver(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	for i := range events[0] {
		events[0][i] = 'X'
	}
	bodies, _ := rec.requests()
	if got := gjson.GetBytes(bodies[0], "batch.0").Raw; got != want {
		t.Fatalf("sent body changed after the caller reused its slice: %s", got)
	}
}

func TestWebhookConcurrentDeliver(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n.Add(int64(len(gjson.GetBytes(body, "batch").Array())))
	}))
	defer srv.Close()
	w, err := NewWebhook(WebhookConfig{URL: srv.URL, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if err := w.Deliver(context.Background(), testEvents(5)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n.Load() != 8*10*5 {
		t.Fatalf("server saw %d events, want %d", n.Load(), 8*10*5)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-5":                            0,
		"120":                           2 * time.Minute,
		" 3 ":                           3 * time.Second,
		"99999999999999999999":          0, // does not parse as int64 nor as a date
		"9999999999":                    24 * time.Hour,
		"soon":                          0,
		"Fri, 02 Jan 2026 03:05:05 GMT": time.Minute,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0, // in the past
	}
	for in, want := range cases {
		if got := parseRetryAfter([]byte(in), now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"1", "Fri, 02 Jan 2026 03:05:05 GMT", "", "-1", "1e9"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		if d := parseRetryAfter([]byte(s), now); d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %v, out of [0, 24h]", s, d)
		}
	})
}

func TestWebhookIdleConnectionClosedByServer(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewUnstartedServer(rec)
	srv.Config.IdleTimeout = 20 * time.Millisecond
	srv.Start()
	defer srv.Close()
	w, err := NewWebhook(WebhookConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 3 {
		if err := w.Deliver(context.Background(), testEvents(1)); err != nil {
			t.Fatalf("delivery %d on a keep-alive connection the server closed: %v", i, err)
		}
		time.Sleep(100 * time.Millisecond) // the server closes the idle connection
	}
	if bodies, _ := rec.requests(); len(bodies) != 3 {
		t.Fatalf("server got %d requests, want 3", len(bodies))
	}
}
