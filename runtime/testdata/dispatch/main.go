// Command dispatch is a guest for the runtime's tests of the SDK's dispatch
// by event type: track and identify have their own handlers, every other
// type goes to Any.
//
//	track     sets "handled": "track", then delivered
//	identify  dropped with the reason "identify"
//	any other dropped with the reason "any: " and the event's "type"
package main

import "github.com/insertfn/insertfn/sdk"

func init() {
	sdk.Handle(sdk.Handlers{
		Track:    func(e *sdk.Event) error { return e.Set("handled", "track") },
		Identify: func(*sdk.Event) error { return sdk.DropEvent("identify") },
		Any:      func(e *sdk.Event) error { return sdk.DropEvent("any: " + e.Type()) },
	})
}

func main() {}
