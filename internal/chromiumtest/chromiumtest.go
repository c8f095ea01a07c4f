// Package chromiumtest renders pages in headless Chromium for tests that
// check what a person would see.
package chromiumtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// RequireEnv names the environment variable that turns a missing Chromium
// from a skipped test into a failed one (CI sets it).
const RequireEnv = "INSERTFN_REQUIRE_CHROMIUM"

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
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal("chromium is not installed: apt-get install -y chromium")
		}
		t.Skip("chromium is not installed (apt-get install -y chromium); " + RequireEnv + "=1 makes this a failure")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--user-data-dir=" + filepath.Join(t.TempDir(), "profile")}, flags...)
	args = append(args, "--dump-dom", url)
	out, err := exec.CommandContext(ctx, chromium, args...).Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	return string(out)
}
