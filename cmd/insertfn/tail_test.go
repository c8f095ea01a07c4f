package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/app"
	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/delivery"
	"github.com/insertfn/insertfn/internal/ingest"
	"github.com/insertfn/insertfn/internal/pipeline"
	"github.com/insertfn/insertfn/internal/pipeline/tap"
	"github.com/insertfn/insertfn/sdk/consent"
)

// tailServer starts a server with consent-match on source web (write key
// "k") and a file destination events-file, u123's consent stored
// (Advertising granted, Analytics not), and returns it with its data
// directory (which holds its admin token).
func tailServer(t *testing.T) (*app.Server, string) {
	t.Helper()
	t.Setenv("INSERTFN_ADMIN_TOKEN", "")
	data := t.TempDir()
	c, err := config.Parse(fmt.Appendf(nil, "data: %s\n", data))
	if err != nil {
		t.Fatal(err)
	}
	c.Functions = []config.Function{{Name: "consent-match", Wasm: consentMatchWasm}}
	c.Sources = []config.Source{{Source: ingest.Source{Name: "web", WriteKeys: []string{"k"}}, Functions: []string{"consent-match"}}}
	c.Destinations = []config.Destination{{Destination: pipeline.Destination{Name: "events-file"},
		Config: delivery.Config{Type: "file", FileConfig: delivery.FileConfig{Path: filepath.Join(data, "events.ndjson")}}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	adminLn, _ := net.Listen("tcp", "127.0.0.1:0")
	h, err := app.Start(context.Background(), c, app.Options{Listener: ln, AdminListener: adminLn, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	if _, err := h.Store().Update(context.Background(), consentstore.Update{Source: "test", Record: consent.Record{ID: "u123",
		Categories: []consent.Category{{Name: "Advertising", Consented: true, Timestamp: 1000}, {Name: "Analytics", Consented: false, Timestamp: 1000}}}}); err != nil {
		t.Fatal(err)
	}
	return h, data
}

// track sends a track of u123 with the given Analytics consent.
func track(t *testing.T, h *app.Server, msgID string, analytics bool) {
	t.Helper()
	body := fmt.Sprintf(`{"userId":"u123","event":"Order Completed","messageId":%q,`+
		`"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":%t}}}}`, msgID, analytics)
	req, _ := http.NewRequest("POST", "http://"+h.Addr().String()+"/v1/track", strings.NewReader(body))
	req.SetBasicAuth("k", "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /v1/track: %d", resp.StatusCode)
	}
}

// waitUntil polls cond, failing after a minute (a bound against hanging).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTailCommand: insertfn tail --no-follow prints what became of the
// events the server kept, one aligned line each, or JSON lines; it says
// why when the server cannot be reached, refuses the token or the flags.
func TestTailCommand(t *testing.T) {
	h, data := tailServer(t)
	adminURL := "http://" + h.AdminAddr().String()
	track(t, h, "m-agrees", false)
	track(t, h, "m-stale", true)
	// Both processed (the pipeline's workers take them in any order) and
	// m-agrees delivered; the records are published just after the counts.
	waitUntil(t, "the delivery and the drop", func() bool {
		s := h.Counters().Snapshot()
		return s.Destinations["events-file"].Delivered == 1 && s.Processed == 2
	})
	var code int
	var stdout, stderr string
	waitUntil(t, "the three records", func() bool {
		code, stdout, stderr = runCLI(t, "tail", "--no-follow", "-n", "10", "--admin", adminURL, "--data", data)
		return code != exitOK || strings.Count(stdout, "\n") >= 3
	})
	if code != exitOK {
		t.Fatalf("tail --no-follow: exit %d\n%s%s", code, stdout, stderr)
	}
	const prefix = `^\d\d:\d\d:\d\d\.\d{3}  web  track  "Order Completed"  user=u123  `
	for _, want := range []string{
		prefix + `msg=m-agrees  routed: events-file queued$`,
		prefix + `msg=m-stale  dropped by consent-match: Consent mismatch$`,
		prefix + `msg=m-agrees  delivered to events-file$`,
	} {
		if !regexp.MustCompile("(?m)" + want).MatchString(stdout) {
			t.Errorf("no line matching %s in\n%s", want, stdout)
		}
	}
	if n := strings.Count(stdout, "\n"); n != 3 {
		t.Errorf("%d lines, want 3:\n%s", n, stdout)
	}

	code, stdout, stderr = runCLI(t, "tail", "--no-follow", "--json", "--fate", "dropped", "--full", "--admin", adminURL, "--data", data)
	if code != exitOK {
		t.Fatalf("tail --json: exit %d\n%s%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var r tap.Record
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &r) != nil || r.MessageID != "m-stale" || r.Fate != tap.Dropped ||
		r.Function != "consent-match" || r.Reason != "Consent mismatch" || !strings.Contains(string(r.Payload), `"Analytics":true`) {
		t.Errorf("tail --json --fate dropped --full: %s, want the dropped record with its event", stdout)
	}

	code, stdout, stderr = runCLI(t, "tail", "--no-follow", "--user", "nobody", "--admin", adminURL, "--data", data)
	if code != exitOK || stdout != "" || !strings.Contains(stderr, "none of the last records") {
		t.Errorf("--user nobody: exit %d, %q, %q; want no record and a line saying none matched", code, stdout, stderr)
	}

	code, _, stderr = runCLI(t, "tail", "--fate", "lost", "--admin", adminURL, "--data", data)
	if code != exitUsage || !strings.Contains(stderr, "--fate") {
		t.Errorf("a bad --fate: exit %d, %q; want 2 naming --fate", code, stderr)
	}
	t.Setenv("INSERTFN_ADMIN_TOKEN", "wrong-token-0123456789")
	code, _, stderr = runCLI(t, "tail", "--no-follow", "--admin", adminURL)
	if code != exitFail || !strings.Contains(stderr, "refused the token") {
		t.Errorf("a wrong token: exit %d, %q; want 1 saying the token was refused", code, stderr)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	gone := ln.Addr().String()
	ln.Close()
	code, _, stderr = runCLI(t, "tail", "--admin", gone)
	if code != exitFail || !strings.Contains(stderr, "is insertfn serve running?") || !strings.Contains(stderr, gone) {
		t.Errorf("no server: exit %d, %q; want 1 asking whether the server runs, with its address", code, stderr)
	}
}

// TestTailFollowInterrupt: insertfn tail follows events as they come and
// exits 0 on Ctrl-C.
func TestTailFollowInterrupt(t *testing.T) {
	h, data := tailServer(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "INSERTFN_RUN_MAIN="+strings.Join([]string{"tail", "--admin", h.AdminAddr().String(), "--data", data}, "\n"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, pw := io.Pipe()
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	defer pw.Close()
	waitUntil(t, "tail to subscribe", func() bool { return h.Tap().Watchers() == 1 })
	track(t, h, "m-live", true)
	sc := bufio.NewScanner(out)
	if !sc.Scan() || !strings.Contains(sc.Text(), "msg=m-live  dropped by consent-match: Consent mismatch") {
		t.Fatalf("first line %q, want the dropped event; stderr:\n%s", sc.Text(), stderr.String())
	}
	cmd.Process.Signal(syscall.SIGINT)
	go io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after Ctrl-C: %v, want exit 0; stderr:\n%s", err, stderr.String())
	}
	waitUntil(t, "the subscription to close", func() bool { return h.Tap().Watchers() == 0 })
}

// TestTailOutcome: what each fate reads as on tail's lines.
func TestTailOutcome(t *testing.T) {
	for _, c := range []struct {
		r    tap.Record
		want string
	}{
		{tap.Record{Fate: tap.Dropped, Function: "consent-match", Reason: "Consent mismatch"}, "dropped by consent-match: Consent mismatch"},
		{tap.Record{Fate: tap.Routed, ConsentUpdate: tap.ConsentApplied, Destinations: []tap.DestinationFate{
			{Name: "events-file", Fate: tap.Queued},
			{Name: "ads", Fate: tap.FilteredConsent, Categories: []string{"Advertising", "Analytics"}},
			{Name: "amp", Fate: tap.FilteredIntegrations},
			{Name: "crm", Fate: tap.Dropped, Function: "strip-pii", Reason: "No email"},
		}}, "consent updated; routed: events-file queued; ads filtered by consent (Advertising, Analytics); " +
			"amp filtered by the integrations object; crm dropped by strip-pii: No email"},
		{tap.Record{Fate: tap.Filtered, ConsentUpdate: tap.ConsentRejected, Destinations: []tap.DestinationFate{{Name: "ads", Fate: tap.FilteredConsent}}},
			"consent update rejected: malformed; filtered: ads filtered by consent"},
		{tap.Record{Stage: tap.StageDelivery, Fate: tap.Delivered, Destination: "hook", Attempt: 1}, "delivered to hook"},
		{tap.Record{Stage: tap.StageDelivery, Fate: tap.Delivered, Destination: "hook", Attempt: 3}, "delivered to hook (attempt 3)"},
		{tap.Record{Stage: tap.StageDelivery, Fate: tap.Retried, Destination: "hook", Attempt: 2, Error: "503 Service Unavailable"},
			"delivery to hook failed (attempt 2), will retry: 503 Service Unavailable"},
		{tap.Record{Stage: tap.StageDelivery, Fate: tap.Failed, Destination: "hook", Attempt: 58, Error: "400 Bad Request"},
			"delivery to hook failed for good (attempt 58), dead-lettered: 400 Bad Request"},
	} {
		if got := outcome(&c.r); got != c.want {
			t.Errorf("%+v:\n got %s\nwant %s", c.r, got, c.want)
		}
	}
	if got := shortID("ifn-268b750b21267861fcdf7655caa400ee"); got != "ifn-268b750b…" {
		t.Errorf("shortID: %s", got)
	}
}
