// Command grow is a hostile guest for the runtime's tests that eats memory.
//
//	{"hostile": true}   allocates and touches 1 MiB after 1 MiB, keeping
//	                    all of it, until the memory cap kills the instance
//	{"retainMiB": n}    allocates and touches n MiB and keeps them in a
//	                    global, so that memory grows event after event
//	anything else       delivered untouched
package main

import "github.com/insertfn/insertfn/sdk"

func init() { sdk.Handle(sdk.Handlers{Any: handle}) }

func main() {}

// kept holds what the guest allocated, so that the Go collector cannot
// give it back.
var kept [][]byte

func handle(e *sdk.Event) error {
	if e.Get("hostile").Bool() {
		for {
			kept = append(kept, touched(1<<20))
		}
	}
	if n := e.Get("retainMiB").Int(); n > 0 {
		kept = append(kept, touched(int(n)<<20))
	}
	return nil
}

// touched returns n bytes with every page written to.
func touched(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}
