package runtime_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
)

// TestABIPageMatchesTheCode keeps docs/abi.md, the page authors in other
// languages follow, true to sdk/abi: each name and number the page gives
// is written here from the abi constant it documents, so that a constant
// that changes, or a row that is edited, fails the test. The rows of the
// host functions are checked against abi.HostFuncs by
// TestHostCallsOnEverySide (abisides_internal_test.go).
func TestABIPageMatchesTheCode(t *testing.T) {
	b, err := os.ReadFile("../docs/abi.md")
	if err != nil {
		t.Fatalf("the ABI page: %v", err)
	}
	page := string(b)
	rows := []string{
		fmt.Sprintf("# The insertfn guest ABI (version %d)", abi.Version),
		fmt.Sprintf("| `%s` | `() -> i32` | returns %d |", abi.ExportABIVersion, abi.Version),
		fmt.Sprintf("| `%s` | `(event_type i32) -> i32` |", abi.ExportHandle),
		fmt.Sprintf("| `%s` | `() -> i32` |", abi.ExportHandleBatch),
		fmt.Sprintf("| `%s` | `() -> ()` |", abi.ExportInitialize),
		fmt.Sprintf("| `%s` | memory |", abi.ExportMemory),
		fmt.Sprintf("at most **%d** bytes (`abi.MaxReasonLen`)", abi.MaxReasonLen),
		fmt.Sprintf("Names longer than %d bytes\n(`abi.MaxNameLen`)", abi.MaxNameLen),
		fmt.Sprintf("| `Purpose` | `0x%02X` |", abi.FlagPurpose),
		fmt.Sprintf("| `InStored` | `0x%02X` |", abi.FlagInStored),
		fmt.Sprintf("| `StoredConsented` | `0x%02X` |", abi.FlagStoredConsented),
		fmt.Sprintf("| `InEvent` | `0x%02X` |", abi.FlagInEvent),
		fmt.Sprintf("| `EventConsented` | `0x%02X` |", abi.FlagEventConsented),
		fmt.Sprintf("| %d | `Deliver` |", abi.ResultDeliver),
		fmt.Sprintf("| %d | `DropEvent` |", abi.ResultDrop),
		fmt.Sprintf("| %d | `EventNotSupported` |", abi.ResultEventNotSupported),
		fmt.Sprintf("| %d | `InvalidEventPayload` |", abi.ResultInvalidEventPayload),
		fmt.Sprintf("| %d | `ValidationError` |", abi.ResultValidationError),
		fmt.Sprintf("| %d | `RetryError` |", abi.ResultRetry),
		fmt.Sprintf("| %d | `FunctionError` |", abi.ResultFunctionError),
		fmt.Sprintf("| %d | `StatusOK` |", abi.StatusOK),
		fmt.Sprintf("| %d | `StatusInvalidJSON` |", abi.StatusInvalidJSON),
		fmt.Sprintf("| %d | `StatusInvalidPath` |", abi.StatusInvalidPath),
		fmt.Sprintf("| %d | `Missing` |", abi.KindMissing),
		fmt.Sprintf("| %d | `Null` |", abi.KindNull),
		fmt.Sprintf("| %d | `False` |", abi.KindFalse),
		fmt.Sprintf("| %d | `True` |", abi.KindTrue),
		fmt.Sprintf("| %d | `Number` |", abi.KindNumber),
		fmt.Sprintf("| %d | `String` |", abi.KindString),
		fmt.Sprintf("| %d | `JSON` |", abi.KindJSON),
		fmt.Sprintf("| %d | `Found` |", abi.ConsentFound),
		fmt.Sprintf("| %d | `Same` |", abi.ConsentSame),
		fmt.Sprintf("| %d | `Differs` |", abi.ConsentDiffers),
		fmt.Sprintf("| %d | `NoRecord` |", abi.ConsentNoRecord),
		fmt.Sprintf("| %d | `NoEventConsent` |", abi.ConsentNoEventConsent),
		fmt.Sprintf("| %d | `NoID` |", abi.ConsentNoID),
		fmt.Sprintf("| %d | `Unavailable` |", abi.ConsentUnavailable),
	}
	for _, e := range []abi.EventType{abi.EventTrack, abi.EventIdentify, abi.EventPage, abi.EventScreen, abi.EventGroup, abi.EventAlias, abi.EventDelete} {
		rows = append(rows, fmt.Sprintf("| %d | `%s` |", e, e))
	}
	rows = append(rows, fmt.Sprintf("| %d | any other", abi.EventOther))
	for _, l := range []abi.Level{abi.LevelDebug, abi.LevelInfo, abi.LevelWarn, abi.LevelError} {
		rows = append(rows, fmt.Sprintf("| %d | %s |", l, l))
	}
	for _, row := range rows {
		if !strings.Contains(page, row) {
			t.Errorf("docs/abi.md does not say %q", row)
		}
	}
}
