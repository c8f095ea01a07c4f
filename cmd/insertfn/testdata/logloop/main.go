// Command logloop is a function for the CLI's tests: it logs two lines,
// then delivers the event, or never returns ({"hostile": "loop"}), or
// panics ({"hostile": "panic"}).
package main

import (
	"github.com/insertfn/insertfn/sdk"
	"github.com/insertfn/insertfn/sdk/abi"
)

func init() { sdk.Handle(sdk.Handlers{Any: handle}) }

func main() {}

var spins uint64

func handle(e *sdk.Event) error {
	e.Logf("checking %s", e.Type())
	e.Log(abi.LevelWarn, "about to decide")
	switch e.Get("hostile").String() {
	case "loop":
		for {
			spins++
		}
	case "panic":
		panic("logloop: told to panic")
	}
	return nil
}
