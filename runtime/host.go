package runtime

import (
	"context"
	"fmt"
	"unsafe"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tidwall/gjson"
)

const wasiModule = wasi_snapshot_preview1.ModuleName

// hostFunc is one host function of the ABI: its name (from package abi)
// and its Go body. Its WebAssembly signature is the one abi.HostFuncs
// gives, which instantiateHost looks up.
type hostFunc struct {
	name string
	fn   func(inst *instance, stack []uint64)
}

// hostFuncs are the host side of every import in package abi, one entry
// per function of abi.HostFuncs (instantiateHost refuses to start when one
// is missing on either side). Each body reads its arguments from the stack,
// checks every guest pointer (a bad one panics with *abiViolation, which
// wazero turns into the call's error) and calls the plain-Go
// implementation in package hostcall.
var hostFuncs = []hostFunc{
	{abi.FuncEventGet, func(inst *instance, s []uint64) {
		path := inst.str(abi.FuncEventGet, "path", s[0], s[1])
		buf := inst.buf(abi.FuncEventGet, s[2], s[3])
		kind, n := inst.call.EventGet(path, buf)
		s[0] = abi.Pack(uint32(kind), uint32(n))
	}},
	{abi.FuncEventSet, func(inst *instance, s []uint64) {
		path := inst.str(abi.FuncEventSet, "path", s[0], s[1])
		val := inst.buf(abi.FuncEventSet, s[2], s[3])
		s[0] = uint64(uint32(inst.call.EventSet(path, val)))
		inst.checkLimits()
	}},
	{abi.FuncEventDelete, func(inst *instance, s []uint64) {
		path := inst.str(abi.FuncEventDelete, "path", s[0], s[1])
		s[0] = uint64(uint32(inst.call.EventDelete(path)))
	}},
	{abi.FuncEventRead, func(inst *instance, s []uint64) {
		buf := inst.buf(abi.FuncEventRead, s[0], s[1])
		s[0] = uint64(uint32(inst.call.EventRead(buf)))
	}},
	{abi.FuncEventWrite, func(inst *instance, s []uint64) {
		ev := inst.buf(abi.FuncEventWrite, s[0], s[1])
		s[0] = uint64(uint32(inst.call.EventWrite(ev)))
		inst.checkLimits()
	}},
	{abi.FuncConsentLookup, func(inst *instance, s []uint64) {
		id := inst.str(abi.FuncConsentLookup, "id", s[0], s[1])
		buf := inst.buf(abi.FuncConsentLookup, s[2], s[3])
		st, n := inst.call.ConsentLookup(id, buf)
		s[0] = abi.Pack(uint32(st), uint32(n))
	}},
	{abi.FuncConsentCompare, func(inst *instance, s []uint64) {
		id := inst.str(abi.FuncConsentCompare, "id", s[0], s[1])
		buf := inst.buf(abi.FuncConsentCompare, s[2], s[3])
		st, n := inst.call.ConsentCompare(id, buf)
		s[0] = abi.Pack(uint32(st), uint32(n))
	}},
	{abi.FuncSettingsGet, func(inst *instance, s []uint64) {
		path := inst.str(abi.FuncSettingsGet, "path", s[0], s[1])
		buf := inst.buf(abi.FuncSettingsGet, s[2], s[3])
		kind, n := inst.call.SettingsGet(path, buf)
		s[0] = abi.Pack(uint32(kind), uint32(n))
	}},
	{abi.FuncLog, func(inst *instance, s []uint64) {
		msg := inst.str(abi.FuncLog, "message", s[1], s[2])
		inst.call.Log(abi.Level(int32(uint32(s[0]))), msg)
		inst.checkLimits()
	}},
	{abi.FuncSetReason, func(inst *instance, s []uint64) {
		inst.call.SetReason(inst.str(abi.FuncSetReason, "reason", s[0], s[1]))
	}},
	{abi.FuncBatchNext, func(inst *instance, s []uint64) {
		if inst.batch == nil { // not inside InvokeBatch: there is no batch
			s[0] = uint64(uint32(0xFFFFFFFF))
			return
		}
		s[0] = uint64(uint32(inst.batchNext(abi.Result(int32(uint32(s[0]))))))
	}},
}

// instanceKey finds the calling instance in the context wazero passes to
// host functions (see instanceContext).
type instanceKey struct{}

// instantiateHost adds the insertfn host module and WASI to a runtime.
func instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	if hostSigsErr != nil {
		return fmt.Errorf("host module: %w", hostSigsErr)
	}
	b := rt.NewHostModuleBuilder(abi.ModuleName)
	for _, h := range hostFuncs {
		fn, sig := h.fn, hostSigs[h.name]
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
				fn(ctx.Value(instanceKey{}).(*instance), stack)
			}), sig.params, sig.results).
			Export(h.name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("host module: %w", err)
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fmt.Errorf("wasi: %w", err)
	}
	return nil
}

// signature is a host function's WebAssembly signature in wazero's types.
type signature struct{ params, results []api.ValueType }

// hostSigs are the signatures of hostFuncs by name, from abi.HostFuncs;
// hostSigsErr, when not nil, names a function that one list has and the
// other lacks, and instantiateHost returns it.
var hostSigs, hostSigsErr = hostSignatures(abi.HostFuncs(), hostFuncs)

// hostSignatures returns the signature of each of impl by name, from abi's
// table, or an error that names a function one side has and the other
// lacks.
func hostSignatures(abiFuncs []abi.HostFunc, impl []hostFunc) (map[string]signature, error) {
	byName := make(map[string]abi.HostFunc, len(abiFuncs))
	for _, f := range abiFuncs {
		byName[f.Name] = f
	}
	sigs := make(map[string]signature, len(impl))
	seen := make(map[string]bool, len(impl))
	for _, h := range impl {
		f, ok := byName[h.name]
		if !ok {
			return nil, fmt.Errorf("%s is implemented in runtime/host.go but not in abi.HostFuncs: add its signature to package abi", h.name)
		}
		if seen[h.name] {
			return nil, fmt.Errorf("%s is implemented twice in runtime/host.go's hostFuncs: remove one", h.name)
		}
		seen[h.name] = true
		var sig signature
		for _, p := range f.Params {
			sig.params = append(sig.params, api.ValueType(p.Type))
		}
		for _, r := range f.Results {
			sig.results = append(sig.results, api.ValueType(r))
		}
		sigs[h.name] = sig
	}
	for _, f := range abiFuncs {
		if !seen[f.Name] {
			return nil, fmt.Errorf("abi.HostFuncs lists %s, which runtime/host.go's hostFuncs does not implement: add its body there", f.Name)
		}
	}
	return sigs, nil
}

// buf returns the guest memory [ptr, ptr+n), or panics with an
// *abiViolation when it is outside the guest's memory.
func (inst *instance) buf(fn string, ptr, n uint64) []byte {
	return inst.guestBytes(fn, "buffer", ptr, n)
}

// guestBytes returns the guest memory [ptr, ptr+n) that a host function's
// argument names (what), or panics with an *abiViolation when it is outside.
func (inst *instance) guestBytes(fn, what string, ptr, n uint64) []byte {
	p, l := uint32(ptr), uint32(n)
	if l == 0 {
		return nil
	}
	b, ok := inst.mem.Read(p, l)
	if !ok {
		panic(&abiViolation{fn: fn, what: what, ptr: p, n: l, size: inst.mem.Size()})
	}
	return b
}

// str is guestBytes as a string view; host code must not keep it past the call.
func (inst *instance) str(fn, what string, ptr, n uint64) string {
	b := inst.guestBytes(fn, what, ptr, n)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// checkLimits ends the call at once when the guest broke a limit.
func (inst *instance) checkLimits() {
	if err := inst.call.Err(); err != nil {
		panic(&limitBroken{err: err})
	}
}

func checkSettings(settings []byte) error {
	if !gjson.ValidBytes(settings) || !gjson.ParseBytes(settings).IsObject() {
		return fmt.Errorf("settings must be a JSON object, got %.64q", settings)
	}
	return nil
}
