package runtime

import (
	"errors"
	"fmt"

	"github.com/insertfn/insertfn/sdk/abi"
)

// ErrorKind names why an event did not get a deliver or drop verdict: one of
// Segment's function errors (returned by the function through the SDK) or a
// failure of the sandbox.
type ErrorKind string

// Error kinds a function returns (Segment's vocabulary).
const (
	KindEventNotSupported   ErrorKind = "EventNotSupported"
	KindInvalidEventPayload ErrorKind = "InvalidEventPayload"
	KindValidationError     ErrorKind = "ValidationError"
	KindRetry               ErrorKind = "RetryError"
	KindFunctionError       ErrorKind = "FunctionError"
)

// Error kinds of sandbox failures. Each throws the instance away.
const (
	KindTimeout       ErrorKind = "Timeout"       // the event took longer than Limits.Timeout
	KindTrap          ErrorKind = "Trap"          // a WebAssembly trap (unreachable, bad memory access, ...)
	KindMemoryLimit   ErrorKind = "MemoryLimit"   // the guest ran out of its memory cap
	KindGuestExit     ErrorKind = "GuestExit"     // the guest exited (an uncaught Go panic does that)
	KindABIViolation  ErrorKind = "ABIViolation"  // a bad pointer or length passed to a host function
	KindEventTooLarge ErrorKind = "EventTooLarge" // the changed event exceeds Limits.MaxEventBytes
	KindLogLimit      ErrorKind = "LogLimit"      // the event's logs exceed Limits.MaxLogBytes
)

// KindMemoryBudget: no instance could start for the event within its time
// limit because the Engine's memory budget (Config.MemoryBudget) was in
// use by other instances. It is not a failure of the guest: no instance is
// thrown away, and the next event may find room.
const KindMemoryBudget ErrorKind = "MemoryBudget"

// kindOfResult maps a guest's error result to its kind.
func kindOfResult(r abi.Result) ErrorKind {
	switch r {
	case abi.ResultEventNotSupported:
		return KindEventNotSupported
	case abi.ResultInvalidEventPayload:
		return KindInvalidEventPayload
	case abi.ResultValidationError:
		return KindValidationError
	case abi.ResultRetry:
		return KindRetry
	}
	return KindFunctionError
}

// Sandbox reports whether the kind is a failure of the sandbox rather than
// an error the function returned.
func (k ErrorKind) Sandbox() bool {
	switch k {
	case KindTimeout, KindTrap, KindMemoryLimit, KindGuestExit, KindABIViolation, KindEventTooLarge, KindLogLimit:
		return true
	}
	return false
}

// Error is a failure while a function handled one event: a sandbox failure,
// or a guest that broke the ABI's protocol (a batch call that returned
// before its end is a KindFunctionError). Match kinds
// with errors.Is against ErrTimeout and friends, or read Kind.
type Error struct {
	Function string    // the function's name
	Kind     ErrorKind // what went wrong
	Message  string    // details for the operator
	Err      error     // the underlying error, if any
}

// Error describes the failure.
func (e *Error) Error() string {
	return fmt.Sprintf("function %s: %s: %s", e.Function, e.Kind, e.Message)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the sentinel of the same kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Function == "" && t.Message == "" && t.Kind == e.Kind
}

// Sentinels for errors.Is.
var (
	ErrTimeout       error = &Error{Kind: KindTimeout}
	ErrTrap          error = &Error{Kind: KindTrap}
	ErrMemoryLimit   error = &Error{Kind: KindMemoryLimit}
	ErrGuestExit     error = &Error{Kind: KindGuestExit}
	ErrABIViolation  error = &Error{Kind: KindABIViolation}
	ErrEventTooLarge error = &Error{Kind: KindEventTooLarge}
	ErrLogLimit      error = &Error{Kind: KindLogLimit}
	ErrMemoryBudget  error = &Error{Kind: KindMemoryBudget}
)

// ErrClosed is returned by Invoke on a closed Function.
var ErrClosed = errors.New("runtime: function is closed")

// abiViolation is what a host function panics with on a bad pointer; wazero
// turns the panic into the call's error.
type abiViolation struct {
	fn   string
	what string
	ptr  uint32
	n    uint32
	size uint32
}

func (v *abiViolation) Error() string {
	return fmt.Sprintf("%s: %s [%d, %d+%d) is outside the guest's %d bytes of memory", v.fn, v.what, v.ptr, v.ptr, v.n, v.size)
}

// limitBroken is what a host function panics with when the guest breaks a
// limit; the call ends at once.
type limitBroken struct{ err error }

func (l *limitBroken) Error() string { return l.err.Error() }
func (l *limitBroken) Unwrap() error { return l.err }
