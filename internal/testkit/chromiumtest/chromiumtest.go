// Package chromiumtest renders pages in headless Chromium for tests that
// check what a person would see, or what a page's scripts did.
package chromiumtest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// RequireEnv names the environment variable that turns a missing Chromium
// from a skipped test into a failed one (CI sets it).
const RequireEnv = "INSERTFN_REQUIRE_CHROMIUM"

// Flags are the flags every run starts Chromium with, besides a fresh
// --user-data-dir: headless, no sandbox (tests run as root), and no
// connection of Chromium's own (updates, sync, QUIC probes), which a
// machine without a network refuses, many at a time.
var Flags = []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
	"--disable-quic", "--no-first-run", "--disable-background-networking",
	"--disable-component-update", "--disable-sync"}

// Path returns the Chromium binary to run. Without one the test is
// skipped, or fails when RequireEnv is "1".
func Path(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatal("chromium is not installed: apt-get install -y chromium")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium); " + RequireEnv + "=1 makes this a failure")
	return ""
}

// Run is one headless Chromium run's output.
type Run struct {
	// DOM is the page's DOM, as --dump-dom prints it.
	DOM string
	// Log is what Chromium wrote to stderr: with --enable-logging=stderr
	// among the flags, the page's console messages and uncaught errors.
	Log string
	// Took is how long Chromium ran.
	Took time.Duration
}

// Render loads url in headless Chromium, waits as --dump-dom does (for the
// load event, or with --virtual-time-budget=MS among flags until the
// page's clock has run that long with no request in flight), and returns
// the DOM and Chromium's log. It fails the test when Chromium exits with an
// error or runs longer than timeout.
//
// # Parameters
//   - t: the test.
//   - url: the page (http:// or file://).
//   - timeout: the wall-clock limit on the whole run.
//   - flags: more Chromium flags, added after [Flags].
func Render(t testing.TB, url string, timeout time.Duration, flags ...string) Run {
	t.Helper()
	chromium := Path(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := append(append([]string(nil), Flags...), "--user-data-dir="+filepath.Join(t.TempDir(), "profile"))
	args = append(args, flags...)
	args = append(args, "--dump-dom", url)
	cmd := exec.CommandContext(ctx, chromium, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	run := Run{DOM: stdout.String(), Log: stderr.String(), Took: time.Since(start)}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("chromium ran longer than %v on %s; its log:\n%s", timeout, url, run.Log)
	}
	if err != nil {
		t.Fatalf("chromium: %v on %s; its log:\n%s", err, url, run.Log)
	}
	return run
}

// DumpDOM loads url in headless Chromium and returns the DOM it renders.
// Without Chromium installed the test is skipped, or fails when RequireEnv
// is "1".
//
// # Parameters
//   - t: the test; DumpDOM fails it when Chromium fails.
//   - url: the page (http:// or file://).
//   - flags: more Chromium flags, e.g. --virtual-time-budget=5000 to let
//     the page's scripts run first.
//
// # Results
//   - the DOM, as --dump-dom prints it.
func DumpDOM(t *testing.T, url string, flags ...string) string {
	t.Helper()
	return Render(t, url, 60*time.Second, flags...).DOM
}
