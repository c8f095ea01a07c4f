package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	stdruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/runtime/wasmtest"
)

// startMain starts the insertfn binary (this test binary, see TestMain)
// with args.
func startMain(t *testing.T, args ...string) (*exec.Cmd, *bufio.Scanner, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "INSERTFN_RUN_MAIN="+strings.Join(args, "\n"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(out), &stderr
}

// procStatus reads a field of /proc/PID/status in bytes (VmRSS, VmHWM).
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestHardeningCraftedModuleCostsNothing: `insertfn test` on a 31 MiB
// module of a wasm header and zeros refuses it as malformed, with a peak
// resident size of a few tens of MB (it took 2 GB when the module reached
// the compiler).
func TestHardeningCraftedModuleCostsNothing(t *testing.T) {
	if stdruntime.GOOS != "linux" {
		t.Skip("reads the child's peak resident size in Linux's units")
	}
	dir := t.TempDir()
	peakOf := func(name string, wasm []byte) (peak int64, code int, stderr string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, wasm, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd, sc, errOut := startMain(t, "test", path, "--event", `{"type":"track"}`)
		for sc.Scan() {
		}
		_ = cmd.Wait()
		return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10, cmd.ProcessState.ExitCode(), errOut.String()
	}
	// The binary's own peak on a module that loads and runs (higher under
	// the race detector), and on the crafted one.
	base, code, stderr := peakOf("small.wasm", wasmtest.Deliver(1))
	if code != 0 {
		t.Fatalf("a small module: exit %d, stderr %q", code, stderr)
	}
	peak, code, stderr := peakOf("crafted.wasm", wasmtest.Oversized(31<<20))
	if code != exitUsage || !strings.Contains(stderr, "malformed module: a custom section") {
		t.Errorf("exit %d, stderr %q; want %d and the module called malformed", code, stderr, exitUsage)
	}
	t.Logf("peak resident size of `insertfn test`: %d MiB on a small module, %d MiB on the crafted one", base>>20, peak>>20)
	// The crafted module is read into memory (31 MiB) and checked in place.
	if peak > base+128<<20 {
		t.Errorf("peak resident size %d MiB, want at most %d MiB more than on a small module: the module must be refused before anything is allocated for it", peak>>20, 128)
	}
	// Modules of a few hundred bytes whose entries announce counts or
	// lengths of up to 2^32-1 (an element segment's, a data segment's, a
	// name's, a function type's): the engine's decoder would allocate for
	// them before it reads them, and the process died ("fatal error: out of
	// memory") or took a GiB.
	for i, c := range wasmtest.HugeCounts() {
		peak, code, stderr := peakOf(fmt.Sprintf("huge%d.wasm", i), c.Wasm)
		if code != exitUsage || !strings.Contains(stderr, "malformed module") {
			t.Errorf("%s: exit %d, stderr %q; want %d and the module called malformed", c.Name, code, firstLines(stderr), exitUsage)
		}
		if peak > base+32<<20 {
			t.Errorf("%s: peak resident size %d MiB, want at most 32 MiB more than on a small module (%d MiB)", c.Name, peak>>20, base>>20)
		}
	}
}

// firstLines returns the first lines of a child's stderr (a Go crash
// prints every goroutine's stack).
func firstLines(s string) string {
	lines := strings.SplitN(s, "\n", 4)
	return strings.Join(lines[:min(len(lines), 3)], "\n")
}

// TestHardeningMemoryAtTheCap runs `insertfn serve` with a function whose
// every event grows its instance to the 128 MiB cap and writes to every
// page, and measures the server's resident size: at its peak it is at most
// the pool's instances at their cap (plus overhead and slack), and once
// the instances have been recycled it is back near where it started (an
// instance at its cap cost about 3.3 times the cap, and the memory stayed).
func TestHardeningMemoryAtTheCap(t *testing.T) {
	if stdruntime.GOOS != "linux" {
		t.Skip("reads the server's resident size from /proc")
	}
	data := filepath.Join(t.TempDir(), "data")
	fn := filepath.Join(t.TempDir(), "grow.wasm")
	if err := os.WriteFile(fn, wasmtest.GrowAndTouch(16), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, sc, stderr := startMain(t, "serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data", data, "--function", fn)
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	var addr, key string
	for sc.Scan() && key == "" {
		line := sc.Text()
		if a, ok := strings.CutPrefix(line, "insertfn serving on http://"); ok {
			addr = strings.Fields(a)[0]
		}
		if _, k, ok := strings.Cut(line, "write key "); ok {
			key = strings.TrimSuffix(strings.Fields(k)[0], ";")
		}
	}
	if key == "" {
		t.Fatalf("no banner; stderr:\n%s", stderr)
	}
	go func() { // the rest of stdout, so that the server never blocks on it
		for sc.Scan() {
		}
	}()
	pid := cmd.Process.Pid
	base := procStatus(t, pid, "VmRSS")

	const events = 12
	for i := range events {
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
	delivered := func() int {
		b, _ := os.ReadFile(filepath.Join(data, "events.ndjson"))
		return bytes.Count(b, []byte("\n"))
	}
	deadline := time.Now().Add(60 * time.Second)
	for delivered() < events {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered in a minute; stderr:\n%s", delivered(), events, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	peak := procStatus(t, pid, "VmHWM")
	after := procStatus(t, pid, "VmRSS")
	pool := int64(stdruntime.GOMAXPROCS(0)) // the default pool size, the server's too
	perInstance := int64(runtime.DefaultMemoryPages)*65536 + runtime.InstanceOverhead
	t.Logf("resident size: %d MiB before the events, peak %d MiB, %d MiB after; pool %d instances of %d MiB",
		base>>20, peak>>20, after>>20, pool, perInstance>>20)
	const slack = 96 << 20
	if limit := base + pool*perInstance + slack; peak > limit {
		t.Errorf("peak resident size %d MiB, want at most %d MiB: the base, %d instances at their cap, and %d MiB", peak>>20, limit>>20, pool, slack>>20)
	}
	if after > base+64<<20 {
		t.Errorf("resident size %d MiB after the instances were recycled, want within 64 MiB of the %d MiB before", after>>20, base>>20)
	}
}
