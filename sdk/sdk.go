// Package sdk is what a consent function imports. A function is a set of
// [Handlers], one per Segment event type, registered with [Handle] from the
// function's init; it is compiled with the standard Go toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o fn.wasm .
//
// (or `insertfn build DIR -o fn.wasm`). The event stays on the host: [Event]
// methods read and change fields through host calls, and consent lookups and
// comparisons run natively on the host. A handler returns nil to deliver the
// event (with its changes), or one of Segment's errors: [DropEvent],
// [EventNotSupported], [InvalidEventPayload], [ValidationError],
// [RetryError]. Any other error is a function error; a panic stops the
// instance (the host reports a GuestExit with the panic's message and starts
// a fresh one). The host handles both by the function's failure policy.
//
// Test handlers natively with package sdktest; no WebAssembly is needed.
//
// Globals persist between events in a pooled instance, as they do between
// invocations in Segment's functions: read settings through [Event.Settings]
// in the handler rather than caching per-user state in globals.
package sdk

import (
	"errors"
	"fmt"

	"github.com/insertfn/insertfn/sdk/abi"
)

// Handler handles one event. Return nil to deliver it.
type Handler func(e *Event) error

// Handlers are a function's handlers, one per Segment event type. A type
// without its own handler goes to Any; with no Any either, the event passes
// through unchanged, unless RejectUnhandled asks for Segment's behaviour
// (EventNotSupported).
type Handlers struct {
	Track    Handler
	Identify Handler
	Page     Handler
	Screen   Handler
	Group    Handler
	Alias    Handler
	Delete   Handler
	// Any handles every type without its own handler, including types the
	// host does not know.
	Any Handler
	// RejectUnhandled makes an unhandled type an EventNotSupported error, as
	// in Segment, instead of passing it through.
	RejectUnhandled bool

	event Event // reused for every event
}

func (h *Handlers) handler(t abi.EventType) Handler {
	var f Handler
	switch t {
	case abi.EventTrack:
		f = h.Track
	case abi.EventIdentify:
		f = h.Identify
	case abi.EventPage:
		f = h.Page
	case abi.EventScreen:
		f = h.Screen
	case abi.EventGroup:
		f = h.Group
	case abi.EventAlias:
		f = h.Alias
	case abi.EventDelete:
		f = h.Delete
	}
	if f == nil {
		f = h.Any
	}
	return f
}

// handlerTable maps each event type the ABI knows to its handler, Any
// filled in for the types without their own, so that a guest dispatches
// with an index instead of a call (a call level costs 5 to 15 ns in Go's
// WebAssembly code: see RATIONALE.md).
type handlerTable [abi.EventDelete + 1]Handler

// table returns the handlers by event type.
func (h *Handlers) table() (t handlerTable) {
	for i := range t {
		t[i] = h.handler(abi.EventType(i))
	}
	return t
}

// serve runs the handler for one event and returns the verdict and its
// reason ("" to deliver).
func (h *Handlers) serve(host eventHost, t abi.EventType) (result abi.Result, reason string) {
	return h.run(host, t, h.handler(t))
}

// run runs f, the handler of an event of type t (nil: none), and returns
// the verdict and its reason ("" to deliver).
func (h *Handlers) run(host eventHost, t abi.EventType, f Handler) (result abi.Result, reason string) {
	if f == nil {
		if h.RejectUnhandled {
			return abi.ResultEventNotSupported, fmt.Sprintf("%s is not supported", typeName(host, t))
		}
		return abi.ResultDeliver, ""
	}
	// The Event lives in h, not on the heap: a guest allocation costs far
	// more than the whole call (see RATIONALE.md), so the hot path makes none.
	// There is no defer here either: in WebAssembly an active defer makes
	// every host call below it markedly slower. A panic is therefore not
	// recovered in the guest: the Go runtime prints it and stops the
	// instance, and the host reports a GuestExit with the panic's message
	// (the failure policy applies, as for any function error). Natively,
	// Serve recovers it as a FunctionError.
	e := &h.event
	e.host, e.typ = host, t
	err := f(e)
	*e = Event{scratch: e.scratch} // keep nothing of this event but the buffer
	if err == nil {
		return abi.ResultDeliver, "" // the common case, without a call to Verdict
	}
	return Verdict(err)
}

func typeName(host eventHost, t abi.EventType) string {
	if s := t.String(); s != "" {
		return s
	}
	e := Event{host: host, typ: t}
	if s := e.Type(); s != "" {
		return fmt.Sprintf("event type %q", s)
	}
	return "an event without a type"
}

// Error is one of Segment's function errors, with the message it carries.
// Compare kinds with errors.Is against the sentinel values ErrDropEvent and
// friends, or read Kind.
type Error struct {
	Kind    abi.Result
	Message string
}

// Error returns "Kind: Message".
func (e *Error) Error() string { return e.Kind.String() + ": " + e.Message }

// Is makes errors.Is(err, ErrDropEvent) (and the other sentinels) match any
// Error of the same kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Kind == e.Kind
}

// Sentinels for errors.Is: an *Error of the same kind matches, whatever its
// message.
var (
	ErrDropEvent           error = &Error{Kind: abi.ResultDrop}
	ErrEventNotSupported   error = &Error{Kind: abi.ResultEventNotSupported}
	ErrInvalidEventPayload error = &Error{Kind: abi.ResultInvalidEventPayload}
	ErrValidation          error = &Error{Kind: abi.ResultValidationError}
	ErrRetry               error = &Error{Kind: abi.ResultRetry}
)

// DropEvent drops the event on purpose: it reaches no destination and is
// counted by reason, not as an error. Segment: throw new DropEvent(reason).
func DropEvent(reason string) error { return &Error{Kind: abi.ResultDrop, Message: reason} }

// EventNotSupported rejects an event type the function does not handle; the
// event is dropped and counted as this kind of error.
func EventNotSupported(message string) error {
	return &Error{Kind: abi.ResultEventNotSupported, Message: message}
}

// InvalidEventPayload rejects a malformed event; dropped, counted as this kind.
func InvalidEventPayload(message string) error {
	return &Error{Kind: abi.ResultInvalidEventPayload, Message: message}
}

// ValidationError rejects an event that fails the function's checks; dropped,
// counted as this kind.
func ValidationError(message string) error {
	return &Error{Kind: abi.ResultValidationError, Message: message}
}

// RetryError asks the host to run the function on the event again (a bounded
// number of times); after that the function's failure policy applies.
func RetryError(message string) error { return &Error{Kind: abi.ResultRetry, Message: message} }

// Verdict maps a handler's error to the verdict and reason the host gets:
// nil delivers, an *Error (also wrapped) gives its kind, anything else is a
// function error with the error's text.
func Verdict(err error) (abi.Result, string) {
	if err == nil {
		return abi.ResultDeliver, ""
	}
	if e, ok := err.(*Error); ok && e != nil && e.Kind.Valid() && e.Kind != abi.ResultDeliver {
		return e.Kind, e.Message // the common case, without errors.As
	}
	var e *Error
	if errors.As(err, &e) && e != nil && e.Kind.Valid() && e.Kind != abi.ResultDeliver {
		return e.Kind, e.Message
	}
	return abi.ResultFunctionError, err.Error()
}
