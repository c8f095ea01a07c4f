package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	analytics "github.com/segmentio/analytics-go/v3"

	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/ingest"
	"github.com/insertfn/insertfn/sdk/consent"
)

// TestAnalyticsGo: Segment's own Go library, unmodified, sends events to
// the server with consent-match on. Events whose consent matches the
// stored record reach the sink; mismatched ones do not and are counted as
// dropped with reason "Consent mismatch".
func TestAnalyticsGo(t *testing.T) {
	out := newSink(t)
	h := start(t, baseConfig(t, []config.Function{consentMatch(t)}, []string{"consent-match"}, webhookDest("warehouse", out.srv.URL)))
	if _, err := h.Store().Update(context.Background(), consentstore.Update{Source: "test", Record: consent.Record{ID: "u123",
		Categories: []consent.Category{{Name: "Advertising", Consented: true, Timestamp: 1000}, {Name: "Analytics", Consented: false, Timestamp: 1000}}}}); err != nil {
		t.Fatal(err)
	}

	client, err := analytics.NewWithConfig(writeKey, analytics.Config{
		Endpoint:  "http://" + h.Addr().String(),
		BatchSize: 10,
		Interval:  50 * time.Millisecond,
		Logger:    testLogger{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	prefs := func(ads, an bool) *analytics.Context {
		return &analytics.Context{Extra: map[string]any{"consent": map[string]any{
			"categoryPreferences": map[string]bool{"Advertising": ads, "Analytics": an}}}}
	}
	const n = 30
	for i := range n {
		// Two in three match the stored consent; every third is stale.
		stale := i%3 == 2
		msg := analytics.Track{MessageId: fmt.Sprintf("m%02d", i), UserId: "u123", Event: "Order Completed",
			Properties: analytics.NewProperties().Set("revenue", 10+i), Context: prefs(true, stale)}
		if err := client.Enqueue(msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Enqueue(analytics.Identify{MessageId: "id1", UserId: "u123", Traits: analytics.NewTraits().SetEmail("a@example.com"),
		Context: prefs(true, false)}); err != nil {
		t.Fatal(err)
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event to settle", func() bool { return settled(h, n+1) })
	got := out.ids()
	var want []string
	for i := range n {
		if i%3 != 2 {
			want = append(want, fmt.Sprintf("m%02d", i))
		}
	}
	want = append(want, "id1")
	slices.Sort(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("sink got %v\nwant %v", got, want)
	}
	if d := h.Counters().Snapshot().Dropped["Consent mismatch"]; d != n/3 {
		t.Errorf("dropped for Consent mismatch: %d, want %d", d, n/3)
	}
}

type testLogger struct{ t *testing.T }

func (l testLogger) Logf(format string, args ...any)   { l.t.Logf(format, args...) }
func (l testLogger) Errorf(format string, args ...any) { l.t.Errorf("analytics-go: "+format, args...) }

// TestCrash: a load generator sends events while the server is killed with
// SIGKILL and restarted; every event that got a 200 reaches the webhook
// sink at least once.
func TestCrash(t *testing.T) {
	if os.Getenv("INSERTFN_CRASH_CHILD") != "" {
		t.Skip("running as the crash child")
	}
	out := newSink(t)
	data := t.TempDir()

	var acked sync.Map // messageId -> true, for 200s
	var sent atomic.Int64
	runChild := func() (*exec.Cmd, string) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), "INSERTFN_CRASH_CHILD=1", "INSERTFN_CRASH_DATA="+data, "INSERTFN_CRASH_SINK="+out.srv.URL)
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
				go func() {
					for sc.Scan() {
					}
				}()
				return cmd, addr
			}
		}
		t.Fatal("the child did not start")
		return nil, ""
	}

	// load sends events to addr until stop closes, single ones from three
	// workers and batches of ten from a fourth (a request's events are one
	// item in the queue); each 200 is recorded.
	load := func(addr string, stop <-chan struct{}) {
		var wg sync.WaitGroup
		client := &http.Client{Timeout: 5 * time.Second}
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("w%d-%d-%d", w, sent.Add(1), i)
					ids, path, body := []string{id}, "/v1/track", `{"userId":"u1","event":"e","messageId":"`+id+`"}`
					if w == 0 {
						ids, path = nil, "/v1/batch"
						var b strings.Builder
						b.WriteString(`{"batch":[`)
						for j := range 10 {
							ids = append(ids, fmt.Sprintf("%s-%d", id, j))
							if j > 0 {
								b.WriteByte(',')
							}
							b.WriteString(`{"type":"track","userId":"u1","event":"e","messageId":"` + ids[j] + `"}`)
						}
						b.WriteString(`]}`)
						body = b.String()
						sent.Add(9)
					}
					req, _ := http.NewRequest("POST", "http://"+addr+path, strings.NewReader(body))
					req.SetBasicAuth(writeKey, "")
					resp, err := client.Do(req)
					if err != nil {
						continue // the server is gone: not acknowledged
					}
					resp.Body.Close()
					if resp.StatusCode == 200 {
						for _, id := range ids {
							acked.Store(id, true)
						}
					}
				}
			})
		}
		wg.Wait()
	}

	for round := range 3 {
		cmd, addr := runChild()
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { load(addr, stop); close(done) }()
		time.Sleep(time.Duration(300+200*round) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		close(stop)
		<-done
	}
	// A last start delivers what the killed ones left in the queue.
	cmd, _ := runChild()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()

	var want []string
	acked.Range(func(k, _ any) bool { want = append(want, k.(string)); return true })
	batched := 0
	for _, id := range want {
		if strings.HasPrefix(id, "w0-") {
			batched++
		}
	}
	if len(want) < 50 || batched < 10 {
		t.Fatalf("only %d events were acknowledged, %d of them in batches; the load generator did not get going", len(want), batched)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := make(map[string]bool)
		for _, id := range out.ids() {
			got[id] = true
		}
		var missing []string
		for _, id := range want {
			if !got[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			t.Logf("%d events acknowledged over 3 kills (%d in batches of ten), all delivered (%d sent)", len(want), batched, sent.Load())
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events never reached the sink, e.g. %v", len(missing), len(want), missing[:min(5, len(missing))])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCrashChild is the server process of TestCrash.
func TestCrashChild(t *testing.T) {
	data := os.Getenv("INSERTFN_CRASH_DATA")
	if os.Getenv("INSERTFN_CRASH_CHILD") == "" || data == "" {
		t.Skip("only run by TestCrash")
	}
	y := fmt.Sprintf("data: %s\ndelivery: {backoff: {initial: 20ms, max: 200ms, max_attempts: -1}}\n", data)
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	c.Sources = []config.Source{{Source: serverSource("web", writeKey)}}
	c.Destinations = []config.Destination{webhookDest("sink", os.Getenv("INSERTFN_CRASH_SINK"))}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h, err := Start(context.Background(), c, Options{Listener: ln, AdminListener: loopback(t)})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ADDR %s\n", h.Addr())
	os.Stdout.Sync()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	<-ctx.Done() // until killed, or stopped at the end of the test
	h.Shutdown(context.Background())
}

func serverSource(name, key string) ingest.Source {
	return ingest.Source{Name: name, WriteKeys: []string{key}}
}

// TestConsentStoreDown: with the company's consent service hanging, a
// lookup fails within the store's timeout, consent-match sees
// ErrConsentUnavailable (a RetryError by its settings), retries, and its
// failure policy (drop) decides; the server keeps serving, and once the
// service answers again events flow.
func TestConsentStoreDown(t *testing.T) {
	var hang atomic.Bool
	hang.Store(true)
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.Write([]byte(`{"id":"u1","categoryPreferences":{"Advertising":true}}`))
	}))
	defer svc.Close()
	out := newSink(t)
	c := baseConfig(t, []config.Function{consentMatch(t)}, []string{"consent-match"}, webhookDest("sink", out.srv.URL))
	c.Consent.Backend = "http"
	c.Consent.HTTP.URL = svc.URL + "/users/{id}"
	c.Consent.HTTP.Timeout = 50 * time.Millisecond
	c.Consent.Cache.Size = -1
	h := start(t, c)
	ev := func(id string) string {
		return `{"userId":"u1","event":"e","messageId":"` + id + `","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`
	}
	if code := post(t, h, "/v1/track", ev("while-down")); code != 200 {
		t.Fatalf("POST: %d", code)
	}
	waitFor(t, "the event to be dropped by the failure policy", func() bool { return settled(h, 1) })
	s := h.Counters().Snapshot()
	if s.Dropped["RetryError"] != 1 || s.Functions["consent-match"].Failed != 1 {
		t.Errorf("counters while the store is down: %+v", s)
	}
	hang.Store(false)
	if code := post(t, h, "/v1/track", ev("after")); code != 200 {
		t.Fatalf("POST: %d", code)
	}
	waitFor(t, "the event after recovery", func() bool { return slices.Contains(out.ids(), "after") })
	if slices.Contains(out.ids(), "while-down") {
		t.Error("the event whose consent could not be checked was delivered")
	}
}

// TestBacklogBound: a destination that is down fills its backlog up to the
// queue's disk bound; then the ingest answers 429 (slow down) with a clear error
// instead of growing without end, and takes events again once the backlog
// drains.
func TestBacklogBound(t *testing.T) {
	down := newSink(t)
	down.setStatus(http.StatusServiceUnavailable)
	c := baseConfig(t, nil, nil, webhookDest("down", down.srv.URL))
	c.Queue.MaxBytes = 64 << 10
	h := start(t, c)
	body := `{"userId":"u1","event":"e","messageId":"%s","properties":{"pad":"` + strings.Repeat("x", 1000) + `"}}`
	var got429 bool
	accepted := 0
	for i := range 200 {
		req, _ := http.NewRequest("POST", "http://"+h.Addr().String()+"/v1/track", strings.NewReader(fmt.Sprintf(body, fmt.Sprint("m", i))))
		req.SetBasicAuth(writeKey, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			got429 = true
			if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(msg), "full") {
				t.Errorf("429 without Retry-After or a clear error: %s", msg)
			}
			break
		}
		if resp.StatusCode != 200 {
			t.Fatalf("POST %d: %d %s", i, resp.StatusCode, msg)
		}
		accepted++
	}
	if !got429 {
		t.Fatalf("200 events of 1 KB accepted with a 64 KiB bound and the destination down")
	}
	used, limit := h.Queue().Usage()
	if used > limit+2<<10 {
		t.Errorf("queue uses %d bytes, over its bound %d", used, limit)
	}
	down.setStatus(0)
	waitFor(t, "the backlog to drain", func() bool { return len(down.ids()) == accepted })
	waitFor(t, "the ingest to take events again", func() bool {
		return post(t, h, "/v1/track", fmt.Sprintf(body, "after")) == 200
	})
}

// TestDeadLetters: a destination that refuses an event for good (400) gets
// it moved to the dead letters, counted as failed; the other events go on.
func TestDeadLettersOnPermanentFailure(t *testing.T) {
	var reject atomic.Bool
	reject.Store(true)
	got := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reject.Load() {
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		w.WriteHeader(200)
		got <- "ok"
	}))
	defer srv.Close()
	h := start(t, baseConfig(t, nil, nil, webhookDest("strict", srv.URL)))
	if code := post(t, h, "/v1/track", `{"userId":"u1","event":"e","messageId":"bad1"}`); code != 200 {
		t.Fatal(code)
	}
	waitFor(t, "the dead letter", func() bool { return h.Counters().Snapshot().Destinations["strict"].Failed == 1 })
	dead, err := h.Queue().DeadLetters("dest:strict", 0, 0)
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].Reason, "400") || !strings.Contains(string(dead[0].Data), "bad1") {
		t.Fatalf("dead letters %+v, %v; want the event with the 400 reason", dead, err)
	}
	reject.Store(false)
	if n, err := h.Queue().Replay(context.Background(), "dest:strict"); err != nil || n != 1 {
		t.Fatalf("Replay: %d, %v", n, err)
	}
	select {
	case <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("the replayed event was not delivered")
	}
}

// TestMetricsAddUp reads /metrics after a known set of events: per
// destination, events received = delivered + dropped + filtered + failed.
func TestMetricsAddUp(t *testing.T) {
	ads, all := newSink(t), newSink(t)
	h := start(t, baseConfig(t, []config.Function{consentMatch(t)}, []string{"consent-match"},
		webhookDest("ads", ads.srv.URL, "Advertising"), webhookDest("all", all.srv.URL)))
	if _, err := h.Store().Update(context.Background(), consentstore.Update{Source: "test", Record: consent.Record{ID: "u1",
		Categories: []consent.Category{{Name: "Advertising", Consented: true, Timestamp: 1}, {Name: "Analytics", Consented: false, Timestamp: 1}}}}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		ads, an := "true", "false"
		switch i % 4 {
		case 1:
			ads = "false" // stale: dropped by consent-match
		case 2:
			an = "false" // matches; ads allowed
		}
		body := fmt.Sprintf(`{"userId":"u1","event":"e","messageId":"m%d","context":{"consent":{"categoryPreferences":{"Advertising":%s,"Analytics":%s}}}}`, i, ads, an)
		if i%4 == 3 {
			body = fmt.Sprintf(`{"userId":"u1","event":"e","messageId":"m%d","context":{"consent":{"categoryPreferences":{"Analytics":false}}}}`, i)
		}
		if code := post(t, h, "/v1/track", body); code != 200 {
			t.Fatalf("POST %d: %d", i, code)
		}
	}
	waitFor(t, "every event to settle", func() bool { return settled(h, n) })

	rec := httptest.NewRecorder()
	h.Metrics().Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	metric := func(series string) float64 {
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok {
				var f float64
				fmt.Sscan(v, &f)
				return f
			}
		}
		return 0
	}
	accepted := metric("insertfn_ingest_events_accepted_total")
	dropped := metric(`insertfn_pipeline_events_dropped_total{reason="Consent mismatch"}`)
	if accepted != n || dropped != n/4 {
		t.Fatalf("accepted %v, dropped %v; want %d and %d\n%s", accepted, dropped, n, n/4, text)
	}
	for _, d := range []string{"ads", "all"} {
		delivered := metric(`insertfn_destination_events_delivered_total{destination="` + d + `"}`)
		failed := metric(`insertfn_destination_events_failed_total{destination="` + d + `"}`)
		filtered := metric(`insertfn_destination_events_filtered_total{destination="`+d+`",reason="consent"}`) +
			metric(`insertfn_destination_events_filtered_total{destination="`+d+`",reason="integrations"}`)
		if delivered+failed+filtered+dropped != accepted {
			t.Errorf("%s: delivered %v + failed %v + filtered %v + dropped %v != received %v", d, delivered, failed, filtered, dropped, accepted)
		}
	}
	if got := metric(`insertfn_destination_events_filtered_total{destination="ads",reason="consent"}`); got != n/4 {
		t.Errorf("ads filtered by consent: %v, want %d (the events without Advertising)", got, n/4)
	}
	if got := metric(`insertfn_consent_lookups_total{backend="embedded",result="found"}`); got < n {
		t.Errorf("consent lookups found: %v, want one per event at least (%d)", got, n)
	}
}
