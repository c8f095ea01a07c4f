// Command inittrap is a guest for the runtime's tests that fails during
// start-up: its init panics, so _initialize exits before any event.
package main

import "github.com/insertfn/insertfn/sdk"

func init() {
	sdk.Handle(sdk.Handlers{Any: func(*sdk.Event) error { return nil }})
	panic("inittrap: init failed on purpose")
}

func main() {}
