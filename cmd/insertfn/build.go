package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/insertfn/insertfn/internal/wasmbuild/recipe"
)

var buildCmd = &command{
	name:  "build",
	short: "compile a function (a Go main package) to WebAssembly",
	usage: `Usage: insertfn build DIR [-o FILE.wasm]

Compiles the Go main package in DIR, a function written with the insertfn
SDK, to a WebAssembly module that 'insertfn test' and the host load. It runs

  ` + recipe.String("FILE.wasm") + `

in DIR, with the go command found on PATH; the go command's output is
passed through. -trimpath keeps the build machine's directories out of the
module (and out of a panic's stack in the logs).

Flags (before or after DIR):
  -o FILE.wasm   where to write the module (default: DIR's base name + .wasm,
                 in the current directory)

Exit status: 0 built, 1 the build failed, 2 bad usage.
`,
	run: runBuild,
}

func runBuild(c *command, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("build")
	out := fs.String("o", "", "output file")
	pos, code, ok := parseArgs(c, fs, args, stdout, stderr)
	if !ok {
		return code
	}
	switch {
	case len(pos) == 0:
		return usageError(c, stderr, "missing DIR, the function's package directory")
	case len(pos) > 1:
		return usageError(c, stderr, fmt.Sprintf("one DIR expected, got %d arguments: %s", len(pos), strings.Join(pos, " ")))
	}
	dir, err := filepath.Abs(pos[0])
	if err != nil {
		return usageError(c, stderr, err.Error())
	}
	if fi, err := os.Stat(dir); err != nil {
		return usageError(c, stderr, fmt.Sprintf("package directory %s: %v", pos[0], unwrapPath(err)))
	} else if !fi.IsDir() {
		return usageError(c, stderr, fmt.Sprintf("%s is not a directory (give the function's package directory)", pos[0]))
	}
	output := *out
	if output == "" {
		output = filepath.Base(dir) + ".wasm"
	}
	// go build runs in DIR: make the output relative to where we are.
	if output, err = filepath.Abs(output); err != nil {
		return usageError(c, stderr, err.Error())
	}

	goCmd, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintf(stderr, "insertfn build: the go command is not on PATH (%v); install Go 1.26 or later (https://go.dev/dl/) or add its bin directory to PATH\n", err)
		return exitFail
	}
	cmd := recipe.Command(goCmd, dir, output)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			fmt.Fprintf(stderr, "insertfn build: go build failed in %s (exit status %d)\n", pos[0], exit.ExitCode())
		} else {
			fmt.Fprintf(stderr, "insertfn build: running %s: %v\n", goCmd, err)
		}
		return exitFail
	}
	return exitOK
}

// unwrapPath drops the operation and path of a *fs.PathError, which the
// caller's message already names.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
