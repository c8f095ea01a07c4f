// Command insertfn runs the insertfn server, builds and tests consent
// functions (Segment-style insert functions compiled to WebAssembly and run
// by package runtime), and reads and changes the consent store they look
// consent up in.
//
//	insertfn serve [--config FILE] [--listen ADDR] [--admin-listen ADDR] [--data DIR] [--write-key KEY] [--function FILE.wasm]...
//	insertfn build DIR [-o FILE.wasm]
//	insertfn test FILE.wasm --event EVENT.json [--consent RECORDS] [--settings SETTINGS] [--json]
//	insertfn deploy FILE.wasm --name NAME [--settings FILE]   (these five through the admin API)
//	insertfn functions
//	insertfn rollback NAME
//	insertfn logs NAME [-n N]
//	insertfn tail [--source S] [--type T] [--user ID] [--fate F] [-n N] [--no-follow] [--json] [--full]
//	insertfn consent get|set|delete|history|import|export [ARGUMENTS] [--config FILE] [--json]
//	insertfn dead list|replay|drop [DESTINATION] [SEQ...]
//	insertfn filter test --if 'FQL' --event EVENT.json [--json]   (offline)
//	insertfn filters DESTINATION [--set FILE.json|yaml | --reset] [--json]
//	insertfn version
//	insertfn help [COMMAND]
//
// Run "insertfn help" for the details.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit statuses.
const (
	exitOK    = 0 // done; for test: the event was delivered or dropped
	exitFail  = 1 // the function failed (test) or the build failed
	exitUsage = 2 // bad usage or unreadable input
)

// command is one subcommand.
type command struct {
	name  string
	short string                                                        // one line for the command list
	usage string                                                        // the text of "insertfn help NAME" and NAME -h
	run   func(c *command, args []string, stdout, stderr io.Writer) int // args: after the command's name
}

// commands lists the subcommands in the order help shows them.
var commands []*command

func init() {
	commands = []*command{serveCmd, buildCmd, testCmd, deployCmd, functionsCmd, rollbackCmd, logsCmd, tailCmd, consentCmd, deadCmd, filterCmd, filtersCmd, benchCmd, versionCmd, helpCmd}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// run runs the command line args (without the program name) and returns the
// exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage())
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, mainUsage())
		return exitOK
	case "-v", "-version", "--version":
		return versionCmd.run(versionCmd, nil, stdout, stderr)
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(stderr, "insertfn: unknown command %q\nRun 'insertfn help' for usage.\n", args[0])
		return exitUsage
	}
	return c.run(c, args[1:], stdout, stderr)
}
