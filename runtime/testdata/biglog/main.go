// Command biglog is a hostile guest for the runtime's tests that logs far
// more than the runtime lets one event log (4 KiB by default).
//
//	{"hostile": "log"}     one 64 KiB line through the log host function
//	{"hostile": "lines"}   1,000 lines of 100 bytes through the log host function
//	{"hostile": "stdout"}  64 KiB written to stdout (WASI fd_write)
//	{"hostile": "stderr"}  64 KiB written to stderr
//	{"pieces": true}       one short line written to stdout in two writes,
//	                       as fmt.Print and the Go runtime's own printing do
//	anything else          one short log line, then delivered
package main

import (
	"os"
	"strings"

	"github.com/insertfn/insertfn/sdk"
	"github.com/insertfn/insertfn/sdk/abi"
)

func init() { sdk.Handle(sdk.Handlers{Any: handle}) }

func main() {}

func handle(e *sdk.Event) error {
	big := strings.Repeat("x", 64<<10)
	switch e.Get("hostile").String() {
	case "log":
		e.Log(abi.LevelInfo, big)
	case "lines":
		line := strings.Repeat("y", 100)
		for range 1000 {
			e.Log(abi.LevelWarn, line)
		}
	case "stdout":
		os.Stdout.WriteString(big + "\n")
	case "stderr":
		os.Stderr.WriteString(big + "\n")
	default:
		if e.Get("pieces").Bool() {
			os.Stdout.WriteString("biglog: one line, ")
			os.Stdout.WriteString("written in two pieces\n")
			return nil
		}
		e.Log(abi.LevelInfo, "biglog: a short line")
	}
	return nil
}
