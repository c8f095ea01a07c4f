// Command empty-raw is the smallest guest the host accepts: it exports the
// ABI's entry points directly, without the SDK, and delivers every event.
// Calling it measures the sandbox's own cost per call.
package main

import "github.com/insertfn/insertfn/sdk/abi"

//go:wasmexport insertfn_abi_version
func abiVersion() uint32 { return abi.Version }

//go:wasmexport insertfn_handle
func handle(eventType int32) int32 { return int32(abi.ResultDeliver) }

func main() {}
