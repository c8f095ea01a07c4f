// Command rawpanic is a hostile guest for the runtime's tests that does not
// use the SDK: it exports insertfn_abi_version and insertfn_handle itself,
// so nothing recovers its panics.
//
//	{"hostile": true}  the handler panics; the Go runtime prints the panic
//	                   on stderr and ends the instance
//	{"exit": true}     the handler calls os.Exit(3) (WASI proc_exit)
//	anything else      delivered
package main

import (
	"os"
	"unsafe"

	"github.com/insertfn/insertfn/sdk/abi"
)

//go:wasmimport insertfn event_get
func eventGet(path unsafe.Pointer, pathLen uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmexport insertfn_abi_version
func abiVersion() uint32 { return abi.Version }

//go:wasmexport insertfn_handle
func handle(eventType int32) int32 {
	if isTrue("hostile") {
		panic("rawpanic: the handler panicked and nothing recovered")
	}
	if isTrue("exit") {
		os.Exit(3)
	}
	return int32(abi.ResultDeliver)
}

// isTrue reports whether the event's field is JSON true.
func isTrue(path string) bool {
	kind, _ := abi.Unpack(eventGet(unsafe.Pointer(unsafe.StringData(path)), uint32(len(path)), nil, 0))
	return abi.Kind(kind) == abi.KindTrue
}

func main() {}
