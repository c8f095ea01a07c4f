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
// that changes, or a row that is edited, fails the test.
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
		fmt.Sprintf("| `%s` | `(path_ptr i32, path_len i32, buf i32, buf_limit i32) -> i64` |", abi.FuncEventGet),
		fmt.Sprintf("| `%s` | `(path_ptr i32, path_len i32, value_ptr i32, value_len i32) -> i32` |", abi.FuncEventSet),
		fmt.Sprintf("| `%s` | `(path_ptr i32, path_len i32) -> i32` |", abi.FuncEventDelete),
		fmt.Sprintf("| `%s` | `(buf i32, buf_limit i32) -> i32` |", abi.FuncEventRead),
		fmt.Sprintf("| `%s` | `(ptr i32, len i32) -> i32` |", abi.FuncEventWrite),
		fmt.Sprintf("| `%s` | `(id_ptr i32, id_len i32, buf i32, buf_limit i32) -> i64` |", abi.FuncConsentLookup),
		fmt.Sprintf("| `%s` | `(id_ptr i32, id_len i32, buf i32, buf_limit i32) -> i64` |", abi.FuncConsentCompare),
		fmt.Sprintf("| `%s` | `(path_ptr i32, path_len i32, buf i32, buf_limit i32) -> i64` |", abi.FuncSettingsGet),
		fmt.Sprintf("| `%s` | `(level i32, ptr i32, len i32)` |", abi.FuncLog),
		fmt.Sprintf("| `%s` | `(ptr i32, len i32)` |", abi.FuncSetReason),
		fmt.Sprintf("| `%s` | `(result i32) -> i32` |", abi.FuncBatchNext),
		fmt.Sprintf("at most **%d** bytes (`abi.MaxReasonLen`)", abi.MaxReasonLen),
		fmt.Sprintf("Names longer than %d bytes\n(`abi.MaxNameLen`)", abi.MaxNameLen),
	}
	for _, f := range []struct {
		name string
		v    uint8
	}{{"Purpose", abi.FlagPurpose}, {"InStored", abi.FlagInStored}, {"StoredConsented", abi.FlagStoredConsented},
		{"InEvent", abi.FlagInEvent}, {"EventConsented", abi.FlagEventConsented}} {
		rows = append(rows, fmt.Sprintf("| `%s` | `0x%02X` |", f.name, f.v))
	}
	for _, r := range []struct {
		name string
		v    abi.Result
	}{{"Deliver", abi.ResultDeliver}, {"DropEvent", abi.ResultDrop}, {"EventNotSupported", abi.ResultEventNotSupported},
		{"InvalidEventPayload", abi.ResultInvalidEventPayload}, {"ValidationError", abi.ResultValidationError},
		{"RetryError", abi.ResultRetry}, {"FunctionError", abi.ResultFunctionError}} {
		rows = append(rows, fmt.Sprintf("| %d | `%s` |", r.v, r.name))
	}
	for _, s := range []struct {
		name string
		v    abi.Status
	}{{"StatusOK", abi.StatusOK}, {"StatusInvalidJSON", abi.StatusInvalidJSON}, {"StatusInvalidPath", abi.StatusInvalidPath}} {
		rows = append(rows, fmt.Sprintf("| %d | `%s` |", s.v, s.name))
	}
	for _, k := range []struct {
		name string
		v    abi.Kind
	}{{"Missing", abi.KindMissing}, {"Null", abi.KindNull}, {"False", abi.KindFalse}, {"True", abi.KindTrue},
		{"Number", abi.KindNumber}, {"String", abi.KindString}, {"JSON", abi.KindJSON}} {
		rows = append(rows, fmt.Sprintf("| %d | `%s` |", k.v, k.name))
	}
	for _, c := range []struct {
		name string
		v    abi.ConsentStatus
	}{{"Found", abi.ConsentFound}, {"Same", abi.ConsentSame}, {"Differs", abi.ConsentDiffers}, {"NoRecord", abi.ConsentNoRecord},
		{"NoEventConsent", abi.ConsentNoEventConsent}, {"NoID", abi.ConsentNoID}, {"Unavailable", abi.ConsentUnavailable}} {
		rows = append(rows, fmt.Sprintf("| %d | `%s` |", c.v, c.name))
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
