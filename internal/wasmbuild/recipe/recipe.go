// Package recipe is the one way insertfn compiles a Go function (a main
// package written with the insertfn SDK) to a WebAssembly module: the go
// command's environment and flags. `insertfn build` runs it, and so do the
// Makefile (through `insertfn build`) and the tests (through package
// wasmbuild), so that a module built by any of them is the module the
// others build.
//
// The package has no dependency on package testing, so that the insertfn
// binary can import it.
package recipe

import (
	"os"
	"os/exec"
	"strings"
)

// env is what the recipe adds to the go command's environment: the
// WebAssembly System Interface target.
var env = []string{"GOOS=wasip1", "GOARCH=wasm"}

// flags are the go build flags of the recipe. -buildmode=c-shared makes a
// WASI reactor (the host calls its exports; main never runs); -trimpath
// keeps the build machine's directories out of the module, and so out of a
// panic's stack in the logs, and makes the module the same on every
// machine.
var flags = []string{"-buildmode=c-shared", "-trimpath"}

// Args returns the go command's arguments that build the main package of
// the current directory into out.
func Args(out string) []string {
	args := append([]string{"build"}, flags...)
	return append(args, "-o", out, ".")
}

// Command returns the command that compiles the Go main package in dir to
// the WebAssembly module out, run with the go command goTool (a path, or a
// name looked up in PATH). out is taken relative to dir unless absolute.
// The command inherits this process's environment, plus GOOS=wasip1 and
// GOARCH=wasm; its
// standard streams are the caller's to set.
func Command(goTool, dir, out string) *exec.Cmd {
	cmd := exec.Command(goTool, Args(out)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// String is the recipe as a shell command line that builds the current
// directory into out, for documentation and error messages:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o OUT .
func String(out string) string {
	return strings.Join(env, " ") + " go " + strings.Join(Args(out), " ")
}
