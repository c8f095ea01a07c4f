package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/config"
)

func adminGet(t *testing.T, h *Server, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+h.AdminAddr().String()+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminThroughTheServer: the admin API of a running server: the token,
// probes without it, the overview page and its data, function logs, and a
// broken upload refused while the old version keeps serving.
func TestAdminThroughTheServer(t *testing.T) {
	out := newSink(t)
	fn := consentMatch(t)
	h := start(t, baseConfig(t, []config.Function{fn}, []string{"consent-match"}, webhookDest("out", out.srv.URL)))
	tok := h.AdminToken()

	for _, bad := range []string{"", "wrong-token-wrong-token"} {
		if code, body := adminGet(t, h, "/admin/functions", bad); code != 401 || strings.Contains(body, "consent-match") {
			t.Errorf("token %q: %d %s, want 401 that says nothing", bad, code, body)
		}
	}
	if code, _ := adminGet(t, h, "/healthz", ""); code != 200 {
		t.Errorf("/healthz without a token: %d", code)
	}
	if code, body := adminGet(t, h, "/readyz", ""); code != 200 {
		t.Errorf("/readyz: %d %s", code, body)
	}
	if code, body := adminGet(t, h, "/metrics", tok); code != 200 || !strings.Contains(body, "insertfn_ingest_requests_total") {
		t.Errorf("/metrics: %d", code)
	}

	if code := post(t, h, "/v1/track", `{"userId":"nobody","event":"e","messageId":"m1"}`); code != 200 {
		t.Fatal(code)
	}
	waitFor(t, "the event", func() bool { return len(out.ids()) == 1 })
	if code, body := adminGet(t, h, "/admin/overview/flow.json?minutes=5", tok); code != 200 || !strings.Contains(body, `"received":1`) {
		t.Errorf("overview: %d %s", code, body)
	}
	if code, body := adminGet(t, h, "/admin/overview/", tok); code != 200 || !strings.Contains(body, "Delivery overview") {
		t.Errorf("overview page: %d", code)
	}
	if code, body := adminGet(t, h, "/admin/functions/consent-match/logs?n=10", tok); code != 200 || !strings.HasPrefix(body, "[") {
		t.Errorf("function logs: %d %s", code, body)
	}

	client := &admin.Client{URL: "http://" + h.AdminAddr().String(), Token: tok}
	_, err := client.Deploy(context.Background(), functions.Manifest{Name: "consent-match"}, []byte("\x00asm\x01\x00\x00\x00garbage"))
	var apiErr *admin.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode < 400 || apiErr.StatusCode >= 500 {
		t.Fatalf("broken upload: %v, want a 4xx with the reason", err)
	}
	if code := post(t, h, "/v1/track", `{"userId":"nobody","event":"e","messageId":"m2"}`); code != 200 {
		t.Fatal(code)
	}
	waitFor(t, "an event after the refused upload", func() bool { return len(out.ids()) == 2 })

	// Test a deployed function on an event, activate a stored version,
	// and refuse to delete a function a source uses.
	wasm := builder.Build(t, "../../examples/consent-match")
	v1, err := client.Deploy(context.Background(), functions.Manifest{Name: "consent-match", Settings: []byte(`{"missingRecord":"drop"}`)}, wasm)
	if err != nil {
		t.Fatal(err)
	}
	code, body := adminDo(t, h, "POST", "/admin/functions/consent-match/test", `{"type":"track","event":"e","userId":"nobody","context":{"consent":{"categoryPreferences":{"A":true}}}}`)
	if code != 200 || !strings.Contains(body, `"verdict":"drop"`) || !strings.Contains(body, "No stored consent") {
		t.Errorf("test endpoint: %d %s", code, body)
	}
	if code, body := adminDo(t, h, "POST", "/admin/functions/consent-match/activate?version="+v1.Hash, ""); code != 200 {
		t.Errorf("activate: %d %s", code, body)
	}
	if code, body := adminDo(t, h, "DELETE", "/admin/functions/consent-match", ""); code != 409 || !strings.Contains(body, "source web") {
		t.Errorf("delete of a function in use: %d %s", code, body)
	}
}

// TestDeployUnderLoad: under a steady load, deploying a new version and
// rolling back loses and fails no event (counted at the sink).
func TestDeployUnderLoad(t *testing.T) {
	out := newSink(t)
	fn := consentMatch(t)
	h := start(t, baseConfig(t, []config.Function{fn}, []string{"consent-match"}, webhookDest("out", out.srv.URL)))
	client := &admin.Client{URL: "http://" + h.AdminAddr().String(), Token: h.AdminToken()}
	wasm := builder.Build(t, "../../examples/consent-match")

	// The first upload; each round then deploys another version and rolls
	// back to it. (A function known only from the configuration has no
	// stored version to roll back to.)
	if _, err := client.Deploy(context.Background(), functions.Manifest{Name: "consent-match", Settings: []byte(`{"missingRecord":"pass"}`)}, wasm); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				if code := post(t, h, "/v1/track", `{"userId":"nobody","event":"e","messageId":"`+id+`"}`); code != 200 {
					t.Errorf("POST: %d", code)
					return
				}
				sent.Add(1)
			}
		})
	}
	for round := range 3 {
		settings := fmt.Sprintf(`{"missingRecord":"pass","round":%d}`, round)
		if _, err := client.Deploy(context.Background(), functions.Manifest{Name: "consent-match", Settings: []byte(settings)}, wasm); err != nil {
			t.Errorf("deploy: %v", err)
			break
		}
		if _, err := client.Rollback(context.Background(), "consent-match"); err != nil {
			t.Errorf("rollback: %v", err)
			break
		}
	}
	close(stop)
	wg.Wait()
	n := int(sent.Load())
	waitFor(t, fmt.Sprintf("all %d events at the sink", n), func() bool { return len(out.ids()) == n })
	s := h.Counters().Snapshot()
	if f := s.Functions["consent-match"]; f.Failed != 0 || f.Dropped != 0 || len(s.Dropped) != 0 {
		t.Errorf("events failed or dropped during the swaps: %+v %+v", f, s.Dropped)
	}
	if n < 50 {
		t.Errorf("only %d events sent during the swaps: the load did not overlap them", n)
	}
}

func adminDo(t *testing.T, h *Server, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+h.AdminAddr().String()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+h.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminConsentAndDeadLetters: the consent and dead-letter calls of a
// running server's admin API, and a function version that outlives a
// restart.
func TestAdminConsentAndDeadLetters(t *testing.T) {
	sink := newSink(t)
	strict := newSink(t)
	strict.setStatus(http.StatusBadRequest)
	cfg := baseConfig(t, nil, nil, webhookDest("strict", strict.srv.URL), webhookDest("ok", sink.srv.URL))
	h := start(t, cfg)

	steps := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"PUT", "/admin/consent/u1", `{"aliases":["a1"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":1000}}}`, 200, ""},
		{"PATCH", "/admin/consent/a1", `{"categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":2000}}}`, 200, ""},
		{"GET", "/admin/consent/a1", "", 200, `"consented":false`},
		{"GET", "/admin/consent/u1/history?at=1970-01-01T00:00:01.500Z", "", 200, `"consented":true`},
		{"POST", "/admin/consent/import", "{\"id\":\"u2\",\"categoryPreferences\":{\"A\":true}}\nnot json\n", 200, `"line":2`},
		{"DELETE", "/admin/consent/u1", "", 200, ""},
		{"GET", "/admin/consent/a1", "", 404, ""},
	}
	for _, s := range steps {
		code, body := adminDo(t, h, s.method, s.path, s.body)
		if code != s.code || !strings.Contains(body, s.want) {
			t.Errorf("%s %s: %d %s; want %d containing %s", s.method, s.path, code, body, s.code, s.want)
		}
	}

	if code := post(t, h, "/v1/track", `{"userId":"u9","event":"e","messageId":"refused"}`); code != 200 {
		t.Fatal(code)
	}
	waitFor(t, "the dead letter", func() bool { return h.Counters().Snapshot().Destinations["strict"].Failed == 1 })
	code, body := adminDo(t, h, "GET", "/admin/dead/strict", "")
	if code != 200 || !strings.Contains(body, `"messageId":"refused"`) || !strings.Contains(body, `"source":"web"`) {
		t.Fatalf("dead letters: %d %s", code, body)
	}
	strict.setStatus(0)
	if code, body := adminDo(t, h, "POST", "/admin/dead/strict/replay", ""); code != 200 {
		t.Fatalf("replay: %d %s", code, body)
	}
	waitFor(t, "the replayed event", func() bool { return len(strict.ids()) == 1 })
	if code, body := adminDo(t, h, "DELETE", "/admin/dead/strict", ""); code != 200 {
		t.Errorf("purge: %d %s", code, body)
	}
}

// TestVersionsOutliveRestart: a version uploaded through the admin API is
// live again after a restart on the same data directory.
func TestVersionsOutliveRestart(t *testing.T) {
	fn := consentMatch(t)
	cfg := baseConfig(t, []config.Function{fn}, []string{"consent-match"})
	h := start(t, cfg)
	client := &admin.Client{URL: "http://" + h.AdminAddr().String(), Token: h.AdminToken()}
	wasm := builder.Build(t, "../../examples/consent-match")
	info, err := client.Deploy(context.Background(), functions.Manifest{Name: "consent-match", Settings: []byte(`{"missingRecord":"drop"}`)}, wasm)
	if err != nil {
		t.Fatal(err)
	}
	token := h.AdminToken()
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	h2 := start(t, cfg)
	if h2.AdminToken() != token {
		t.Error("the generated admin token changed across restarts")
	}
	v, err := h2.registry.Active("consent-match")
	if err != nil || v.Hash != info.Hash || string(v.Manifest.Settings) != `{"missingRecord":"drop"}` {
		t.Errorf("after restart: %+v, %v; want the uploaded version with its settings", v, err)
	}
}
