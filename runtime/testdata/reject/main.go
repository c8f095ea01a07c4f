// Command reject is a guest for the runtime's tests of the SDK's dispatch:
// only track has a handler, and RejectUnhandled makes every other type an
// EventNotSupported error, as in Segment.
package main

import "github.com/insertfn/insertfn/sdk"

func init() {
	sdk.Handle(sdk.Handlers{
		Track:           func(*sdk.Event) error { return nil },
		RejectUnhandled: true,
	})
}

func main() {}
