package sdk

import "github.com/insertfn/insertfn/sdk/abi"

// Host is the host side of the ABI as the SDK sees it: one method per host
// function in package abi, with Go slices in place of pointer/length pairs
// and the same buffer rule (the host fills buf only when the value fits and
// always returns the value's full length). In WebAssembly the SDK supplies
// the real one; package sdktest supplies a native one. Authors never
// implement it.
type Host interface {
	EventGet(path string, buf []byte) (abi.Kind, int)
	EventSet(path string, raw []byte) abi.Status
	EventDelete(path string) abi.Status
	EventRead(buf []byte) int
	EventWrite(event []byte) abi.Status
	ConsentLookup(id string, buf []byte) (abi.ConsentStatus, int)
	ConsentCompare(id string, buf []byte) (abi.ConsentStatus, int)
	SettingsGet(path string, buf []byte) (abi.Kind, int)
	Log(level abi.Level, msg string)
	SetReason(reason string)
}
