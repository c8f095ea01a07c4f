//go:build !wasip1

package sdk

import (
	"fmt"

	"github.com/insertfn/insertfn/sdk/abi"
)

// eventHost is what an Event calls: natively, any Host (package sdktest
// supplies one).
type eventHost = Host

// Handle registers the function's handlers. Call it from the function's
// init. Outside WebAssembly it does nothing: native tests run handlers with
// package sdktest.
func Handle(h Handlers) {}

// Serve runs the handler for one event on a host and returns the verdict and
// its reason. Package sdktest calls it; function authors do not need it. It
// exists only outside WebAssembly, where the SDK calls the real host itself.
//
// # Parameters
//   - host: the host the event lives on.
//   - t: the event's type.
//
// # Results
//   - the verdict ([abi.ResultDeliver] when the handler returned nil);
//   - the reason (DropEvent's reason or the error's message), "" to deliver.
//
// A panic in the handler is recovered as [abi.ResultFunctionError] with the
// reason "panic: ...". (In WebAssembly the host reports it as a GuestExit,
// which the failure policy treats the same way.)
func (h *Handlers) Serve(host Host, t abi.EventType) (result abi.Result, reason string) {
	defer func() {
		if r := recover(); r != nil {
			h.event = Event{scratch: h.event.scratch}
			result, reason = abi.ResultFunctionError, fmt.Sprintf("panic: %v", r)
		}
	}()
	return h.serve(host, t)
}
