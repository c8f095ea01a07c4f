package bench

import (
	"fmt"
	"os"
	"testing"

	"github.com/insertfn/insertfn/internal/wasmbuild"
)

var builder *wasmbuild.Builder

func TestMain(m *testing.M) {
	var err error
	if builder, err = wasmbuild.New(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := m.Run()
	builder.Close()
	os.Exit(code)
}

// guest builds the Go package in dir (relative to this package) to wasm.
func guest(tb testing.TB, dir string) []byte { return builder.Build(tb, dir) }
