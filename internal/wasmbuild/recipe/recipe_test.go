package recipe

import (
	"slices"
	"testing"
)

// TestRecipe pins the recipe: a change to it changes every module that
// insertfn build, the Makefile and the tests produce, and must be meant.
func TestRecipe(t *testing.T) {
	const want = "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o f.wasm ."
	if got := String("f.wasm"); got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	cmd := Command("/usr/local/go/bin/go", "/src/fn", "/out/f.wasm")
	if cmd.Dir != "/src/fn" {
		t.Errorf("Dir = %q, want /src/fn", cmd.Dir)
	}
	if want := []string{"/usr/local/go/bin/go", "build", "-buildmode=c-shared", "-trimpath", "-o", "/out/f.wasm", "."}; !slices.Equal(cmd.Args, want) {
		t.Errorf("Args = %q, want %q", cmd.Args, want)
	}
	// The recipe's GOOS and GOARCH come last, so that they win over the
	// caller's environment.
	if n := len(cmd.Env); n < 2 || cmd.Env[n-2] != "GOOS=wasip1" || cmd.Env[n-1] != "GOARCH=wasm" {
		t.Errorf("Env ends with %q, want GOOS=wasip1 GOARCH=wasm", cmd.Env[max(0, len(cmd.Env)-2):])
	}
	// Args returns a new slice each time: a caller cannot change the recipe.
	a := Args("x.wasm")
	a[1] = "-race"
	if got := Args("x.wasm"); got[1] != "-buildmode=c-shared" {
		t.Errorf("changing Args' result changed the recipe: %q", got)
	}
}
