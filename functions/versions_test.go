package functions_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/runtime"
	"github.com/tidwall/gjson"
)

func newVersionStore(t *testing.T, dir string) (*functions.VersionStore, *functions.Registry) {
	t.Helper()
	reg := newRegistry(t)
	vs, err := functions.NewVersionStore(dir, reg)
	if err != nil {
		t.Fatal(err)
	}
	return vs, reg
}

// liveVersion runs a deliver event on the function and returns the
// settings' "version" its live version stamped on it.
func liveVersion(t *testing.T, reg *functions.Registry, name string) string {
	t.Helper()
	out := run(t, reg, name, `{"type":"track","verdict":"deliver"}`)
	if !out.Deliver {
		t.Fatalf("%s: event not delivered: %+v", name, out)
	}
	return gjson.GetBytes(out.Event, "properties.version").String()
}

func TestVersionStoreDeployActivateRollback(t *testing.T) {
	wasm := builder.Build(t, "testdata/verdicts")
	ctx := context.Background()
	dir := t.TempDir()
	vs, reg := newVersionStore(t, dir)

	v1, err := vs.Deploy(ctx, manifest("f", "1", ""), wasm)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Hash != runtime.Hash(wasm) || v1.Size != len(wasm) || !v1.Active || v1.UploadedAt.IsZero() {
		t.Fatalf("deploy: %+v", v1)
	}
	if got := liveVersion(t, reg, "f"); got != "1" {
		t.Fatalf("live version %q, want 1", got)
	}
	if _, err := vs.Rollback(ctx, "f"); !errors.Is(err, functions.ErrNoPrevious) {
		t.Fatalf("rollback of a first version: %v, want ErrNoPrevious", err)
	}

	// The same wasm with other settings: one stored version, but rollback
	// restores the settings that ran before.
	if _, err := vs.Deploy(ctx, manifest("f", "2", ""), wasm); err != nil {
		t.Fatal(err)
	}
	if got := liveVersion(t, reg, "f"); got != "2" {
		t.Fatalf("live version %q, want 2", got)
	}
	list, err := vs.List("f")
	if err != nil || len(list) != 1 || !list[0].Active || string(list[0].Manifest.Settings) != `{"version":"2"}` {
		t.Fatalf("list = %+v, %v", list, err)
	}
	back, err := vs.Rollback(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	if got := liveVersion(t, reg, "f"); got != "1" || string(back.Manifest.Settings) != `{"version":"1"}` {
		t.Fatalf("after rollback: live %q, info %+v", got, back)
	}
	// A second rollback undoes the first.
	if _, err := vs.Rollback(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	if got := liveVersion(t, reg, "f"); got != "2" {
		t.Fatalf("after second rollback: live %q, want 2", got)
	}

	// A second wasm: two stored versions; activate the first by hash.
	other := builder.Build(t, "../examples/consent-match")
	v3, err := vs.Deploy(ctx, functions.Manifest{Name: "f"}, other)
	if err != nil {
		t.Fatal(err)
	}
	if active, _ := reg.Active("f"); active.Hash != v3.Hash {
		t.Fatalf("active %s, want %s", active.Hash, v3.Hash)
	}
	list, err = vs.List("f")
	if err != nil || len(list) != 2 || list[0].Hash != v3.Hash || !list[0].Active || list[1].Active {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if _, err := vs.Activate(ctx, "f", v1.Hash); err != nil {
		t.Fatal(err)
	}
	if got := liveVersion(t, reg, "f"); got != "2" { // the manifest last saved with that wasm
		t.Fatalf("after activate: live %q, want 2", got)
	}
	if _, err := vs.Activate(ctx, "f", strings.Repeat("0", 64)); !errors.Is(err, functions.ErrNoVersion) {
		t.Fatalf("activate of an unknown hash: %v", err)
	}
	if _, err := vs.Activate(ctx, "f", "../../etc/passwd"); !errors.Is(err, functions.ErrNoVersion) {
		t.Fatalf("activate of a path: %v", err)
	}
	names, err := vs.Names()
	if err != nil || len(names) != 1 || names[0] != "f" {
		t.Fatalf("names = %v, %v", names, err)
	}
}

// TestVersionStoreDeployUnchanged: deploying what is live (same wasm,
// same manifest) changes nothing, from the configuration or after a
// deploy, and keeps the way back; deploying an older stored version again
// makes it live with a way back to the one it replaced.
func TestVersionStoreDeployUnchanged(t *testing.T) {
	wasm := builder.Build(t, "testdata/verdicts")
	other := builder.Build(t, "../examples/consent-match")
	ctx := context.Background()
	vs, reg := newVersionStore(t, t.TempDir())

	// Live from the configuration: the same module and manifest again.
	if _, err := reg.Deploy(ctx, manifest("f", "config", ""), wasm); err != nil {
		t.Fatal(err)
	}
	running, _ := reg.Active("f")
	info, err := vs.Deploy(ctx, manifest("f", "config", ""), wasm)
	if err != nil || !info.Unchanged || !info.Active || info.Hash != running.Hash {
		t.Fatalf("deploy of the configuration's version = %+v, %v; want it unchanged and active", info, err)
	}
	if now, _ := reg.Active("f"); now != running {
		t.Error("deploying the live version again replaced its instances")
	}
	if _, err := vs.Rollback(ctx, "f"); !errors.Is(err, functions.ErrNoPrevious) {
		t.Errorf("rollback after an unchanged deploy: %v, want ErrNoPrevious", err)
	}

	// Other settings are a new version; deploying it again changes nothing
	// and rollback still goes back to the configuration's.
	v1, err := vs.Deploy(ctx, manifest("f", "1", ""), wasm)
	if err != nil || v1.Unchanged {
		t.Fatalf("deploy with new settings = %+v, %v; want a change", v1, err)
	}
	again, err := vs.Deploy(ctx, manifest("f", "1", ""), wasm)
	if err != nil || !again.Unchanged || !again.UploadedAt.Equal(v1.UploadedAt) || string(again.Manifest.Settings) != `{"version":"1"}` {
		t.Fatalf("second deploy = %+v, %v; want unchanged, as uploaded the first time", again, err)
	}
	if _, err := vs.Rollback(ctx, "f"); err != nil {
		t.Fatalf("rollback after deploying the live version again: %v", err)
	}
	if got := liveVersion(t, reg, "f"); got != "config" {
		t.Fatalf("after rollback: live %q, want the configuration's", got)
	}

	// An older stored version deployed again is live, and rollback goes
	// back to the one it replaced.
	v3, err := vs.Deploy(ctx, functions.Manifest{Name: "f"}, other)
	if err != nil || v3.Unchanged {
		t.Fatalf("deploy of another wasm = %+v, %v", v3, err)
	}
	old, err := vs.Deploy(ctx, manifest("f", "1", ""), wasm)
	if err != nil || old.Unchanged || !old.Active {
		t.Fatalf("deploy of an older version again = %+v, %v; want it made live", old, err)
	}
	if got := liveVersion(t, reg, "f"); got != "1" {
		t.Fatalf("live %q, want 1", got)
	}
	back, err := vs.Rollback(ctx, "f")
	if err != nil || back.Hash != v3.Hash {
		t.Fatalf("rollback = %+v, %v; want %s", back, err, v3.Hash)
	}
	if list, _ := vs.List("f"); len(list) != 2 {
		t.Errorf("%d stored versions, want 2 (one per wasm)", len(list))
	}
}

func TestVersionStoreRefusesBrokenModules(t *testing.T) {
	wasm := builder.Build(t, "testdata/verdicts")
	ctx := context.Background()
	dir := t.TempDir()
	vs, reg := newVersionStore(t, dir)
	good, err := vs.Deploy(ctx, manifest("f", "1", ""), wasm)
	if err != nil {
		t.Fatal(err)
	}
	broken := map[string][]byte{
		"not wasm":     []byte("this is not a module"),
		"no ABI":       []byte("\x00asm\x01\x00\x00\x00"), // an empty module: no insertfn exports
		"truncated":    wasm[:len(wasm)/2],
		"empty module": nil,
	}
	for what, b := range broken {
		_, err := vs.Deploy(ctx, manifest("f", "2", ""), b)
		var refused *functions.RefusedError
		if !errors.As(err, &refused) {
			t.Fatalf("%s: deploy err = %v, want a RefusedError", what, err)
		}
		if active, err := reg.Active("f"); err != nil || active.Hash != good.Hash {
			t.Fatalf("%s: active = %v, %v; want the good version", what, active, err)
		}
		if got := liveVersion(t, reg, "f"); got != "1" {
			t.Fatalf("%s: live %q, want 1", what, got)
		}
	}
	if list, _ := vs.List("f"); len(list) != 1 {
		t.Fatalf("a refused version was stored: %+v", list)
	}
	// A broken manifest is refused too.
	bad := manifest("f", "3", "sometimes")
	if _, err := vs.Deploy(ctx, bad, wasm); err == nil || !strings.Contains(err.Error(), "on_error") {
		t.Fatalf("bad policy: %v", err)
	}
}

func TestVersionStoreRefusesEscapingNames(t *testing.T) {
	wasm := builder.Build(t, "testdata/verdicts")
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "functions")
	vs, _ := newVersionStore(t, dir)
	for _, name := range []string{"../x", "..", ".", "a/b", "", "/abs", ".hidden", `a\b`} {
		if _, err := vs.Deploy(ctx, functions.Manifest{Name: name}, wasm); err == nil {
			t.Errorf("deploy %q: no error", name)
		}
		if _, err := vs.Save(functions.Manifest{Name: name}, wasm); err == nil {
			t.Errorf("save %q: no error", name)
		}
		if _, err := vs.List(name); err == nil {
			t.Errorf("list %q: no error", name)
		}
		if err := vs.Delete(ctx, name); err == nil {
			t.Errorf("delete %q: no error", name)
		}
		if _, err := vs.Rollback(ctx, name); err == nil {
			t.Errorf("rollback %q: no error", name)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Fatalf("files outside the store: %v", entries)
	}
}

func TestVersionStorePersistsAcrossRestart(t *testing.T) {
	wasm := builder.Build(t, "testdata/verdicts")
	other := builder.Build(t, "../examples/consent-match")
	ctx := context.Background()
	dir := t.TempDir()
	{
		vs, _ := newVersionStore(t, dir)
		for _, d := range []struct {
			m    functions.Manifest
			wasm []byte
		}{
			{manifest("a", "1", ""), wasm},
			{manifest("a", "2", ""), wasm},
			{manifest("b", "1", functions.PolicyDeliver), wasm},
			{functions.Manifest{Name: "c"}, other},
		} {
			if _, err := vs.Deploy(ctx, d.m, d.wasm); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := vs.Save(manifest("d", "1", ""), wasm); err != nil { // stored, never live
			t.Fatal(err)
		}
		if err := vs.Delete(ctx, "c"); err != nil {
			t.Fatal(err)
		}
	}
	// A crash mid-write leaves a temporary file: ignored.
	if err := os.WriteFile(filepath.Join(dir, "a", ".tmp-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}

	vs, reg := newVersionStore(t, dir)
	if err := vs.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if names := reg.Names(); strings.Join(names, ",") != "a,b" {
		t.Fatalf("loaded %v, want a,b", names)
	}
	if got := liveVersion(t, reg, "a"); got != "2" {
		t.Fatalf("a: live %q, want 2", got)
	}
	if active, _ := reg.Active("b"); active.Manifest.OnError != functions.PolicyDeliver {
		t.Fatalf("b: manifest not restored: %+v", active.Manifest)
	}
	// The way back survives too.
	if _, err := vs.Rollback(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := liveVersion(t, reg, "a"); got != "1" {
		t.Fatalf("a after rollback: live %q, want 1", got)
	}
	if names, _ := vs.Names(); strings.Join(names, ",") != "a,b,d" {
		t.Fatalf("stored names %v", names)
	}
}

func TestVersionStoreLoadReportsCorruption(t *testing.T) {
	wasm := builder.Build(t, "testdata/verdicts")
	ctx := context.Background()
	dir := t.TempDir()
	{
		vs, _ := newVersionStore(t, dir)
		if _, err := vs.Deploy(ctx, manifest("a", "1", ""), wasm); err != nil {
			t.Fatal(err)
		}
		if _, err := vs.Deploy(ctx, manifest("b", "1", ""), wasm); err != nil {
			t.Fatal(err)
		}
	}
	hash := runtime.Hash(wasm)
	if err := os.WriteFile(filepath.Join(dir, "a", hash+".wasm"), []byte("flipped bits"), 0o600); err != nil {
		t.Fatal(err)
	}
	vs, reg := newVersionStore(t, dir)
	err := vs.Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), "load a") {
		t.Fatalf("load: %v, want a corruption error naming a", err)
	}
	if names := reg.Names(); strings.Join(names, ",") != "b" {
		t.Fatalf("loaded %v, want b (the intact one)", names)
	}
}

func TestVersionStoreDelete(t *testing.T) {
	wasm := builder.Build(t, "testdata/verdicts")
	ctx := context.Background()
	vs, reg := newVersionStore(t, t.TempDir())
	if _, err := vs.Deploy(ctx, manifest("a", "1", ""), wasm); err != nil {
		t.Fatal(err)
	}
	// A function the registry has but the store does not (configured).
	if _, err := reg.Deploy(ctx, manifest("configured", "1", ""), wasm); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "configured"} {
		if err := vs.Delete(ctx, name); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
		if _, err := reg.Active(name); !errors.Is(err, functions.ErrNotFound) {
			t.Fatalf("%s still live: %v", name, err)
		}
	}
	if err := vs.Delete(ctx, "a"); !errors.Is(err, functions.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if names, _ := vs.Names(); len(names) != 0 {
		t.Fatalf("stored names after delete: %v", names)
	}
}
