// Command bigset is a hostile guest for the runtime's tests that makes the
// event far larger than the runtime allows (64 KiB by default).
//
//	{"hostile": "set"}      sets a 1 MiB string into the event
//	{"hostile": "replace"}  replaces the event with a 1 MiB object
//	anything else           sets "small": "ok", then delivered
package main

import (
	"strings"

	"github.com/insertfn/insertfn/sdk"
)

func init() { sdk.Handle(sdk.Handlers{Any: handle}) }

func main() {}

func handle(e *sdk.Event) error {
	switch e.Get("hostile").String() {
	case "set":
		// RawJSON spares the guest a json.Marshal of 1 MiB: the test is
		// about the host's limit, not the guest's speed.
		return e.Set("properties.big", sdk.RawJSON(`"`+strings.Repeat("x", 1<<20)+`"`))
	case "replace":
		return e.Replace([]byte(`{"type":"track","big":"` + strings.Repeat("x", 1<<20) + `"}`))
	}
	return e.Set("small", "ok")
}
