package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/tetratelabs/wazero/api"
)

// A host call lives in four places: its signature in package abi
// (abi.HostFuncs), its body in hostFuncs (host.go), its //go:wasmimport
// declaration in the Go SDK (sdk/host_wasip1.go) and its row in
// docs/abi.md. These tests fail when a call is in one place and not in
// another, or when the page gives another signature than package abi.

const (
	guestImportsFile = "../sdk/*.go" // the SDK package's files, in messages
	abiPageFile      = "../docs/abi.md"
)

// readGuestSources returns the source of the Go SDK package's files (not
// its tests), one after the other.
func readGuestSources() ([]byte, error) {
	files, err := filepath.Glob(guestImportsFile)
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no Go files at %s (%v)", guestImportsFile, err)
	}
	var src []byte
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		src = append(append(src, b...), '\n')
	}
	return src, nil
}

// callSides are the names of the host calls in each place, and the
// signature each row of the page gives.
type callSides struct {
	abi     []abi.HostFunc
	runtime []string
	guest   []string
	page    map[string]string // name -> signature, from the page's rows
}

func TestHostCallsOnEverySide(t *testing.T) {
	src, err := readGuestSources()
	if err != nil {
		t.Fatalf("the Go SDK's imports: %v", err)
	}
	page, err := os.ReadFile(abiPageFile)
	if err != nil {
		t.Fatalf("the ABI page: %v", err)
	}
	sides, problems := readSides(string(src), string(page))
	problems = append(problems, sides.check()...)
	for _, p := range problems {
		t.Error(p)
	}
	if len(sides.abi) == 0 || len(sides.guest) == 0 || len(sides.page) == 0 {
		t.Errorf("found %d calls in package abi, %d guest imports, %d rows on the page: the files have changed shape; update this test",
			len(sides.abi), len(sides.guest), len(sides.page))
	}
}

// TestHostCallsCheckCatchesMistakes removes or changes a call in one place
// at a time: each mistake must be reported.
func TestHostCallsCheckCatchesMistakes(t *testing.T) {
	src, err := readGuestSources()
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(abiPageFile)
	if err != nil {
		t.Fatal(err)
	}
	mutations := map[string]struct {
		src, page func(string) string
		sides     func(*callSides)
	}{
		"not in package abi": {sides: func(s *callSides) {
			s.abi = slices.DeleteFunc(s.abi, func(f abi.HostFunc) bool { return f.Name == abi.FuncLog })
		}},
		"not in the runtime":   {sides: func(s *callSides) { s.runtime = slices.DeleteFunc(s.runtime, eq(abi.FuncSetReason)) }},
		"twice in the runtime": {sides: func(s *callSides) { s.runtime = append(s.runtime, abi.FuncEventGet) }},
		"not imported by the SDK": {src: func(s string) string {
			return strings.Replace(s, "//go:wasmimport insertfn batch_next\n", "", 1)
		}},
		"imported from another module": {src: func(s string) string {
			return strings.Replace(s, "//go:wasmimport insertfn event_read", "//go:wasmimport env event_read", 1)
		}},
		"no row on the page": {page: func(s string) string {
			return strings.Replace(s, "| `consent_compare` |", "| consent_compare |", 1)
		}},
		"another signature on the page": {page: func(s string) string {
			return strings.Replace(s, "| `event_delete` | `(path_ptr i32, path_len i32) -> i32` |", "| `event_delete` | `(path_ptr i32) -> i32` |", 1)
		}},
		"a row for a call that is not there": {page: func(s string) string {
			return strings.Replace(s, "| `log` |", "| `event_clear` | `() -> i32` | status |\n| `log` |", 1)
		}},
	}
	for name, m := range mutations {
		t.Run(name, func(t *testing.T) {
			s, p := string(src), string(page)
			if m.src != nil {
				if s = m.src(s); s == string(src) {
					t.Fatalf("%s no longer holds the text this mutation changes; update this test", guestImportsFile)
				}
			}
			if m.page != nil {
				if p = m.page(p); p == string(page) {
					t.Fatalf("%s no longer holds the text this mutation changes; update this test", abiPageFile)
				}
			}
			sides, problems := readSides(s, p)
			if m.sides != nil {
				m.sides(&sides)
			}
			problems = append(problems, sides.check()...)
			if len(problems) == 0 {
				t.Fatal("the check found nothing wrong")
			}
			t.Log(problems)
		})
	}
}

func eq(name string) func(string) bool { return func(s string) bool { return s == name } }

var (
	wasmImportRE = regexp.MustCompile(`(?m)^//go:wasmimport\s+(\S+)\s+(\S+)\s*$`)
	pageRowRE    = regexp.MustCompile("^\\| `([^`]+)` \\| `([^`]*)` \\|")
)

// readSides reads the calls of the Go SDK's source and of the ABI page;
// package abi and the runtime are read from the code.
func readSides(guestSrc, page string) (callSides, []string) {
	var problems []string
	s := callSides{abi: abi.HostFuncs(), page: map[string]string{}}
	for _, h := range hostFuncs {
		s.runtime = append(s.runtime, h.name)
	}
	for _, m := range wasmImportRE.FindAllStringSubmatch(guestSrc, -1) {
		if m[1] != abi.ModuleName {
			problems = append(problems, fmt.Sprintf("%s imports %s from module %q, want %q (abi.ModuleName)", guestImportsFile, m[2], m[1], abi.ModuleName))
			continue
		}
		s.guest = append(s.guest, m[2])
	}
	// The rows of the section "## Imports: module `insertfn`".
	in := false
	for line := range strings.SplitSeq(page, "\n") {
		if strings.HasPrefix(line, "## ") {
			in = strings.HasPrefix(line, "## Imports")
			if in && !strings.Contains(line, "`"+abi.ModuleName+"`") {
				problems = append(problems, fmt.Sprintf("%s: %q does not name the module %q", abiPageFile, line, abi.ModuleName))
			}
			continue
		}
		if m := pageRowRE.FindStringSubmatch(line); in && m != nil {
			if _, dup := s.page[m[1]]; dup {
				problems = append(problems, fmt.Sprintf("%s has two rows for %s", abiPageFile, m[1]))
			}
			s.page[m[1]] = m[2]
		}
	}
	return s, problems
}

// check reports each call that one place has and another lacks, and each
// row of the page whose signature is not package abi's.
func (s callSides) check() []string {
	var problems []string
	count := func(names []string) map[string]int {
		n := map[string]int{}
		for _, name := range names {
			n[name]++
		}
		return n
	}
	var abiNames []string
	for _, f := range s.abi {
		abiNames = append(abiNames, f.Name)
	}
	var pageNames []string
	for name := range s.page {
		pageNames = append(pageNames, name)
	}
	places := []struct {
		where, fix string
		n          map[string]int
	}{
		{"abi.HostFuncs (sdk/abi/abi.go)", "its Func constant and signature", count(abiNames)},
		{"hostFuncs (runtime/host.go)", "its body", count(s.runtime)},
		{guestImportsFile, "its //go:wasmimport " + abi.ModuleName + " declaration", count(s.guest)},
		{abiPageFile + " (section Imports)", "its row", count(pageNames)},
	}
	all := map[string]bool{}
	for _, p := range places {
		for name := range p.n {
			all[name] = true
		}
	}
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		var has, lacks []string
		for _, p := range places {
			switch p.n[name] {
			case 0:
				lacks = append(lacks, p.where+": add "+p.fix)
			case 1:
				has = append(has, p.where)
			default:
				problems = append(problems, fmt.Sprintf("host call %s is in %s %d times, want once", name, p.where, p.n[name]))
			}
		}
		if len(lacks) > 0 {
			problems = append(problems, fmt.Sprintf("host call %s is in %s but not in\n\t%s",
				name, strings.Join(has, ", "), strings.Join(lacks, "\n\t")))
		}
	}
	for _, f := range s.abi {
		if got, ok := s.page[f.Name]; ok && got != f.Signature() {
			problems = append(problems, fmt.Sprintf("%s gives %s the signature `%s`; package abi says `%s`", abiPageFile, f.Name, got, f.Signature()))
		}
	}
	return problems
}

// TestHostSignatures checks that the runtime takes its signatures from
// package abi as they are, and refuses to start when the two lists
// disagree.
func TestHostSignatures(t *testing.T) {
	if api.ValueType(abi.I32) != api.ValueTypeI32 || api.ValueType(abi.I64) != api.ValueTypeI64 {
		t.Fatalf("abi.I32, abi.I64 = %#x, %#x; wazero's are %#x, %#x", abi.I32, abi.I64, api.ValueTypeI32, api.ValueTypeI64)
	}
	if hostSigsErr != nil {
		t.Fatal(hostSigsErr)
	}
	for _, f := range abi.HostFuncs() {
		sig, ok := hostSigs[f.Name]
		if !ok {
			t.Errorf("no signature for %s", f.Name)
			continue
		}
		var want signature
		for _, p := range f.Params {
			want.params = append(want.params, api.ValueType(p.Type))
		}
		for _, r := range f.Results {
			want.results = append(want.results, api.ValueType(r))
		}
		if !slices.Equal(sig.params, want.params) || !slices.Equal(sig.results, want.results) {
			t.Errorf("%s: signature %v -> %v, want %v -> %v", f.Name, sig.params, sig.results, want.params, want.results)
		}
	}
	body := func(*instance, []uint64) {}
	for name, tc := range map[string]struct {
		abi  []abi.HostFunc
		impl []hostFunc
		want string
	}{
		"not in abi":        {nil, []hostFunc{{"x", body}}, "not in abi.HostFuncs"},
		"not implemented":   {[]abi.HostFunc{{Name: "x"}}, nil, "does not implement"},
		"implemented twice": {[]abi.HostFunc{{Name: "x"}}, []hostFunc{{"x", body}, {"x", body}}, "twice"},
	} {
		if _, err := hostSignatures(tc.abi, tc.impl); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one that says %q", name, err, tc.want)
		}
	}
}
