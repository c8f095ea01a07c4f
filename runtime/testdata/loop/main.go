// Command loop is a hostile guest for the runtime's tests. An event with
// "hostile": true makes its handler spin forever without a single host call,
// which only the runtime's timeout can stop; any other event is delivered.
package main

import "github.com/insertfn/insertfn/sdk"

func init() { sdk.Handle(sdk.Handlers{Any: handle}) }

func main() {}

var spins uint64

func handle(e *sdk.Event) error {
	if e.Get("hostile").Bool() {
		for {
			spins++
		}
	}
	return nil
}
