// Command abuse is a hostile guest for the runtime's tests: it calls any of
// the ten host functions of the ABI with whatever pointers and lengths the
// event asks for, through its own //go:wasmimport declarations with plain
// uint32 parameters (the SDK's declarations take real pointers).
//
// An event without "fn" is handled normally: the handler sets "checked":
// true and delivers. An event with "fn" makes one raw host call and then
// delivers (if the host let the call return):
//
//	"fn"  which function: 0 event_get, 1 event_set, 2 event_delete,
//	      3 event_read, 4 event_write, 5 consent_lookup, 6 consent_compare,
//	      7 settings_get, 8 log, 9 set_reason
//	"a"   up to four raw uint32 arguments a0..a3, 0 when absent
//	"s0"  a string: a0, a1 become its address and length in guest memory
//	"s1"  a string: a2, a3 become its address and length
//
// Arguments by function (p/n: a pointer and a length):
//
//	event_get, consent_lookup, consent_compare, settings_get
//	                  (a0 p, a1 n, a2 p, a3 n)  a2/a3 is the output buffer
//	event_set         (a0 p, a1 n, a2 p, a3 n)
//	event_delete, event_write, set_reason  (a0 p, a1 n)
//	event_read        (a0 p, a1 n)  the output buffer
//	log               (level a2, a0 p, a1 n)
//
// The host writes into output buffers. So that a fuzzer's pointer cannot
// make the host scribble over this guest's own heap or stack (which would
// be the guest's fault, not the host's), an output pointer below 1 GiB is
// moved into a 64 KiB arena of the guest (pointer modulo the arena size,
// length cut to the arena's end). A pointer at or above 1 GiB is passed as
// is: the tests cap memory far below that, so it is always out of bounds.
// Input buffers are passed as given: the host only reads them.
package main

import (
	"strconv"
	"unsafe"

	"github.com/insertfn/insertfn/sdk"
)

//go:wasmimport insertfn event_get
func eventGet(pathPtr, pathLen, buf, limit uint32) uint64

//go:wasmimport insertfn event_set
func eventSet(pathPtr, pathLen, valPtr, valLen uint32) int32

//go:wasmimport insertfn event_delete
func eventDelete(pathPtr, pathLen uint32) int32

//go:wasmimport insertfn event_read
func eventRead(buf, limit uint32) uint32

//go:wasmimport insertfn event_write
func eventWrite(ptr, n uint32) int32

//go:wasmimport insertfn consent_lookup
func consentLookup(idPtr, idLen, buf, limit uint32) uint64

//go:wasmimport insertfn consent_compare
func consentCompare(idPtr, idLen, buf, limit uint32) uint64

//go:wasmimport insertfn settings_get
func settingsGet(pathPtr, pathLen, buf, limit uint32) uint64

//go:wasmimport insertfn log
func hostLog(level int32, ptr, n uint32)

//go:wasmimport insertfn set_reason
func setReason(ptr, n uint32)

func init() { sdk.Handle(sdk.Handlers{Any: handle}) }

func main() {}

// arena is where output buffers below 1 GiB land.
var arena [64 << 10]byte

// keep holds the strings whose addresses were passed, until the next event.
var keep [2]string

const outOfBoundsFrom = 1 << 30

// output confines an output buffer to the arena unless it is certainly out
// of the guest's memory.
func output(p, n uint32) (uint32, uint32) {
	if p >= outOfBoundsFrom {
		return p, n
	}
	off := p % uint32(len(arena))
	n = min(n, uint32(len(arena))-off)
	return uint32(uintptr(unsafe.Pointer(&arena[0]))) + off, n
}

func handle(e *sdk.Event) error {
	fn := e.Get("fn")
	if !fn.Exists() {
		return e.Set("checked", true)
	}
	var a [4]uint32
	for i := range a {
		a[i] = uint32(e.Get("a." + strconv.Itoa(i)).Int())
	}
	for i, name := range [2]string{"s0", "s1"} {
		if v := e.Get(name); v.Exists() {
			keep[i] = v.String()
			a[2*i] = uint32(uintptr(unsafe.Pointer(unsafe.StringData(keep[i]))))
			a[2*i+1] = uint32(len(keep[i]))
		}
	}
	switch fn.Int() {
	case 0:
		a[2], a[3] = output(a[2], a[3])
		eventGet(a[0], a[1], a[2], a[3])
	case 1:
		eventSet(a[0], a[1], a[2], a[3])
	case 2:
		eventDelete(a[0], a[1])
	case 3:
		a[0], a[1] = output(a[0], a[1])
		eventRead(a[0], a[1])
	case 4:
		eventWrite(a[0], a[1])
	case 5:
		a[2], a[3] = output(a[2], a[3])
		consentLookup(a[0], a[1], a[2], a[3])
	case 6:
		a[2], a[3] = output(a[2], a[3])
		consentCompare(a[0], a[1], a[2], a[3])
	case 7:
		a[2], a[3] = output(a[2], a[3])
		settingsGet(a[0], a[1], a[2], a[3])
	case 8:
		hostLog(int32(a[2]), a[0], a[1])
	case 9:
		setReason(a[0], a[1])
	}
	keep = [2]string{}
	return nil
}
