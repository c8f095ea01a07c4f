package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/internal/app"
	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/internal/ingest"
)

// TestAdminCommands drives a running server with deploy, functions,
// rollback and logs, the token read from the data directory.
func TestAdminCommands(t *testing.T) {
	t.Setenv("INSERTFN_ADMIN_TOKEN", "")
	data := t.TempDir()
	c, err := config.Parse(fmt.Appendf(nil, "data: %s\n", data))
	if err != nil {
		t.Fatal(err)
	}
	c.Functions = []config.Function{{Name: "consent-match", Wasm: consentMatchWasm}}
	c.Sources = []config.Source{{Source: ingest.Source{Name: "web", WriteKeys: []string{"k"}}, Functions: []string{"consent-match"}}}
	c.Destinations = []config.Destination{}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	adminLn, _ := net.Listen("tcp", "127.0.0.1:0")
	h, err := app.Start(context.Background(), c, app.Options{Listener: ln, AdminListener: adminLn, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	adminURL := "http://" + h.AdminAddr().String()
	settings := filepath.Join(t.TempDir(), "settings.json")
	os.WriteFile(settings, []byte(`{"missingRecord":"drop"}`), 0o600)

	code, stdout, stderr := runCLI(t, "deploy", consentMatchWasm, "--name", "consent-match", "--settings", settings, "--admin", adminURL, "--data", data)
	if code != 0 || !strings.Contains(stdout, "consent-match: version ") {
		t.Fatalf("deploy: exit %d\n%s%s", code, stdout, stderr)
	}
	os.WriteFile(settings, []byte(`{"missingRecord":"pass"}`), 0o600)
	if code, stdout, stderr = runCLI(t, "deploy", consentMatchWasm, "--name", "consent-match", "--settings", settings, "--admin", adminURL, "--data", data); code != 0 {
		t.Fatalf("second deploy: exit %d\n%s%s", code, stdout, stderr)
	}
	// The same file and settings again: nothing changes, and it says so.
	code, stdout, stderr = runCLI(t, "deploy", consentMatchWasm, "--name", "consent-match", "--settings", settings, "--admin", adminURL, "--data", data)
	if code != 0 || !strings.Contains(stdout, "is already live with these settings: nothing changed") {
		t.Errorf("deploy of the live version: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, "functions", "--admin", adminURL, "--data", data)
	if code != 0 || !strings.Contains(stdout, "consent-match\tlive: ") || strings.Count(stdout, " bytes ") != 1 {
		// Same wasm twice: one stored version (its settings are the version's manifest).
		t.Errorf("functions: exit %d\n%s", code, stdout)
	}
	// The way back survives deploying the live version again.
	code, stdout, stderr = runCLI(t, "rollback", "consent-match", "--admin", adminURL, "--data", data)
	if code != 0 || !strings.Contains(stdout, "is live again") {
		t.Errorf("rollback: exit %d\n%s%s", code, stdout, stderr)
	}
	// No event ran: nothing logged, and logs says so instead of printing nothing.
	if code, stdout, stderr = runCLI(t, "logs", "consent-match", "-n", "5", "--admin", adminURL, "--data", data); code != 0 ||
		stdout != "" || !strings.Contains(stderr, "consent-match has logged nothing") {
		t.Errorf("logs: exit %d, stdout %q, stderr %q; want exit 0 and a line saying nothing was logged", code, stdout, stderr)
	}
	// A broken module is refused with the reason (exit 2), and nothing changes.
	bad := filepath.Join(t.TempDir(), "bad.wasm")
	os.WriteFile(bad, []byte("not wasm"), 0o600)
	code, _, stderr = runCLI(t, "deploy", bad, "--name", "consent-match", "--admin", adminURL, "--data", data)
	if code != exitUsage || stderr == "" {
		t.Errorf("broken deploy: exit %d, stderr %q", code, stderr)
	}
	// A JavaScript function with its fetch allow-list; a bad prefix is
	// refused, naming the entry.
	fetchJS := filepath.Join("..", "..", "examples", "consent-match-js-fetch", "index.js")
	code, stdout, stderr = runCLI(t, "deploy", fetchJS, "--name", "fetcher", "--fetch-allow", "http://127.0.0.1:9/v1/", "--fetch-timeout", "300ms", "--admin", adminURL, "--data", data)
	skipWithoutJSEngine(t, stderr)
	if code != 0 {
		t.Errorf("deploy with --fetch-allow: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if _, stdout, _ = runCLI(t, "functions", "--json", "--admin", adminURL, "--data", data); !strings.Contains(stdout, `"fetch":{"allow":["http://127.0.0.1:9/v1/"],"timeout":"300ms"}`) {
		t.Errorf("functions --json: %s\nwant the fetch policy deployed", stdout)
	}
	code, _, stderr = runCLI(t, "deploy", fetchJS, "--name", "fetcher", "--fetch-allow", "127.0.0.1/v1/", "--admin", adminURL, "--data", data)
	if code != exitUsage || !strings.Contains(stderr, "fetch.allow[0]") {
		t.Errorf("a bad --fetch-allow: exit %d, stderr %q, want exit 2 naming fetch.allow[0]", code, stderr)
	}
	// No token anywhere: a clear error.
	code, _, stderr = runCLI(t, "functions", "--admin", adminURL, "--data", t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, "INSERTFN_ADMIN_TOKEN") {
		t.Errorf("without a token: exit %d, stderr %q", code, stderr)
	}
}
