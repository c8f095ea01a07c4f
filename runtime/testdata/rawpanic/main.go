// Command rawpanic is a hostile guest for the runtime's tests that does not
// use the SDK: it exports insertfn_abi_version and insertfn_handle itself,
// and its handler panics, with nothing to recover, on an event with
// "hostile": true. The Go runtime then prints the panic and exits.
package main

import (
	"unsafe"

	"github.com/insertfn/insertfn/sdk/abi"
)

//go:wasmimport insertfn event_get
func eventGet(path unsafe.Pointer, pathLen uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmexport insertfn_abi_version
func abiVersion() uint32 { return abi.Version }

//go:wasmexport insertfn_handle
func handle(eventType int32) int32 {
	const path = "hostile"
	kind, _ := abi.Unpack(eventGet(unsafe.Pointer(unsafe.StringData(path)), uint32(len(path)), nil, 0))
	if abi.Kind(kind) == abi.KindTrue {
		panic("rawpanic: the handler panicked and nothing recovered")
	}
	return int32(abi.ResultDeliver)
}

func main() {}
