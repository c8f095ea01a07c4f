package runtime_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/wasmbuild/recipe"
	"github.com/insertfn/insertfn/runtime"
)

// guestDirs are the guests the tests build from source, by name: the
// hostile guests of testdata and the examples. Paths are relative to the
// package directory, where go test runs.
var guestDirs = map[string]string{
	"consent-match": "../examples/consent-match",
	"loop":          "testdata/loop",
	"grow":          "testdata/grow",
	"abuse":         "testdata/abuse",
	"rawpanic":      "testdata/rawpanic",
	"biglog":        "testdata/biglog",
	"bigset":        "testdata/bigset",
	"abi99":         "testdata/abi99",
	"inittrap":      "testdata/inittrap",
	"noexport":      "testdata/noexport",
	"dispatch":      "testdata/dispatch",
	"reject":        "testdata/reject",
	"escape":        "testdata/escape",
}

// guests are built once per run of the test binary, all at once and in
// parallel, the first time a test asks for one.
var guests struct {
	once   sync.Once
	wasm   map[string][]byte
	err    error
	engine *runtime.Engine     // shared by the tests, so each guest compiles once
	keep   []*runtime.Function // one loaded Function per guest, see warm
	dir    string              // build outputs and, under -race, the compilation cache
}

// TestMain removes what the guests' build left behind.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range guests.keep {
		_ = f.Close(context.Background())
	}
	if guests.engine != nil {
		_ = guests.engine.Close(context.Background())
	}
	if guests.dir != "" {
		_ = os.RemoveAll(guests.dir)
	}
	os.Exit(code)
}

// guest returns the wasm of a guest, built from source with the recipe of
// `insertfn build` (internal/wasmbuild/recipe).
func guest(t testing.TB, name string) []byte {
	t.Helper()
	buildGuests(t)
	wasm, ok := guests.wasm[name]
	if !ok {
		t.Fatalf("no guest %q", name)
	}
	return wasm
}

// engine returns the Engine the tests share. Under -race its compilation
// cache was filled beforehand by a plain (uninstrumented) build of
// testdata/precompile: wazero's compiler, instrumented by the race
// detector, takes 10 to 20 seconds per Go guest, which would put the suite
// far over its time budget.
func engine(t testing.TB) *runtime.Engine {
	t.Helper()
	buildGuests(t)
	return guests.engine
}

func buildGuests(t testing.TB) {
	t.Helper()
	guests.once.Do(func() { guests.err = buildAll() })
	if guests.err != nil {
		t.Fatal(guests.err)
	}
}

func buildAll() error {
	start := time.Now()
	dir, err := os.MkdirTemp("", "insertfn-runtime-test-")
	if err != nil {
		return err
	}
	guests.dir = dir
	names := make([]string, 0, len(guestDirs))
	for name := range guestDirs {
		names = append(names, name)
	}
	sort.Strings(names)
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			errs[i] = buildGuest(guestDirs[name], filepath.Join(dir, name+".wasm"))
		})
	}
	wg.Wait()
	guests.wasm = make(map[string][]byte, len(names))
	for i, name := range names {
		if errs[i] != nil {
			return errs[i]
		}
		b, err := os.ReadFile(filepath.Join(dir, name+".wasm"))
		if err != nil {
			return err
		}
		guests.wasm[name] = b
	}
	built := time.Since(start)

	cfg := runtime.Config{}
	if raceEnabled {
		cfg.CacheDir = filepath.Join(dir, "cache")
		helper := filepath.Join(dir, "precompile")
		// wazero files its cache under its own version, which it reads from
		// the binary's build information; a test binary has none and says
		// "dev". The helper must say the same, or the cache would be missed.
		ldflags := "-ldflags=-X github.com/tetratelabs/wazero/internal/version.version=" + wazeroVersion()
		if err := goBuild("testdata/precompile", helper, ldflags); err != nil {
			return err
		}
		args := []string{cfg.CacheDir}
		for _, name := range names {
			args = append(args, filepath.Join(dir, name+".wasm"))
		}
		cmd := exec.Command(helper, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("precompile: %v\n%s", err, out)
		}
		fmt.Fprintf(os.Stderr, "runtime tests: precompiled in %v\n", time.Since(start).Round(time.Millisecond))
	}
	guests.engine, err = runtime.NewEngine(cfg)
	if err != nil {
		return err
	}
	if !fuzzing() {
		warm(names)
	}
	fmt.Fprintf(os.Stderr, "runtime tests: built %d guests in %v, ready in %v (race detector: %v)\n",
		len(names), built.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), raceEnabled)
	return nil
}

// buildGuest builds the main package in dir into the wasm guest out, with
// the recipe of `insertfn build`.
func buildGuest(dir, out string) error {
	return runGo(recipe.Command("go", dir, out))
}

// goBuild builds the main package in dir into out, a program for this
// machine.
func goBuild(dir, out string, flags ...string) error {
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = dir
	return runGo(cmd)
}

// runGo runs a go command and returns its output with its error.
func runGo(cmd *exec.Cmd) error {
	if outp, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(cmd.Args[1:], " "), cmd.Dir, err, outp)
	}
	return nil
}

// fuzzing reports whether the binary runs with -fuzz, as the coordinator
// or a worker: only the fuzz test runs then, which needs one guest, and a
// worker that compiles every guest before its first input is taken for hung.
func fuzzing() bool {
	fl := flag.Lookup("test.fuzz")
	return fl != nil && fl.Value.String() != ""
}

// wazeroVersion is the version wazero finds for itself in this binary
// (internal/version.GetWazeroVersion, restated).
func wazeroVersion() string {
	v := ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if strings.Contains(dep.Path, "github.com/tetratelabs/wazero") {
				v = dep.Version
			}
		}
		if v == "" || v == "(devel)" {
			v = info.Main.Version
		}
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	return v
}

// warm loads every guest once on the shared engine, all in parallel, and
// keeps the Functions loaded until the end of the run. Compilation (or,
// under -race, reading the compilation cache) then happens here, before any
// test runs with a short timeout, and not later in the middle of one: a
// parallel test's 200ms timeout does not survive sharing two cores with a
// compiler. Keeping a Function of each module loaded also keeps its code in
// the engine's memory should Function.Close ever release it. Guests that
// Load refuses are compiled all the same; their refusal is not an error here.
func warm(names []string) {
	ctx := context.Background()
	fs := make([]*runtime.Function, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			f, err := guests.engine.Load(ctx, guests.wasm[name], runtime.Options{Name: "warm-" + name})
			if err == nil {
				fs[i] = f
			}
		})
	}
	wg.Wait()
	for _, f := range fs {
		if f != nil {
			guests.keep = append(guests.keep, f)
		}
	}
}
