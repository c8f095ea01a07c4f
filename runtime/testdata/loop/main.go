// Command loop is a hostile guest for the runtime's tests that never
// returns, which only the runtime's timeout can stop.
//
//	{"hostile": true}  the handler spins forever without a single host call
//	{"sleep": true}    the handler sleeps for an hour (WASI poll_oneoff)
//	anything else      delivered
package main

import (
	"time"

	"github.com/insertfn/insertfn/sdk"
)

func init() { sdk.Handle(sdk.Handlers{Any: handle}) }

func main() {}

var spins uint64

func handle(e *sdk.Event) error {
	if e.Get("hostile").Bool() {
		for {
			spins++
		}
	}
	if e.Get("sleep").Bool() {
		time.Sleep(time.Hour)
	}
	return nil
}
