package sdk_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/insertfn/insertfn/sdk"
	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/sdktest"
)

// A consent function as its author writes it: handlers registered from
// init, a drop when the event's consent disagrees with the stored one.
// In the function's own package (package main, built with insertfn build):
//
//	func init() { sdk.Handle(sdk.Handlers{Any: checkConsent}) }
//	func main() {}
var handlers = sdk.Handlers{Any: checkConsent}

var errMismatch = sdk.DropEvent("Consent mismatch")

func checkConsent(e *sdk.Event) error {
	mismatch, err := e.ConsentMismatch("") // "": the event's userId, else its anonymousId
	switch {
	case errors.Is(err, sdk.ErrNoRecord), errors.Is(err, sdk.ErrNoEventConsent):
		return nil // nothing to compare: let it through
	case err != nil:
		return sdk.RetryError("consent store unavailable")
	case mismatch:
		return errMismatch
	}
	e.Log(abi.LevelInfo, "consent matches for "+e.UserID())
	return nil
}

// Example tests the handlers natively with sdktest, as the function's
// TestXxx would: the same host code as in the sandbox, no WebAssembly. A
// test passes its *testing.T to sdktest.Run; an example has none, so
// exampleT stands in for it.
func Example() {
	stored := sdktest.WithConsent(`{"id":"u1","categoryPreferences":{"Advertising":false,"Analytics":true}}`)

	stale := sdktest.Run(exampleT{}, handlers,
		`{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}}`,
		stored)
	fmt.Println(stale.Verdict, stale.Reason)

	current := sdktest.Run(exampleT{}, handlers,
		`{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true}}}}`,
		stored)
	fmt.Println(current.Verdict, current.Logs[0].Message)
	// Output:
	// DropEvent Consent mismatch
	// Deliver consent matches for u1
}

// exampleT is the testing.TB of the example: sdktest.Run only reports
// through Helper and Fatalf.
type exampleT struct{ testing.TB }

func (exampleT) Helper() {}

func (exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
