package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
)

// The committed SDK files, from this directory.
var committed = []struct {
	path string
	lang Lang
}{
	{"../../../c/insertfn.h", C},
	{"../../../assemblyscript/index.ts", AssemblyScript},
}

// TestCommittedFilesAreGenerated keeps the C header and the AssemblyScript
// library true to package abi: their generated parts must be what abigen
// writes from abi.go today.
func TestCommittedFilesAreGenerated(t *testing.T) {
	groups, err := Constants("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range committed {
		old, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		gen, err := Generate(f.lang, groups)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Splice(old, f.lang, gen)
		if err != nil {
			t.Fatalf("%s: %v", f.path, err)
		}
		if !bytes.Equal(old, want) {
			t.Errorf("%s is not what abigen writes from sdk/abi (first difference: %s): run `cd sdk && go generate ./abi` and commit the result",
				"sdk/"+strings.TrimPrefix(f.path, "../../../"), firstDiff(old, want))
		}
	}
}

func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d is %q, want %q", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(g), len(w))
}

// TestGeneratedValues checks what the generator reads from abi.go's source
// against the compiled constants, and that each host function is declared
// with its signature.
func TestGeneratedValues(t *testing.T) {
	groups, err := Constants("../..")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Generate(C, groups)
	if err != nil {
		t.Fatal(err)
	}
	as, err := Generate(AssemblyScript, groups)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ c, as string }{
		{fmt.Sprintf("#define INSERTFN_ABI_VERSION %d ", abi.Version), fmt.Sprintf("export const ABI_VERSION: u32 = %d;", abi.Version)},
		{fmt.Sprintf("#define INSERTFN_MODULE_NAME %q ", abi.ModuleName), fmt.Sprintf("export const MODULE_NAME: string = %q;", abi.ModuleName)},
		{fmt.Sprintf("#define INSERTFN_EXPORT_HANDLE_BATCH %q ", abi.ExportHandleBatch), fmt.Sprintf("export const EXPORT_HANDLE_BATCH: string = %q;", abi.ExportHandleBatch)},
		{fmt.Sprintf("#define INSERTFN_MAX_REASON_LEN %d ", abi.MaxReasonLen), fmt.Sprintf("export const MAX_REASON_LEN: i32 = %d;", abi.MaxReasonLen)},
		{fmt.Sprintf("#define INSERTFN_EVENT_DELETE %d ", abi.EventDelete), fmt.Sprintf("export const EVENT_DELETE: i32 = %d;", abi.EventDelete)},
		{fmt.Sprintf("#define INSERTFN_RESULT_DROP %d ", abi.ResultDrop), fmt.Sprintf("export const RESULT_DROP: i32 = %d;", abi.ResultDrop)},
		{fmt.Sprintf("#define INSERTFN_RESULT_FUNCTION_ERROR %d ", abi.ResultFunctionError), fmt.Sprintf("export const RESULT_FUNCTION_ERROR: i32 = %d;", abi.ResultFunctionError)},
		{fmt.Sprintf("#define INSERTFN_KIND_JSON %d ", abi.KindJSON), fmt.Sprintf("export const KIND_JSON: u32 = %d;", abi.KindJSON)},
		{fmt.Sprintf("#define INSERTFN_STATUS_INVALID_PATH (%d) ", abi.StatusInvalidPath), fmt.Sprintf("export const STATUS_INVALID_PATH: i32 = %d;", abi.StatusInvalidPath)},
		{fmt.Sprintf("#define INSERTFN_CONSENT_NO_ID %d ", abi.ConsentNoID), fmt.Sprintf("export const CONSENT_NO_ID: u32 = %d;", abi.ConsentNoID)},
		{fmt.Sprintf("#define INSERTFN_CONSENT_UNAVAILABLE %d ", abi.ConsentUnavailable), fmt.Sprintf("export const CONSENT_UNAVAILABLE: u32 = %d;", abi.ConsentUnavailable)},
		{fmt.Sprintf("#define INSERTFN_LEVEL_ERROR %d ", abi.LevelError), fmt.Sprintf("export const LEVEL_ERROR: i32 = %d;", abi.LevelError)},
		{fmt.Sprintf("#define INSERTFN_FLAG_EVENT_CONSENTED 0x%02X ", abi.FlagEventConsented), fmt.Sprintf("export const FLAG_EVENT_CONSENTED: u8 = 0x%02X;", abi.FlagEventConsented)},
		{fmt.Sprintf("#define INSERTFN_MAX_NAME_LEN %d ", abi.MaxNameLen), fmt.Sprintf("export const MAX_NAME_LEN: i32 = %d;", abi.MaxNameLen)},
	} {
		if !bytes.Contains(c, []byte(want.c)) {
			t.Errorf("the C header lacks %q", want.c)
		}
		if !bytes.Contains(as, []byte(want.as)) {
			t.Errorf("the AssemblyScript library lacks %q", want.as)
		}
	}
	if bytes.Contains(c, []byte("I32")) || bytes.Contains(as, []byte("I64")) {
		t.Error("the ValueType constants are written out; they describe the host's signatures, which the declarations spell")
	}
	for _, f := range abi.HostFuncs() {
		attr := fmt.Sprintf("__attribute__((import_module(%q), import_name(%q)))\n", abi.ModuleName, f.Name)
		if !bytes.Contains(c, []byte(attr+cResult(f)+" insertfn_"+f.Name+"(")) {
			t.Errorf("the C header does not declare %s as %s insertfn_%s", f.Name, cResult(f), f.Name)
		}
		ext := fmt.Sprintf("@external(%q, %q)\nexport declare function %s(", abi.ModuleName, f.Name, f.Name)
		if !bytes.Contains(as, []byte(ext)) {
			t.Errorf("the AssemblyScript library does not declare %s", f.Name)
		}
	}
	// A declaration's parameters: one per ABI parameter, with its name.
	if want := "uint64_t insertfn_event_get(const void *path_ptr, uint32_t path_len, void *buf, uint32_t buf_limit);"; !bytes.Contains(c, []byte(want)) {
		t.Errorf("the C header lacks %q", want)
	}
	if want := "export declare function log(level: i32, ptr: usize, len: u32): void;"; !bytes.Contains(as, []byte(want)) {
		t.Errorf("the AssemblyScript library lacks %q", want)
	}
}

func TestSplice(t *testing.T) {
	file := []byte("head\n/* BEGIN GENERATED by abigen */\nold\n/* END GENERATED */\ntail\n")
	got, err := Splice(file, C, []byte("new\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "head\n/* BEGIN GENERATED by abigen */\nnew\n/* END GENERATED */\ntail\n"; string(got) != want {
		t.Errorf("Splice = %q, want %q", got, want)
	}
	for _, bad := range []string{
		"no markers\n",
		"/* BEGIN GENERATED */\nno end\n",
		"// BEGIN GENERATED\n// END GENERATED\n", // the other language's markers
	} {
		if _, err := Splice([]byte(bad), C, nil); err == nil {
			t.Errorf("Splice(%q) did not fail", bad)
		}
	}
}

func TestCName(t *testing.T) {
	for name, want := range map[string]string{
		"Version":               "ABI_VERSION",
		"ResultDrop":            "RESULT_DROP",
		"ExportABIVersion":      "EXPORT_ABI_VERSION",
		"ConsentNoID":           "CONSENT_NO_ID",
		"KindJSON":              "KIND_JSON",
		"StatusOK":              "STATUS_OK",
		"ConsentNoEventConsent": "CONSENT_NO_EVENT_CONSENT",
		"MaxReasonLen":          "MAX_REASON_LEN",
	} {
		if got := cName(name); got != want {
			t.Errorf("cName(%q) = %q, want %q", name, got, want)
		}
	}
}
