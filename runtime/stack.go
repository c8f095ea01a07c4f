package runtime

import (
	"reflect"
	"sync/atomic"

	"github.com/tetratelabs/wazero/api"
)

// maxIdleStack bounds the call stack an idle instance keeps, in bytes.
//
// wazero's compiler engine runs each api.Function on a call stack of its
// own, a Go slice of 10 KiB that doubles whenever the guest's calls go
// deeper, up to about 50 MB (then the guest traps with a stack
// overflow), and that the function keeps afterwards: a guest that
// recursed a million calls deep and returned left 81 MiB of heap with
// its idle instance. release recycles an instance whose stack grew past
// this bound. The Go guests of the SDK stay at wazero's first 10 KiB (a
// Go guest keeps its goroutines' stacks in its linear memory).
const maxIdleStack = 1 << 20

// stackField caches where wazero's api.Function implementation keeps its
// call stack (its field "stack", a []byte): the type, and the field's
// index in it.
type stackField struct {
	typ   reflect.Type
	index int // -1: the type has no such field
}

var stackFieldCache atomic.Pointer[stackField]

// stackBytes returns the size of the call stacks of the instance's entry
// points, as far as wazero's implementation shows it (0 otherwise; a test
// checks that it shows it).
func (inst *instance) stackBytes() int {
	return callStack(inst.handle) + callStack(inst.handleBatch)
}

// callStack returns the size of fn's call stack in wazero's compiler
// engine, without allocating.
func callStack(fn api.Function) int {
	if fn == nil {
		return 0
	}
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return 0
	}
	e := v.Elem()
	sf := stackFieldCache.Load()
	if sf == nil || sf.typ != e.Type() {
		sf = &stackField{typ: e.Type(), index: -1}
		if f, ok := e.Type().FieldByName("stack"); ok && len(f.Index) == 1 && f.Type.Kind() == reflect.Slice {
			sf.index = f.Index[0]
		}
		stackFieldCache.Store(sf)
	}
	if sf.index < 0 {
		return 0
	}
	return e.Field(sf.index).Len()
}
