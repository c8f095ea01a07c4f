//go:build wasip1

package sdk

import (
	"unsafe"

	"github.com/insertfn/insertfn/sdk/abi"
)

// The imports below are the guest side of abi.HostFuncs, one declaration
// per host function; a go:wasmimport directive cannot use a constant, so
// abi_names_test.go checks their names and signatures against package abi,
// and the runtime's tests check that every function of abi.HostFuncs is
// imported here.

//go:wasmimport insertfn event_get
func hostEventGet(path unsafe.Pointer, pathLen uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport insertfn event_set
func hostEventSet(path unsafe.Pointer, pathLen uint32, val unsafe.Pointer, valLen uint32) int32

//go:wasmimport insertfn event_delete
func hostEventDelete(path unsafe.Pointer, pathLen uint32) int32

//go:wasmimport insertfn event_read
func hostEventRead(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport insertfn event_write
func hostEventWrite(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport insertfn consent_lookup
func hostConsentLookup(id unsafe.Pointer, idLen uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport insertfn consent_compare
func hostConsentCompare(id unsafe.Pointer, idLen uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport insertfn settings_get
func hostSettingsGet(path unsafe.Pointer, pathLen uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport insertfn log
func hostLog(level int32, ptr unsafe.Pointer, n uint32)

//go:wasmimport insertfn set_reason
func hostSetReason(ptr unsafe.Pointer, n uint32)

//go:wasmimport insertfn batch_next
func hostBatchNext(result int32) int32

func sptr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

func bptr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

// wasmHost is the Host of a guest running in the insertfn runtime. Events
// hold it as a concrete type, not as a Host, so that every host call is a
// static, inlinable call: in WebAssembly each Go call level costs more than
// the host call itself.
type wasmHost struct{}

// eventHost is what an Event calls.
type eventHost = wasmHost

var _ Host = wasmHost{}

func unpack(v uint64) (uint32, int) { s, n := abi.Unpack(v); return s, int(n) }

func (wasmHost) EventGet(path string, buf []byte) (abi.Kind, int) {
	k, n := unpack(hostEventGet(sptr(path), uint32(len(path)), bptr(buf), uint32(len(buf))))
	return abi.Kind(k), n
}

func (wasmHost) EventSet(path string, raw []byte) abi.Status {
	return abi.Status(hostEventSet(sptr(path), uint32(len(path)), bptr(raw), uint32(len(raw))))
}

func (wasmHost) EventDelete(path string) abi.Status {
	return abi.Status(hostEventDelete(sptr(path), uint32(len(path))))
}

func (wasmHost) EventRead(buf []byte) int { return int(hostEventRead(bptr(buf), uint32(len(buf)))) }

func (wasmHost) EventWrite(event []byte) abi.Status {
	return abi.Status(hostEventWrite(bptr(event), uint32(len(event))))
}

func (wasmHost) ConsentLookup(id string, buf []byte) (abi.ConsentStatus, int) {
	v := hostConsentLookup(unsafe.Pointer(unsafe.StringData(id)), uint32(len(id)), unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf)))
	return abi.ConsentStatus(v >> 32), int(v & 0xFFFFFFFF)
}

func (wasmHost) ConsentCompare(id string, buf []byte) (abi.ConsentStatus, int) {
	v := hostConsentCompare(unsafe.Pointer(unsafe.StringData(id)), uint32(len(id)), unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf)))
	return abi.ConsentStatus(v >> 32), int(v & 0xFFFFFFFF)
}

func (wasmHost) SettingsGet(path string, buf []byte) (abi.Kind, int) {
	k, n := unpack(hostSettingsGet(sptr(path), uint32(len(path)), bptr(buf), uint32(len(buf))))
	return abi.Kind(k), n
}

func (wasmHost) Log(level abi.Level, msg string) { hostLog(int32(level), sptr(msg), uint32(len(msg))) }

func (wasmHost) SetReason(reason string) { hostSetReason(sptr(reason), uint32(len(reason))) }

// registered are the handlers of this module, and byType the same by
// event type, both set once by Handle.
var (
	registered *Handlers
	byType     handlerTable
)

// Handle registers the function's handlers. Call it from the function's
// init (a WebAssembly reactor runs init, not main).
func Handle(h Handlers) { registered, byType = &h, h.table() }

//go:wasmexport insertfn_abi_version
func exportABIVersion() uint32 { return abi.Version }

//go:wasmexport insertfn_handle
func exportHandle(eventType int32) int32 {
	if registered == nil {
		hostSetReason(sptr(noHandlers), uint32(len(noHandlers)))
		return int32(abi.ResultFunctionError)
	}
	f := registered.Any // a type this SDK does not know
	if uint32(eventType) < uint32(len(byType)) {
		f = byType[eventType]
	}
	result, reason := registered.run(wasmHost{}, abi.EventType(eventType), f)
	if result != abi.ResultDeliver && reason != "" {
		hostSetReason(sptr(reason), uint32(len(reason)))
	}
	return int32(result)
}

//go:wasmexport insertfn_handle_batch
func exportHandleBatch() int32 {
	result := int32(-1) // no event yet
	for {
		t := hostBatchNext(result)
		if t < 0 {
			return 0
		}
		result = exportHandle(t)
	}
}

const noHandlers = "no handlers: call sdk.Handle from the function's init"
