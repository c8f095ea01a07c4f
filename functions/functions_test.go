package functions_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/wasmbuild"
	"github.com/insertfn/insertfn/runtime"
	"github.com/tidwall/gjson"
)

var builder *wasmbuild.Builder

func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m, &builder)) }

func newRegistry(t *testing.T) *functions.Registry {
	t.Helper()
	eng, err := runtime.NewEngine(runtime.Config{CacheDir: wasmbuild.CompilationCache()})
	if err != nil {
		t.Fatal(err)
	}
	reg := functions.NewRegistry(eng, nil)
	t.Cleanup(func() {
		reg.Close(context.Background())
		eng.Close(context.Background())
	})
	return reg
}

func manifest(name, version string, policy functions.FailurePolicy) functions.Manifest {
	return functions.Manifest{Name: name, Settings: []byte(`{"version":"` + version + `"}`), OnError: policy,
		Limits: functions.ManifestLimits{PoolSize: 2}}
}

func run(t *testing.T, reg *functions.Registry, name, event string) functions.Outcome {
	t.Helper()
	var out functions.Outcome
	if err := reg.Run(context.Background(), name, []byte(event), &out); err != nil {
		t.Fatalf("run %s: %v", event, err)
	}
	return out
}

func TestRunAppliesVerdictsAndPolicy(t *testing.T) {
	wasm := builder.Build(t, "testdata/verdicts")
	reg := newRegistry(t)
	if _, err := reg.Deploy(context.Background(), manifest("strict", "1", ""), wasm); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Deploy(context.Background(), manifest("lenient", "1", functions.PolicyDeliver), wasm); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		fn, verdict   string
		deliver       bool
		policyApplied bool
		attempts      int
		kind          runtime.ErrorKind
	}{
		{"strict", "deliver", true, false, 1, ""},
		{"strict", "drop", false, false, 1, ""},
		{"strict", "error", false, true, 1, runtime.KindFunctionError},
		{"lenient", "error", true, true, 1, runtime.KindFunctionError},
		{"strict", "retry", false, true, 1 + functions.DefaultRetries, runtime.KindRetry},
		{"lenient", "retry", true, true, 1 + functions.DefaultRetries, runtime.KindRetry},
		{"strict", "retry-once", true, false, 2, ""},
		{"lenient", "invalid", false, false, 1, runtime.KindInvalidEventPayload}, // judged by the function: never delivered
		{"strict", "panic", false, true, 1, runtime.KindGuestExit},
		{"lenient", "panic", true, true, 1, runtime.KindGuestExit},
		{"strict", "deliver", true, false, 1, ""}, // a fresh instance after the panic
	}
	for i, tt := range tests {
		t.Run(tt.fn+"/"+tt.verdict, func(t *testing.T) {
			out := run(t, reg, tt.fn, fmt.Sprintf(`{"type":"track","messageId":"m%d","verdict":%q}`, i, tt.verdict))
			if out.Deliver != tt.deliver || out.PolicyApplied != tt.policyApplied || out.Attempts != tt.attempts || out.Kind != tt.kind {
				t.Errorf("deliver=%v policy=%v attempts=%d kind=%q; want %v %v %d %q (reason %q)",
					out.Deliver, out.PolicyApplied, out.Attempts, out.Kind, tt.deliver, tt.policyApplied, tt.attempts, tt.kind, out.Reason)
			}
			if tt.verdict == "error" && tt.deliver && gjson.GetBytes(out.Event, "properties.version").Exists() {
				t.Errorf("policy deliver must pass the original event, got %s", out.Event)
			}
		})
	}
}

func TestDeployRefusesBadModuleAndKeepsActive(t *testing.T) {
	reg := newRegistry(t)
	good := builder.Build(t, "testdata/verdicts")
	v1, err := reg.Deploy(context.Background(), manifest("f", "1", ""), good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Deploy(context.Background(), manifest("f", "2", ""), []byte("\x00asm\x01\x00\x00\x00garbage")); err == nil {
		t.Fatal("a module that does not compile was accepted")
	}
	active, err := reg.Active("f")
	if err != nil || active != v1 {
		t.Fatalf("active = %v, %v; want the first version", active, err)
	}
	if out := run(t, reg, "f", `{"type":"track","verdict":"deliver"}`); gjson.GetBytes(out.Event, "properties.version").String() != "1" {
		t.Fatalf("event ran on the wrong version: %s", out.Event)
	}
}

// TestSwapDuringTraffic swaps versions while events run and checks that no
// event fails, that every event ran on one of the versions, and that the
// traffic spanned the swaps (events ran on the first version and on the
// last).
func TestSwapDuringTraffic(t *testing.T) {
	reg := newRegistry(t)
	wasm := builder.Build(t, "testdata/verdicts")
	if _, err := reg.Deploy(context.Background(), manifest("f", "1", ""), wasm); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg, started sync.WaitGroup
	var swapped atomic.Bool
	errs := make(chan error, 100)
	seen := make([]map[string]int, 4) // versions each worker's events ran on
	for w := range seen {
		seen[w] = make(map[string]int)
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			var out functions.Outcome
			// Until the swaps are done, then 5 more events.
			for i, after := 0, 0; after < 5; i++ {
				if swapped.Load() {
					after++
				}
				ev := fmt.Sprintf(`{"type":"track","messageId":"%d-%d","verdict":"sleep","ms":1}`, w, i)
				err := reg.Run(ctx, "f", []byte(ev), &out)
				if i == 0 {
					started.Done()
				}
				if err != nil {
					errs <- err
					return
				}
				if !out.Deliver || out.PolicyApplied {
					errs <- fmt.Errorf("event %s: deliver=%v kind=%s reason=%s", ev, out.Deliver, out.Kind, out.Reason)
					return
				}
				seen[w][gjson.GetBytes(out.Event, "properties.version").String()]++
			}
		}()
	}
	started.Wait() // every worker has run an event on version 1
	for v := 2; v <= 5; v++ {
		if _, err := reg.Deploy(ctx, manifest("f", fmt.Sprint(v), ""), wasm); err != nil {
			t.Fatal(err)
		}
	}
	swapped.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w, versions := range seen {
		for v := range versions {
			if v < "1" || v > "5" || len(v) != 1 {
				t.Errorf("worker %d: events ran on version %q", w, v)
			}
		}
		if versions["1"] == 0 || versions["5"] == 0 {
			t.Errorf("worker %d: events per version %v, want some on 1 and some on 5", w, versions)
		}
	}
	if out := run(t, reg, "f", `{"type":"track","verdict":"deliver"}`); gjson.GetBytes(out.Event, "properties.version").String() != "5" {
		t.Fatalf("after the swaps the event ran on %s", out.Event)
	}
}

func TestLoadManifest(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.wasm"), []byte("wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(s string) string {
		p := filepath.Join(dir, "m.json")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	m, wasm, err := functions.LoadManifest(write(`{"name":"consent-match","wasm":"f.wasm","settings":{"missingRecord":"drop"},"limits":{"timeout":"250ms"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.OnError != functions.PolicyDrop || m.Retries != functions.DefaultRetries || string(wasm) != "wasm" || m.Limits.Timeout.Milliseconds() != 250 {
		t.Fatalf("manifest %+v wasm %q", m, wasm)
	}
	for _, bad := range []string{
		`{"name":"bad name","wasm":"f.wasm"}`,
		`{"name":"f","wasm":"f.wasm","on_error":"explode"}`,
		`{"name":"f","wasm":"f.wasm","settings":[1]}`,
		`{"name":"f","wasm":"missing.wasm"}`,
		`{"name":"f","wasm":"f.wasm","limits":{"timeout":"soon"}}`,
		`{"name":"f","wasm":"f.wasm","unknown":1}`,
		`{"name":"f"}`,
	} {
		if _, _, err := functions.LoadManifest(write(bad)); err == nil {
			t.Errorf("manifest %s was accepted", bad)
		}
	}
}

func TestUnknownFunction(t *testing.T) {
	reg := newRegistry(t)
	var out functions.Outcome
	if err := reg.Run(context.Background(), "nope", []byte(`{}`), &out); !errors.Is(err, functions.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

// Negative retries mean none, and deploying does not turn them back into
// the default.
func TestNoRetries(t *testing.T) {
	reg := newRegistry(t)
	m := manifest("once", "1", "")
	m.Retries = -1
	if _, err := reg.Deploy(context.Background(), m, builder.Build(t, "testdata/verdicts")); err != nil {
		t.Fatal(err)
	}
	out := run(t, reg, "once", `{"type":"track","verdict":"retry"}`)
	if out.Attempts != 1 || out.Deliver || !out.PolicyApplied {
		t.Fatalf("attempts %d deliver %v policy %v; want 1 attempt, dropped by policy", out.Attempts, out.Deliver, out.PolicyApplied)
	}
}
