// Command noexport is a guest for the runtime's tests that reports the
// right ABI version but does not export insertfn_handle: Load must refuse it.
package main

import "github.com/insertfn/insertfn/sdk/abi"

//go:wasmexport insertfn_abi_version
func abiVersion() uint32 { return abi.Version }

func main() {}
