package bench

import (
	"os"
	"testing"

	"github.com/insertfn/insertfn/internal/wasmbuild"
)

var builder *wasmbuild.Builder

func TestMain(m *testing.M) {
	code := wasmbuild.Main(m, &builder)
	redisServer.Close()
	os.Exit(code)
}

// guest builds the Go package in dir (relative to this package) to wasm.
func guest(tb testing.TB, dir string) []byte { return builder.Build(tb, dir) }
