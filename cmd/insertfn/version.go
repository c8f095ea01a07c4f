package main

import (
	"fmt"
	"io"
	stdruntime "runtime"
	"runtime/debug"

	"github.com/insertfn/insertfn/sdk/abi"
)

// version is the release, set at link time with
// -ldflags "-X main.version=v1.2.3" (make sets the git revision and its
// date); empty: the module version and the VCS revision and date from the
// build information ("(devel)" when there are none).
var version string

var versionCmd = &command{
	name:  "version",
	short: "print the version of insertfn",
	usage: `Usage: insertfn version

Prints the version of insertfn, the Go and wazero versions it was built
with, and the function ABI version it runs.
`,
	run: runVersion,
}

func runVersion(c *command, args []string, stdout, stderr io.Writer) int {
	if args != nil {
		pos, code, ok := parseArgs(c, newFlagSet("version"), args, stdout, stderr)
		if !ok {
			return code
		}
		if len(pos) > 0 {
			return usageError(c, stderr, "takes no arguments")
		}
	}
	fmt.Fprintln(stdout, versionLine())
	return exitOK
}

// versionLine describes this build in one line.
func versionLine() string {
	v, wazero, commit := version, "unknown", ""
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, d := range info.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				wazero = d.Version
			}
		}
		var modified bool
		var date string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value[:min(12, len(s.Value))]
			case "vcs.modified":
				modified = s.Value == "true"
			case "vcs.time":
				date = s.Value[:min(10, len(s.Value))]
			}
		}
		if commit != "" && modified {
			commit += "+modified"
		}
		if commit != "" && date != "" {
			commit += ", " + date
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if commit != "" {
		v += " (" + commit + ")"
	}
	return fmt.Sprintf("insertfn %s, %s %s/%s, wazero %s, function ABI version %d",
		v, stdruntime.Version(), stdruntime.GOOS, stdruntime.GOARCH, wazero, abi.Version)
}
