package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

var helpCmd = &command{
	name:  "help",
	short: "print help about insertfn or one of its commands",
	usage: `Usage: insertfn help [COMMAND [SUBCOMMAND]]

Prints the usage of insertfn, of COMMAND, or of one of its subcommands
(insertfn help consent set).
`,
	run: runHelp,
}

// mainUsage is the text of "insertfn help".
func mainUsage() string {
	var b strings.Builder
	b.WriteString(`insertfn runs Segment-style consent functions, compiled to WebAssembly, on your events: a Segment-compatible server, the consent store, and the tools to build and test functions.

Usage:
  insertfn COMMAND [ARGUMENTS]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.short)
	}
	b.WriteString(`
Run 'insertfn help COMMAND' or 'insertfn COMMAND -h' for the details of a command.
`)
	return b.String()
}

func runHelp(c *command, args []string, stdout, stderr io.Writer) int {
	pos, code, ok := parseArgs(c, newFlagSet("help"), args, stdout, stderr)
	if !ok {
		return code
	}
	switch len(pos) {
	case 0:
		fmt.Fprint(stdout, mainUsage())
		return exitOK
	case 1:
		c := lookup(pos[0])
		if c == nil {
			fmt.Fprintf(stderr, "insertfn help: unknown command %q\nRun 'insertfn help' for the list of commands.\n", pos[0])
			return exitUsage
		}
		fmt.Fprint(stdout, c.usage)
		return exitOK
	case 2:
		if pos[0]+" "+pos[1] == "filter test" {
			fmt.Fprint(stdout, filterCmd.usage)
			return exitOK
		}
		for _, sub := range consentSubcommands {
			if sub.name == pos[0]+" "+pos[1] {
				fmt.Fprint(stdout, sub.usage)
				return exitOK
			}
		}
		fmt.Fprintf(stderr, "insertfn help: unknown command %q\nRun 'insertfn help' for the list of commands.\n", pos[0]+" "+pos[1])
		return exitUsage
	}
	return usageError(c, stderr, "too many arguments")
}

// newFlagSet returns an empty flag set for a command.
func newFlagSet(name string) *flag.FlagSet {
	return flag.NewFlagSet("insertfn "+name, flag.ContinueOnError)
}

// parseArgs parses a command's flags, which may come before, between or
// after its positional arguments (the flag package alone stops at the first
// positional one); after "--" everything is positional. ok is false when
// the command should stop and exit with code: after -h (usage printed on
// stdout, code 0) or a bad flag (code 2).
func parseArgs(c *command, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (pos []string, code int, ok bool) {
	fs.SetOutput(io.Discard) // errors are printed below, usage on -h
	fs.Usage = func() {}
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, c.usage)
			return nil, exitOK, false
		}
		if err != nil {
			return nil, usageError(c, stderr, err.Error()), false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, 0, true
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError reports bad usage of c and returns exitUsage.
func usageError(c *command, stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "insertfn %s: %s\nRun 'insertfn %s -h' for usage.\n", c.name, msg, c.name)
	return exitUsage
}
