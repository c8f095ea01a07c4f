// Command abi99 is a guest for the runtime's tests that speaks ABI version
// 99, which no host speaks: Load must refuse it.
package main

//go:wasmexport insertfn_abi_version
func abiVersion() uint32 { return 99 }

//go:wasmexport insertfn_handle
func handle(eventType int32) int32 { return 0 }

func main() {}
