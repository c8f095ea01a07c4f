package exampletest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RequireToolchainsEnv is the environment variable that turns a missing
// toolchain (clang for C, npm for AssemblyScript) from a skipped test into
// a failed one: CI sets it to 1 (.ci/run), so that the examples in those
// languages are tested there for sure.
const RequireToolchainsEnv = "INSERTFN_REQUIRE_TOOLCHAINS"

// SkipWithoutToolchain skips the test for why (a missing toolchain, and how
// to install it), or fails it where [RequireToolchainsEnv] is 1.
func SkipWithoutToolchain(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv(RequireToolchainsEnv) == "1" {
		tb.Fatalf("%s (%s=1: the toolchain is required)", why, RequireToolchainsEnv)
	}
	tb.Skip(why)
}

// Make builds an example that is not written in Go with its rule in the
// repository's Makefile, the one recipe that make examples runs too, and
// returns the module. example is the directory's name under examples/
// ("consent-match-c"). The module is built into a temporary directory
// (make's BIN), so the test leaves bin/ alone and always tests the
// sources as they are.
//
// When the example's toolchain is missing, the rule says so and builds
// nothing; the test is then skipped with make's words, or fails where
// [RequireToolchainsEnv] is 1 (the rule fails there itself).
func Make(t *testing.T, example string) []byte {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("make"); err != nil {
		SkipWithoutToolchain(t, "make is missing: apt-get install -y make")
	}
	bin := t.TempDir()
	target := filepath.Join(bin, "examples", example+".wasm")
	cmd := exec.Command("make", "--no-print-directory", "BIN="+bin, target)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("make %s: %v\n%s", target, err, out.String())
	}
	wasm, err := os.ReadFile(target)
	if errors.Is(err, os.ErrNotExist) {
		SkipWithoutToolchain(t, "make built no "+example+".wasm: "+strings.TrimSpace(out.String()))
	}
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// repoRoot is the directory of the main module's go.mod, above the test's
// working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/insertfn/insertfn\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("exampletest: no go.mod of github.com/insertfn/insertfn above the working directory")
		}
		dir = parent
	}
}
