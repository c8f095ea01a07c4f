package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestServeConfigDefaults(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	cfg, err := serveConfig("", "127.0.0.1:9999", data, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9999" || cfg.Data != data {
		t.Errorf("listen %q data %q", cfg.Listen, cfg.Data)
	}
	if got := cfg.Destinations[0].FileConfig.Path; got != filepath.Join(data, "events.ndjson") {
		t.Errorf("file destination %q, want it in the data directory", got)
	}
	key := cfg.Sources[0].WriteKeys[0]
	if len(key) != 32 {
		t.Errorf("write key %q, want 32 hex digits", key)
	}
	// The key is kept: the next start has the same one.
	again, err := serveConfig("", "", data, "", nil)
	if err != nil || again.Sources[0].WriteKeys[0] != key {
		t.Errorf("second start: key %v, %v; want %s again", again.Sources[0].WriteKeys, err, key)
	}
	withKey, err := serveConfig("", "", data, "mine", nil)
	if err != nil || !slices.Equal(withKey.Sources[0].WriteKeys, []string{"mine"}) {
		t.Errorf("--write-key: %v, %v", withKey.Sources[0].WriteKeys, err)
	}
}

func TestServeConfigFunctions(t *testing.T) {
	cfg, err := serveConfig("", "", t.TempDir(), "", []string{"a/check.wasm", "b/other.wasm"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Sources[0].Functions, []string{"check", "other"}) || len(cfg.Functions) != 2 {
		t.Errorf("chain %v, functions %+v; want check, other only", cfg.Sources[0].Functions, cfg.Functions)
	}
}

// Paths given as flags are relative to the working directory, also when
// the configuration file, whose own paths are relative to its directory,
// is elsewhere.
func TestServeConfigFlagPathsFromWorkingDirectory(t *testing.T) {
	confDir, work := t.TempDir(), t.TempDir()
	path := filepath.Join(confDir, "insertfn.yaml")
	conf := "data: confdata\nsources:\n  - name: web\n    write_keys: [k]\ndestinations:\n  - name: out\n    type: stdout\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)
	cfg, err := serveConfig(path, "", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.DataDir(), filepath.Join(confDir, "confdata"); got != want {
		t.Errorf("data from the file: %s, want %s (relative to the file)", got, want)
	}
	cfg, err = serveConfig(path, "", "d", "", []string{"fns/check.wasm"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.DataDir(), filepath.Join(work, "d"); got != want {
		t.Errorf("--data d: %s, want %s (relative to the working directory)", got, want)
	}
	if got, want := cfg.Path(cfg.Functions[0].Wasm), filepath.Join(work, "fns", "check.wasm"); got != want {
		t.Errorf("--function fns/check.wasm: %s, want %s", got, want)
	}
}

func TestServeBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "insertfn.yaml")
	os.WriteFile(path, []byte("sources:\n  - name: web\n    write_keys: [k]\n    functions: [nope]\nlisten: x\nbogus: 1\n"), 0o600)
	code, _, stderr := runCLI(t, "serve", "--config", path)
	if code != exitUsage || !strings.Contains(stderr, "bogus") {
		t.Errorf("unknown key: exit %d, stderr %q", code, stderr)
	}
	os.WriteFile(path, []byte("sources:\n  - name: web\n    write_keys: [k]\n    functions: [nope]\n"), 0o600)
	code, _, stderr = runCLI(t, "serve", "--config", path)
	if code != exitUsage || !strings.Contains(stderr, `sources[0].functions[0]: no function called "nope"`) {
		t.Errorf("undefined function: exit %d, stderr %q", code, stderr)
	}
}

// TestServeSIGTERM runs `insertfn serve` as a real process on embedded
// defaults with the consent-match example, sends events, and stops it with
// SIGTERM: it exits 0 after delivering what it accepted, and a restart on
// the same data directory keeps the write key.
func TestServeSIGTERM(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	start := func() (*exec.Cmd, *bufio.Scanner, *bytes.Buffer) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "INSERTFN_RUN_MAIN="+strings.Join([]string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data", data,
			"--function", consentMatchWasm}, "\n"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, bufio.NewScanner(out), &stderr
	}
	banner := func(sc *bufio.Scanner, stderr *bytes.Buffer) (addr, key string) {
		for sc.Scan() {
			line := sc.Text()
			if a, ok := strings.CutPrefix(line, "insertfn serving on http://"); ok {
				addr = strings.Fields(a)[0]
			}
			if _, k, ok := strings.Cut(line, "write key "); ok {
				return addr, strings.TrimSuffix(strings.Fields(k)[0], ";")
			}
		}
		t.Fatalf("no banner; stderr:\n%s", stderr)
		return
	}

	cmd, sc, stderr := start()
	addr, key := banner(sc, stderr)
	for i := range 20 {
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/track",
			strings.NewReader(fmt.Sprintf(`{"userId":"u%d","event":"e","messageId":"m%d"}`, i, i)))
		req.SetBasicAuth(key, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST: %d", resp.StatusCode)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var rest strings.Builder
	for sc.Scan() {
		rest.WriteString(sc.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\nstdout: %s\nstderr: %s", err, rest.String(), stderr)
	}
	if !strings.Contains(rest.String(), "shutting down") {
		t.Errorf("stdout after SIGTERM: %q", rest.String())
	}
	// Every accepted event is in the file destination: in-flight work was
	// finished and flushed before the exit.
	waitLines := func() int {
		b, _ := os.ReadFile(filepath.Join(data, "events.ndjson"))
		return bytes.Count(b, []byte("\n"))
	}
	if n := waitLines(); n != 20 {
		// What was not delivered before the exit is delivered by the
		// next start, from the queue.
		cmd, sc, stderr = start()
		_, key2 := banner(sc, stderr)
		if key2 != key {
			t.Errorf("write key changed across restarts: %s, then %s", key, key2)
		}
		deadline := time.Now().Add(20 * time.Second)
		for waitLines() < 20 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if n := waitLines(); n != 20 {
			t.Errorf("%d of 20 accepted events delivered after a restart", n)
		}
	}
}
