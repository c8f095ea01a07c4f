package app

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/runtime/wasmtest"
)

// writeWasm writes a module to a file of the test's and returns its path.
func writeWasm(t *testing.T, name string, wasm []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".wasm")
	if err := os.WriteFile(path, wasm, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHardeningRollbackToConfigured: a function defined in the
// configuration, replaced through the admin API, can be rolled back to
// the configured version, and the configured version's hash activated; a
// restart after the rollback runs it too. The events before, between and
// after go through whichever version is live.
func TestHardeningRollbackToConfigured(t *testing.T) {
	out := newSink(t)
	configured := wasmtest.Deliver(1)
	uploaded := wasmtest.Deliver(2)
	fn := config.Function{Name: "check", Wasm: writeWasm(t, "check", configured)}
	c := baseConfig(t, []config.Function{fn}, []string{"check"}, webhookDest("out", out.srv.URL))
	h := start(t, c)
	client := &admin.Client{URL: "http://" + h.AdminAddr().String(), Token: h.AdminToken()}
	ctx := context.Background()
	confHash := runtime.Hash(configured)

	if _, err := client.Rollback(ctx, "check"); !isStatus(err, 409) {
		t.Errorf("rollback before any upload: %v, want 409 (nothing to go back to)", err)
	}
	v2, err := client.Deploy(ctx, functions.Manifest{Name: "check"}, uploaded)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	if code := post(t, h, "/v1/track", `{"userId":"u","event":"e","messageId":"m1"}`); code != 200 {
		t.Fatal(code)
	}
	back, err := client.Rollback(ctx, "check")
	if err != nil {
		t.Fatalf("rollback after an upload to a configured function: %v, want the configured version back", err)
	}
	if back.Hash != confHash {
		t.Errorf("rolled back to %s, want the configured %s", back.Hash, confHash)
	}
	live := func() string {
		t.Helper()
		fns, err := client.Functions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fns {
			if f.Name == "check" {
				return f.Active
			}
		}
		return ""
	}
	if got := live(); got != confHash {
		t.Errorf("live after rollback: %s, want %s", got, confHash)
	}
	if _, err := client.Activate(ctx, "check", v2.Hash); err != nil {
		t.Fatalf("activate the upload again: %v", err)
	}
	if _, err := client.Activate(ctx, "check", confHash); err != nil {
		t.Fatalf("activate the configured hash: %v, want it live", err)
	}
	if got := live(); got != confHash {
		t.Errorf("live after activating the configured hash: %s, want %s", got, confHash)
	}
	if _, err := client.Rollback(ctx, "check"); err != nil {
		t.Fatalf("second rollback: %v", err)
	}
	if got := live(); got != v2.Hash {
		t.Errorf("live after rolling back the activation: %s, want the upload %s", got, v2.Hash)
	}
	if code := post(t, h, "/v1/track", `{"userId":"u","event":"e","messageId":"m2"}`); code != 200 {
		t.Fatal(code)
	}
	waitFor(t, "both events", func() bool { return len(out.ids()) == 2 })
}

// isStatus reports whether err is an admin API answer with the status.
func isStatus(err error, status int) bool {
	var apiErr *admin.APIError
	return errors.As(err, &apiErr) && apiErr.StatusCode == status
}

// TestHardeningModuleRefusals: through the admin API of a running server,
// a 31 MiB module of a header and zeros is refused as malformed before it
// is compiled, a module whose start-up runs out of memory is refused for
// its memory, and the server keeps serving.
func TestHardeningModuleRefusals(t *testing.T) {
	out := newSink(t)
	fn := config.Function{Name: "check", Wasm: writeWasm(t, "check", wasmtest.Deliver(1))}
	h := start(t, baseConfig(t, []config.Function{fn}, []string{"check"}, webhookDest("out", out.srv.URL)))
	client := &admin.Client{URL: "http://" + h.AdminAddr().String(), Token: h.AdminToken()}
	ctx := context.Background()

	_, err := client.Deploy(ctx, functions.Manifest{Name: "check"}, wasmtest.Oversized(31<<20))
	if !isStatus(err, 422) || !strings.Contains(err.Error(), "malformed module: a custom section") {
		t.Errorf("31 MiB of zeros: %v, want a 422 that says the module is malformed", err)
	}
	_, err = client.Deploy(ctx, functions.Manifest{Name: "check"}, wasmtest.StartUpExhaustsMemory())
	if !isStatus(err, 422) || !strings.Contains(err.Error(), "ran out of its 2048 pages (128 MiB) of memory") {
		t.Errorf("start-up out of memory: %v, want a 422 with the memory reason", err)
	}
	if code := post(t, h, "/v1/track", `{"userId":"u","event":"e","messageId":"m1"}`); code != 200 {
		t.Fatal(code)
	}
	waitFor(t, "the event after the refusals", func() bool { return len(out.ids()) == 1 })
}

// TestHardeningRefusedGrowIsMemory: a guest whose one large memory.grow
// fails and which then traps fails its event as out of memory (the admin
// API's test call reports the kind the pipeline counts).
func TestHardeningRefusedGrowIsMemory(t *testing.T) {
	fn := config.Function{Name: "grower", Wasm: writeWasm(t, "grower", wasmtest.GrowFailThenTrap())}
	h := start(t, baseConfig(t, []config.Function{fn}, []string{"grower"}))
	client := &admin.Client{URL: "http://" + h.AdminAddr().String(), Token: h.AdminToken()}
	res, err := client.Test(context.Background(), "grower", admin.TestRequest{Event: []byte(`{"type":"track","event":"e"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if res.ErrorKind != string(runtime.KindMemoryLimit) || !strings.Contains(res.Reason, "memory.grow") {
		t.Errorf("verdict %s, kind %q, reason %q; want a MemoryLimit error that names the refused memory.grow", res.Verdict, res.ErrorKind, res.Reason)
	}
}

// TestHardeningRuntimeConfigReachesTheEngine: the configuration's runtime
// section (here a module limit) is the one the server's engine enforces,
// and its error names the key to change.
func TestHardeningRuntimeConfigReachesTheEngine(t *testing.T) {
	c := baseConfig(t, nil, nil)
	c.Runtime.MaxModuleBytes = 4 << 10
	h := start(t, c)
	client := &admin.Client{URL: "http://" + h.AdminAddr().String(), Token: h.AdminToken()}
	_, err := client.Deploy(context.Background(), functions.Manifest{Name: "big"}, wasmtest.Oversized(64<<10))
	if !isStatus(err, 422) || !strings.Contains(err.Error(), "runtime.max_module_bytes") {
		t.Errorf("a 64 KiB module under runtime.max_module_bytes = 4096: %v; want a 422 naming the key", err)
	}
}
