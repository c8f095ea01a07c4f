package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	analytics "github.com/segmentio/analytics-go/v3"
)

// serve starts s on a loopback listener and returns its base URL; the
// server is shut down when the test ends.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func post(t *testing.T, url, key string, body []byte, header map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", res.StatusCode, raw)
	}
	return res.StatusCode, m
}

func TestOverTheWire(t *testing.T) {
	s, rec := newTestServer(t, Config{MaxEventBytes: 1 << 10, MaxBatchBytes: 4 << 10})
	url := serve(t, s)

	status, m := post(t, url+"/v1/batch", testKey,
		gz(t, []byte(`{"batch":[{"type":"track","userId":"u","event":"wire"}]}`)),
		map[string]string{"Content-Encoding": "gzip", "Content-Type": "application/json"})
	if status != 200 || m["success"] != true {
		t.Fatalf("gzip batch answered %d %v", status, m)
	}
	if evs := rec.events(); len(evs) != 1 || evs[0]["event"] != "wire" {
		t.Fatalf("accepted %v", evs)
	}

	// A body over what is drained (DrainFactor times the limits) is
	// refused from its Content-Length, still with a JSON answer, and the
	// connection closed. The request goes over a raw connection with only
	// the first 8 KiB of its body: a client still writing 200 KiB when the
	// server answers and closes may see the connection reset instead of
	// the answer (the documented behaviour past the drain limit).
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/batch HTTP/1.1\r\nHost: insertfn\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		base64.StdEncoding.EncodeToString([]byte(testKey+":")), 200<<10, strings.Repeat(" ", 8<<10))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("oversized body: %v", err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m = nil
	if err := json.Unmarshal(raw, &m); err != nil || res.StatusCode != 413 || m["success"] != false {
		t.Fatalf("oversized body answered %d %q, want 413 and JSON", res.StatusCode, raw)
	}
	if st := s.Stats(); st.Rejected.TooLarge != 1 {
		t.Errorf("stats %+v, want one TooLarge", st)
	}
}

// TestAnalyticsGo sends events with Segment's own Go client, unmodified,
// and checks that they arrive with their consent intact.
func TestAnalyticsGo(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	url := serve(t, s)

	var failures []error
	var mu sync.Mutex
	client, err := analytics.NewWithConfig(testKey, analytics.Config{
		Endpoint:  url,
		Interval:  time.Hour, // only Close flushes
		BatchSize: 250,
		Callback: callback{failure: func(_ analytics.Message, err error) {
			mu.Lock()
			failures = append(failures, err)
			mu.Unlock()
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	consent := map[string]any{
		"categoryPreferences": map[string]any{"Analytics": true, "Advertising": false},
	}
	ctx := &analytics.Context{Extra: map[string]any{"consent": consent}}
	ts := time.Date(2024, 5, 1, 11, 59, 0, 0, time.UTC)
	msgs := []analytics.Message{
		analytics.Track{UserId: "user-1", Event: "Order Completed", Properties: analytics.NewProperties().Set("revenue", 12.5), Context: ctx, Timestamp: ts},
		analytics.Identify{UserId: "user-1", Traits: analytics.NewTraits().SetEmail("u@example.com"), Context: ctx},
		analytics.Page{AnonymousId: "anon-1", Name: "Pricing", Context: ctx},
	}
	for _, m := range msgs {
		if err := client.Enqueue(m); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	if err := client.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(failures) != 0 {
		t.Fatalf("analytics-go reported failures: %v", failures)
	}

	evs := rec.events()
	if len(evs) != 3 {
		t.Fatalf("accepted %d events, want 3: %v", len(evs), evs)
	}
	wantTypes := []string{"track", "identify", "page"}
	for i, e := range evs {
		if e["type"] != wantTypes[i] {
			t.Errorf("event %d type %v, want %s", i, e["type"], wantTypes[i])
		}
		c, _ := e["context"].(map[string]any)
		prefs, _ := c["consent"].(map[string]any)["categoryPreferences"].(map[string]any)
		if prefs["Analytics"] != true || prefs["Advertising"] != false || len(prefs) != 2 {
			t.Errorf("event %d context.consent = %v, want the consent object intact", i, c["consent"])
		}
		if lib, _ := c["library"].(map[string]any); lib["name"] != "analytics-go" {
			t.Errorf("event %d context.library = %v, want the batch's analytics-go", i, c["library"])
		}
		if id, _ := e["messageId"].(string); id == "" || strings.HasPrefix(id, "ifn-") {
			t.Errorf("event %d messageId %q, want the client's", i, id)
		}
		if e["receivedAt"] != testNowString || e["sentAt"] == nil {
			t.Errorf("event %d receivedAt %v sentAt %v", i, e["receivedAt"], e["sentAt"])
		}
	}
	if evs[0]["event"] != "Order Completed" || evs[0]["properties"].(map[string]any)["revenue"] != 12.5 {
		t.Errorf("track event %v", evs[0])
	}
	if evs[0]["originalTimestamp"] == nil {
		t.Errorf("the client's timestamp was not kept as originalTimestamp: %v", evs[0])
	}
	if evs[2]["anonymousId"] != "anon-1" || evs[2]["name"] != "Pricing" {
		t.Errorf("page event %v", evs[2])
	}
}

type callback struct {
	failure func(analytics.Message, error)
}

func (callback) Success(analytics.Message)                {}
func (c callback) Failure(m analytics.Message, err error) { c.failure(m, err) }

// blockingAccepter holds every Accept call until release is closed.
type blockingAccepter struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingAccepter) Accept(ctx context.Context, _ string, _ [][]byte) error {
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestShutdownWaitsForInFlight(t *testing.T) {
	acc := &blockingAccepter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s, err := New(Config{}, testSources, acc)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	answered := make(chan int, 1)
	go func() {
		res, err := http.Post("http://"+ln.Addr().String()+"/v1/track?x", "application/json",
			strings.NewReader(`{"writeKey":"`+testKey+`","userId":"u","event":"e"}`))
		if err != nil {
			answered <- -1
			return
		}
		res.Body.Close()
		answered <- res.StatusCode
	}()
	<-acc.entered

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(acc.release)
	if code := <-answered; code != 200 {
		t.Fatalf("the in-flight request was answered %d, want 200", code)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := s.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}
}

func TestShutdownGivesUp(t *testing.T) {
	acc := &blockingAccepter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s, err := New(Config{}, testSources, acc)
	if err != nil {
		t.Fatal(err)
	}
	url := ""
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url = "http://" + ln.Addr().String()
	go s.Serve(ln)

	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", url+"/v1/track", strings.NewReader(`{"userId":"u","event":"e"}`))
		req.SetBasicAuth(testKey, "")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- -1
			return
		}
		res.Body.Close()
		answered <- res.StatusCode
	}()
	<-acc.entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want a deadline error", err)
	}
	if code := <-answered; code != 503 {
		t.Fatalf("the abandoned request was answered %d, want 503", code)
	}
}

func TestServeAfterShutdown(t *testing.T) {
	s, _ := newTestServer(t, Config{Listen: "127.0.0.1:0"})
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown of a server never started: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := s.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}
	if err := s.ListenAndServe(); !errors.Is(err, ErrServerClosed) {
		t.Errorf("ListenAndServe after Shutdown: %v, want ErrServerClosed", err)
	}
}

func TestListenError(t *testing.T) {
	s, _ := newTestServer(t, Config{Listen: "256.0.0.1:bad"})
	if err := s.ListenAndServe(); err == nil || !strings.Contains(err.Error(), "256.0.0.1:bad") {
		t.Fatalf("ListenAndServe on a bad address: %v, want an error naming it", err)
	}
}

// TestConcurrentRequests checks that concurrent requests never see each
// other's buffers: every event arrives once, intact, from its own source.
func TestConcurrentRequests(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	const workers, requests, perBatch = 6, 20, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := testKey
			if w%2 == 1 {
				key = otherKey
			}
			for r := range requests {
				var evs []string
				for e := range perBatch {
					evs = append(evs, fmt.Sprintf(`{"type":"track","userId":"w%d","event":"e","messageId":"%d-%d-%d","properties":{"w":%d}}`, w, w, r, e, w))
				}
				resp := do(t, s, request{path: "/v1/batch", auth: key, body: `{"batch":[` + strings.Join(evs, ",") + `]}`})
				if resp.status != 200 {
					t.Errorf("answered %d %s", resp.status, resp.body)
				}
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, c := range rec.calls {
		for _, e := range c.events {
			id := e["messageId"].(string)
			w := int(e["properties"].(map[string]any)["w"].(float64))
			if seen[id] || e["userId"] != fmt.Sprintf("w%d", w) || !strings.HasPrefix(id, fmt.Sprintf("%d-", w)) {
				t.Fatalf("event %v mixed up or repeated", e)
			}
			if want := []string{"web", "app"}[w%2]; c.source != want {
				t.Fatalf("event of worker %d from source %s, want %s", w, c.source, want)
			}
			seen[id] = true
		}
	}
	if len(seen) != workers*requests*perBatch {
		t.Fatalf("%d events arrived, want %d", len(seen), workers*requests*perBatch)
	}
}
