package runtime_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/insertfn/insertfn/runtime"
)

// TestDiskCache loads the same module on two Engines that share a cache
// directory: the first compiles and fills the directory, the second finds
// the code there and writes nothing. Times are logged, not asserted.
func TestDiskCache(t *testing.T) {
	t.Parallel()
	// rawpanic is the smallest guest that loads; under -race the first Load
	// compiles with an instrumented compiler and takes seconds.
	wasm := guest(t, "rawpanic")
	dir := filepath.Join(t.TempDir(), "cache")
	ctx := context.Background()

	loadOnce := func(round int) time.Duration {
		e, err := runtime.NewEngine(runtime.Config{CacheDir: dir})
		if err != nil {
			t.Fatalf("round %d: NewEngine: %v", round, err)
		}
		start := time.Now()
		f, err := e.Load(ctx, wasm, runtime.Options{Name: "cached"})
		took := time.Since(start)
		if err != nil {
			t.Fatalf("round %d: Load: %v", round, err)
		}
		mustDeliver(t, f, `{"type":"track"}`)
		if err := f.Close(ctx); err != nil {
			t.Errorf("round %d: Function.Close: %v", round, err)
		}
		if err := e.Close(ctx); err != nil {
			t.Errorf("round %d: Engine.Close: %v", round, err)
		}
		return took
	}

	// snapshot lists the cache's files with their sizes and times.
	snapshot := func() map[string]string {
		files := make(map[string]string)
		if err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			files[path] = fmt.Sprint(info.Size(), info.ModTime().UnixNano())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return files
	}

	first := loadOnce(1)
	filled := snapshot()
	if len(filled) == 0 {
		t.Fatalf("the cache directory %s is empty after a Load", dir)
	}
	second := loadOnce(2)
	// A second compilation would have written its code again.
	if again := snapshot(); !maps.Equal(again, filled) {
		t.Errorf("the second Load wrote to the cache (compiled again):\nbefore %v\nafter  %v", filled, again)
	}
	t.Logf("Load with an empty cache directory: %v; with the cache filled: %v (%d files)", first, second, len(filled))
}

// TestDiskCacheDirectoryError checks that NewEngine reports a cache
// directory it cannot create.
func TestDiskCacheDirectoryError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if e, err := runtime.NewEngine(runtime.Config{CacheDir: filepath.Join(file, "cache")}); err == nil {
		_ = e.Close(context.Background())
		t.Fatal("NewEngine under a regular file succeeded, want an error")
	}
}
