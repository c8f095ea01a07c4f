// Package wasmbuild compiles Go packages to WebAssembly guests for tests and
// benchmarks, from source, once per test binary, with the same recipe as
// `insertfn build` and the Makefile (package recipe).
package wasmbuild

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/insertfn/insertfn/internal/wasmbuild/recipe"
)

// Builder builds guests into one temporary directory and remembers what it
// built. The zero value is not usable; use New.
type Builder struct {
	dir   string
	mu    sync.Mutex
	built map[string][]byte
}

// New returns a Builder that writes into a new temporary directory; Close
// removes it.
func New() (*Builder, error) {
	dir, err := os.MkdirTemp("", "insertfn-wasm-")
	if err != nil {
		return nil, fmt.Errorf("wasmbuild: %w", err)
	}
	return &Builder{dir: dir, built: make(map[string][]byte)}, nil
}

// CompilationCache returns a directory for runtime.Config.CacheDir shared by
// every test binary of this machine, so that each package's tests do not
// compile the same guests again (compiling under -race is slow).
func CompilationCache() string { return filepath.Join(os.TempDir(), "insertfn-test-compilation-cache") }

// Close removes the built files.
func (b *Builder) Close() error { return os.RemoveAll(b.dir) }

// Build compiles the Go package in dir with the recipe `insertfn build`
// uses (package recipe) and returns the module's bytes. A package is built
// once per Builder. It fails tb when the build fails, with the compiler's
// output.
func (b *Builder) Build(tb testing.TB, dir string) []byte {
	tb.Helper()
	wasm, err := b.build(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return wasm
}

func (b *Builder) build(dir string) ([]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("wasmbuild: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if wasm, ok := b.built[abs]; ok {
		return wasm, nil
	}
	out := filepath.Join(b.dir, fmt.Sprintf("%d-%s.wasm", len(b.built), filepath.Base(abs)))
	cmd := recipe.Command("go", abs, out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("wasmbuild: build %s: %v\n%s", dir, err, msg)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("wasmbuild: %w", err)
	}
	b.built[abs] = wasm
	return wasm, nil
}

// Main sets *b to a new Builder, runs the tests and removes the built files.
// Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m, &builder)) }
func Main(m *testing.M, b **Builder) int {
	builder, err := New()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	*b = builder
	defer builder.Close()
	return m.Run()
}
