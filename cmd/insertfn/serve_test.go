package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
