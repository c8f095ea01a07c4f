package quickjs

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// importModule is the module name emscripten's minified build imports
// everything from.
const importModule = "a"

// hostImport is one of the engine's imports: its minified name, what the
// glue (emscripten-module.cjs) defines under it, its signature, and the
// host's version of it.
type hostImport struct {
	name    string // the minified name, "a".name
	glue    string // the function the glue defines under it
	marker  string // text of the glue's definition, which a test finds there
	params  []api.ValueType
	results []api.ValueType
	fn      api.GoModuleFunc
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
	f64 = api.ValueTypeF64
)

// WASI errno values the engine's libc understands.
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoInval   = 28
	errnoNosys   = 52
	errnoSpipe   = 70
)

// hostImports are the engine's imports, as the pinned glue names them
// (TestImportsMatchTheGlue checks them against emscripten-module.cjs). The
// host offers no file, environment variable, timer or module loader:
//
//   - writes to stdout and stderr (libc's, which QuickJS uses only for
//     fatal messages) are kept for error messages, bounded;
//   - the environment is empty; the clocks are real; the local time zone
//     is UTC;
//   - timers (setitimer) are refused; JavaScript's own timers are not part
//     of the engine;
//   - abort and assertion failures end the call with an error that says so;
//   - host functions (QTS_NewFunction) call hostCall, which runs the
//     instance's function of that id; QuickJS's other host callbacks (the
//     interrupt handler, the module loader) are not enabled by the host,
//     and a call of one ends the call with an error.
func hostImports() []hostImport {
	return []hostImport{
		{name: "b", glue: "__assert_fail", marker: "Assertion failed", params: []api.ValueType{i32, i32, i32, i32}, fn: assertFail},
		{name: "c", glue: "fd_write", marker: "J[d>>2],m=J[d+4>>2]", params: []api.ValueType{i32, i32, i32, i32}, results: []api.ValueType{i32}, fn: fdWrite},
		{name: "d", glue: "fd_close", marker: "()=>52", params: []api.ValueType{i32}, results: []api.ValueType{i32}, fn: returnErrno(errnoNosys)},
		{name: "e", glue: "environ_get", marker: "for(f of oa())", params: []api.ValueType{i32, i32}, results: []api.ValueType{i32}, fn: returnErrno(errnoSuccess)},
		{name: "f", glue: "environ_sizes_get", marker: "var b=oa();J[a>>2]=b.length", params: []api.ValueType{i32, i32}, results: []api.ValueType{i32}, fn: environSizesGet},
		{name: "g", glue: "qts_host_normalize_module", marker: "callbacks.normalizeModule", params: []api.ValueType{i32, i32, i32, i32}, results: []api.ValueType{i32}, fn: notEnabled("the module loader")},
		{name: "h", glue: "qts_host_load_module_source", marker: "callbacks.loadModuleSource", params: []api.ValueType{i32, i32, i32}, results: []api.ValueType{i32}, fn: notEnabled("the module loader")},
		{name: "i", glue: "qts_host_interrupt_handler", marker: "callbacks.shouldInterrupt", params: []api.ValueType{i32}, results: []api.ValueType{i32}, fn: notEnabled("the interrupt handler")},
		{name: "j", glue: "_setitimer_js", marker: "clearTimeout(T[a].id)", params: []api.ValueType{i32, f64}, results: []api.ValueType{i32}, fn: returnErrno(errnoNosys)},
		{name: "k", glue: "emscripten_resize_heap", marker: "q.grow(e)", params: []api.ValueType{i32}, results: []api.ValueType{i32}, fn: resizeHeap},
		{name: "l", glue: "_emscripten_runtime_keepalive_clear", marker: "Q=!1;S=0", fn: func(context.Context, api.Module, []uint64) {}},
		{name: "m", glue: "_localtime_js", marker: "a.getTimezoneOffset()", params: []api.ValueType{i64, i32}, fn: localtime},
		{name: "n", glue: "_tzset_js", marker: "padStart(2,\"0\")", params: []api.ValueType{i32, i32, i32, i32}, fn: tzset},
		{name: "o", glue: "fd_seek", marker: "return 70", params: []api.ValueType{i32, i64, i32, i32}, results: []api.ValueType{i32}, fn: returnErrno(errnoSpipe)},
		{name: "p", glue: "emscripten_date_now", marker: "()=>Date.now()", results: []api.ValueType{f64}, fn: dateNow},
		{name: "q", glue: "clock_time_get", marker: "performance.now()))", params: []api.ValueType{i32, i64, i32}, results: []api.ValueType{i32}, fn: clockTimeGet},
		{name: "r", glue: "abort", marker: "N(\"\")", fn: abort},
		{name: "s", glue: "proc_exit", marker: "ma", params: []api.ValueType{i32}, fn: procExit},
		{name: "t", glue: "qts_host_call_function", marker: "callbacks.callFunction", params: []api.ValueType{i32, i32, i32, i32, i32}, results: []api.ValueType{i32}, fn: hostCall},
		{name: "u", glue: "qts_host_free_host_ref", marker: "callbacks.freeHostRef", params: []api.ValueType{i32, i32}, fn: func(context.Context, api.Module, []uint64) {}},
	}
}

// instantiateHost instantiates the engine's import module in rt.
func instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(importModule)
	for _, h := range hostImports() {
		b.NewFunctionBuilder().WithGoModuleFunction(h.fn, h.params, h.results).WithName(h.glue).Export(h.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// engineFailure is what a host function panics with when the engine gives
// up (abort, a failed assertion, exit, a host callback the host did not
// enable); wazero turns the panic into the call's error.
type engineFailure struct{ msg string }

func (e *engineFailure) Error() string { return e.msg }

func assertFail(_ context.Context, m api.Module, stack []uint64) {
	msg := fmt.Sprintf("the engine failed an assertion: %s, at %s:%d in %s",
		cString(m.Memory(), uint32(stack[0])), cString(m.Memory(), uint32(stack[1])), int32(stack[2]), cString(m.Memory(), uint32(stack[3])))
	panic(&engineFailure{msg})
}

func abort(context.Context, api.Module, []uint64) {
	panic(&engineFailure{"the engine aborted"})
}

func procExit(_ context.Context, _ api.Module, stack []uint64) {
	panic(sys.NewExitError(uint32(stack[0])))
}

func notEnabled(what string) api.GoModuleFunc {
	return func(context.Context, api.Module, []uint64) {
		panic(&engineFailure{"the engine called " + what + ", which the host did not enable"})
	}
}

func returnErrno(errno uint64) api.GoModuleFunc {
	return func(_ context.Context, _ api.Module, stack []uint64) { stack[0] = errno }
}

// fdWrite keeps what the engine writes to stdout and stderr in its
// instance's output head, for error messages.
func fdWrite(ctx context.Context, m api.Module, stack []uint64) {
	fd, iovs, n, nwritten := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	if fd != 1 && fd != 2 {
		stack[0] = errnoBadf
		return
	}
	mem := m.Memory()
	inst, _ := ctx.Value(instanceKey{}).(*Instance)
	var total uint32
	for i := range n {
		ptr, ok1 := mem.ReadUint32Le(iovs + 8*i)
		size, ok2 := mem.ReadUint32Le(iovs + 8*i + 4)
		b, ok3 := mem.Read(ptr, size)
		if !ok1 || !ok2 || !ok3 {
			stack[0] = errnoInval
			return
		}
		if inst != nil {
			inst.output.write(b)
		}
		total += size
	}
	if !mem.WriteUint32Le(nwritten, total) {
		stack[0] = errnoInval
		return
	}
	stack[0] = errnoSuccess
}

func environSizesGet(_ context.Context, m api.Module, stack []uint64) {
	mem := m.Memory()
	if !mem.WriteUint32Le(uint32(stack[0]), 0) || !mem.WriteUint32Le(uint32(stack[1]), 0) {
		stack[0] = errnoInval
		return
	}
	stack[0] = errnoSuccess
}

// resizeHeap grows the memory so that it holds at least the requested
// bytes, by a fifth more than asked when the cap allows (as the glue
// does, so that a growing heap does not grow page by page). The instance's
// allocator refuses a size past its cap, and the engine's malloc then
// fails: QuickJS throws its out-of-memory error.
func resizeHeap(_ context.Context, m api.Module, stack []uint64) {
	mem := m.Memory()
	want := uint64(uint32(stack[0]))
	have := uint64(mem.Size())
	if want <= have {
		stack[0] = 1
		return
	}
	pages := func(b uint64) uint32 { return uint32((b + 65535) / 65536) }
	generous := max(want, have+have/5)
	for _, size := range []uint64{generous, want} {
		if _, ok := mem.Grow(pages(size) - pages(have)); ok {
			stack[0] = 1
			return
		}
	}
	stack[0] = 0
}

func dateNow(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = math.Float64bits(float64(time.Now().UnixMilli()))
}

// clockTimeGet is WASI's clock_time_get: the realtime clock (0) and the
// monotonic ones (1-3), in nanoseconds, at microsecond precision as the
// glue gives them.
func clockTimeGet(_ context.Context, m api.Module, stack []uint64) {
	clk, out := uint32(stack[0]), uint32(stack[2])
	var ns int64
	switch clk {
	case 0:
		ns = time.Now().UnixNano()
	case 1, 2, 3:
		ns = int64(time.Since(monotonicZero))
	default:
		stack[0] = errnoInval
		return
	}
	ns -= ns % 1000
	if !m.Memory().WriteUint64Le(out, uint64(ns)) {
		stack[0] = errnoInval
		return
	}
	stack[0] = errnoSuccess
}

// monotonicZero is the zero of the engine's monotonic clock.
var monotonicZero = time.Now()

// localtime fills a C struct tm for a time in seconds, in UTC: the host
// gives functions no time zone of its own.
func localtime(_ context.Context, m api.Module, stack []uint64) {
	secs, ptr := int64(stack[0]), uint32(stack[1])
	t := time.Unix(secs, 0).UTC()
	fields := [...]int32{
		int32(t.Second()), int32(t.Minute()), int32(t.Hour()), int32(t.Day()),
		int32(t.Month()) - 1, int32(t.Year() - 1900), int32(t.Weekday()), int32(t.YearDay() - 1),
		0, // tm_isdst
		0, // tm_gmtoff
	}
	var b [4 * len(fields)]byte
	for i, v := range fields {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	m.Memory().Write(ptr, b[:])
}

// tzset tells the engine's libc that the local time zone is UTC, without
// daylight saving time.
func tzset(_ context.Context, m api.Module, stack []uint64) {
	mem := m.Memory()
	mem.WriteUint32Le(uint32(stack[0]), 0) // timezone: seconds west of UTC
	mem.WriteUint32Le(uint32(stack[1]), 0) // daylight
	mem.Write(uint32(stack[2]), []byte("UTC\x00"))
	mem.Write(uint32(stack[3]), []byte("UTC\x00"))
}

// cString reads the NUL-terminated string at ptr, up to 4 KiB of it.
func cString(mem api.Memory, ptr uint32) string {
	b, _ := cBytes(mem, ptr, 4096)
	return string(b)
}

// cBytes returns a view of the NUL-terminated string at ptr, without its
// NUL, of at most limit bytes; false when there is no NUL within limit
// bytes or memory.
func cBytes(mem api.Memory, ptr uint32, limit uint32) ([]byte, bool) {
	size := mem.Size()
	if ptr == 0 || ptr >= size {
		return nil, false
	}
	b, _ := mem.Read(ptr, min(size-ptr, limit))
	for i, c := range b {
		if c == 0 {
			return b[:i], true
		}
	}
	return b, false
}

// hostCall is qts_host_call_function(ctx, this, argc, argv, id): JavaScript
// called the host function id of the instance. It returns a JSValue* the
// engine takes over (and frees), or 0 for undefined.
func hostCall(ctx context.Context, _ api.Module, stack []uint64) {
	inst, _ := ctx.Value(instanceKey{}).(*Instance)
	argc, argv, id := uint32(stack[2]), uint32(stack[3]), uint32(stack[4])
	if inst == nil || id >= uint32(len(inst.hostFns)) {
		panic(&engineFailure{fmt.Sprintf("the engine called host function %d, which the host did not make", id)})
	}
	v, err := inst.hostFns[id](argc, argv)
	if err != nil {
		panic(err) // a *Failure: the call ends with it
	}
	stack[0] = uint64(v)
}
