package sdk

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
)

// A //go:wasmimport or //go:wasmexport directive cannot use a constant, so
// host_wasip1.go spells the ABI's names out. This test keeps them equal to
// package abi, the one place they are defined.

// hostFuncs are all the host functions of the ABI (abi.HostFuncs), with
// their WebAssembly signatures in types alone: "(i32, i32) -> i64".
var hostFuncs = typeSignatures(abi.HostFuncs())

func typeSignatures(fs []abi.HostFunc) map[string]string {
	m := make(map[string]string, len(fs))
	for _, f := range fs {
		var params, results []string
		for _, p := range f.Params {
			params = append(params, p.Type.String())
		}
		for _, r := range f.Results {
			results = append(results, r.String())
		}
		res := "()"
		switch len(results) {
		case 0:
		case 1:
			res = results[0]
		default:
			res = "(" + strings.Join(results, ", ") + ")"
		}
		m[f.Name] = "(" + strings.Join(params, ", ") + ") -> " + res
	}
	return m
}

// guestExports are the exports the Go SDK defines with //go:wasmexport
// (ExportInitialize and ExportMemory come from the Go toolchain).
var guestExports = map[string]string{
	abi.ExportABIVersion:  "() -> i32",
	abi.ExportHandle:      "(i32) -> i32",
	abi.ExportHandleBatch: "() -> i32",
}

var directiveRE = regexp.MustCompile(`^//go:(wasmimport|wasmexport)(?:\s+(\S+))?(?:\s+(\S+))?(?:\s+(\S+))?\s*$`)

type directive struct {
	kind   string // "wasmimport" or "wasmexport"
	module string // imports only
	name   string
	sig    string // the Go function's signature in WebAssembly types
	line   int
}

// problems collects what a check finds wrong.
type problems []string

func (p *problems) Errorf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func readDirectives(t *problems, file string, src any) []directive {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.ParseComments)
	if err != nil {
		t.Errorf("%v", err)
		return nil
	}
	var ds []directive
	seen := 0
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Doc == nil {
			continue
		}
		for _, c := range fn.Doc.List {
			if !strings.HasPrefix(c.Text, "//go:wasm") {
				continue
			}
			seen++
			line := fset.Position(c.Pos()).Line
			m := directiveRE.FindStringSubmatch(c.Text)
			if m == nil {
				t.Errorf("%s:%d: unrecognised directive %q", file, line, c.Text)
				continue
			}
			d := directive{kind: m[1], line: line, sig: wasmSignature(t, fn)}
			switch {
			case d.kind == "wasmimport" && m[2] != "" && m[3] != "" && m[4] == "":
				d.module, d.name = m[2], m[3]
			case d.kind == "wasmexport" && m[2] != "" && m[3] == "":
				d.name = m[2]
			default:
				t.Errorf("%s:%d: malformed directive %q", file, line, c.Text)
				continue
			}
			ds = append(ds, d)
		}
	}
	// A directive that is not in a function's doc comment (a blank line
	// between them, say) is ignored by the compiler: catch it too.
	all := 0
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			if strings.HasPrefix(c.Text, "//go:wasm") {
				all++
			}
		}
	}
	if all != seen {
		t.Errorf("%s: %d //go:wasm directives, but only %d are attached to a function", file, all, seen)
	}
	return ds
}

// wasmSignature renders a function's Go signature in WebAssembly types.
func wasmSignature(t *problems, fn *ast.FuncDecl) string {
	var params, results []string
	add := func(list *[]string, fl *ast.FieldList) {
		if fl == nil {
			return
		}
		for _, field := range fl.List {
			vt := wasmType(t, fn.Name.Name, field.Type)
			for range max(1, len(field.Names)) {
				*list = append(*list, vt)
			}
		}
	}
	add(&params, fn.Type.Params)
	add(&results, fn.Type.Results)
	res := "()"
	switch len(results) {
	case 0:
	case 1:
		res = results[0]
	default:
		res = "(" + strings.Join(results, ", ") + ")"
	}
	return "(" + strings.Join(params, ", ") + ") -> " + res
}

func wasmType(t *problems, fn string, e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		switch x.Name {
		case "int32", "uint32", "bool":
			return "i32"
		case "int64", "uint64":
			return "i64"
		case "float32":
			return "f32"
		case "float64":
			return "f64"
		}
	case *ast.SelectorExpr:
		if id, ok := x.X.(*ast.Ident); ok && id.Name == "unsafe" && x.Sel.Name == "Pointer" {
			return "i32"
		}
	}
	t.Errorf("%s: a parameter or result type has no WebAssembly equivalent", fn)
	return "?"
}

func TestWasmDirectivesMatchABI(t *testing.T) {
	for _, p := range checkDirectives("host_wasip1.go", nil) {
		t.Error(p)
	}
}

// checkDirectives checks the directives of one Go file against the ABI.
func checkDirectives(file string, src any) problems {
	var t problems
	ds := readDirectives(&t, file, src)
	imported := map[string]int{}
	exported := map[string]int{}
	for _, d := range ds {
		switch d.kind {
		case "wasmimport":
			if d.module != abi.ModuleName {
				t.Errorf("host_wasip1.go:%d: imports %s from module %q, want abi.ModuleName %q", d.line, d.name, d.module, abi.ModuleName)
			}
			want, ok := hostFuncs[d.name]
			if !ok {
				t.Errorf("host_wasip1.go:%d: imports %q, which is not in abi.HostFuncs (add the function to package abi first)", d.line, d.name)
				continue
			}
			if d.sig != want {
				t.Errorf("host_wasip1.go:%d: %s is declared %s, the ABI says %s", d.line, d.name, d.sig, want)
			}
			imported[d.name]++
		case "wasmexport":
			want, ok := guestExports[d.name]
			if !ok {
				t.Errorf("host_wasip1.go:%d: exports %q, which is not an ABI export", d.line, d.name)
				continue
			}
			if d.sig != want {
				t.Errorf("host_wasip1.go:%d: %s is declared %s, the ABI says %s", d.line, d.name, d.sig, want)
			}
			exported[d.name]++
		}
	}
	for name := range hostFuncs {
		if imported[name] != 1 {
			t.Errorf("host function %q is imported %d times, want exactly once", name, imported[name])
		}
	}
	for name := range guestExports {
		if exported[name] != 1 {
			t.Errorf("export %q is defined %d times, want exactly once", name, exported[name])
		}
	}
	if exported[abi.ExportABIVersion] != 1 || exported[abi.ExportHandle] != 1 {
		t.Errorf("the guest must export %s and %s", abi.ExportABIVersion, abi.ExportHandle)
	}
	return t
}

// TestABIConstantsListed reads package abi's source so that a host function
// added there without its entry in abi.HostFuncs, or an export added without
// being added to guestExports above (and so to host_wasip1.go), fails this
// test. The signature line in each Func* constant's doc comment must be
// the one abi.HostFuncs gives.
func TestABIConstantsListed(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "abi/abi.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]abi.HostFunc{}
	for _, hf := range abi.HostFuncs() {
		table[hf.Name] = hf
	}
	var funcs, exports []string
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				val, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case strings.HasPrefix(name.Name, "Func"):
					funcs = append(funcs, val)
					hf, ok := table[val]
					if !ok {
						t.Errorf("abi.%s = %q is not in abi.HostFuncs: add its signature there", name.Name, val)
						continue
					}
					if want := docSignature(hf); !hasSignatureLine(vs.Doc, want) {
						t.Errorf("the doc comment of abi.%s does not give its signature as abi.HostFuncs does: want the line\n\t%s", name.Name, want)
					}
				case strings.HasPrefix(name.Name, "Export"):
					exports = append(exports, val)
					if _, ok := guestExports[val]; !ok && val != abi.ExportInitialize && val != abi.ExportMemory {
						t.Errorf("abi.%s = %q is not in this test's guestExports", name.Name, val)
					}
				}
			}
		}
	}
	if len(funcs) != len(abi.HostFuncs()) || len(hostFuncs) != len(abi.HostFuncs()) {
		t.Errorf("abi.go defines %d Func* constants %v, abi.HostFuncs lists %d functions (%d names): want one entry per constant",
			len(funcs), funcs, len(abi.HostFuncs()), len(hostFuncs))
	}
	for name := range guestExports {
		if !slices.Contains(exports, name) {
			t.Errorf("this test lists export %q, which abi.go does not define", name)
		}
	}
	// Names must be unique: two constants with one value would hide a
	// missing import.
	slices.Sort(funcs)
	if n := len(funcs); len(slices.Compact(funcs)) != n {
		t.Errorf("abi.go's Func* constants are not unique: %v", funcs)
	}
}

// docSignature is f's signature as package abi's doc comments write it,
// parameters of one type grouped: "event_get(path_ptr, path_len, buf,
// buf_limit i32) -> i64".
func docSignature(f abi.HostFunc) string {
	var b strings.Builder
	b.WriteString(f.Name + "(")
	for i, p := range f.Params {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.Name)
		if i == len(f.Params)-1 || f.Params[i+1].Type != p.Type {
			b.WriteString(" " + p.Type.String())
		}
	}
	b.WriteString(")")
	for i, r := range f.Results {
		if i == 0 {
			b.WriteString(" -> ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(r.String())
	}
	return b.String()
}

// hasSignatureLine reports whether doc has a line that is sig, alone or
// followed by a remark after two spaces.
func hasSignatureLine(doc *ast.CommentGroup, sig string) bool {
	if doc == nil {
		return false
	}
	for line := range strings.SplitSeq(doc.Text(), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), sig)
		if ok && (rest == "" || strings.HasPrefix(rest, "  ")) {
			return true
		}
	}
	return false
}

// TestDirectiveCheckCatchesMistakes runs the check on broken copies of
// host_wasip1.go: each mistake must be reported.
func TestDirectiveCheckCatchesMistakes(t *testing.T) {
	src, err := os.ReadFile("host_wasip1.go")
	if err != nil {
		t.Fatal(err)
	}
	if p := checkDirectives("host_wasip1.go", src); len(p) != 0 {
		t.Fatalf("the real file has problems: %v", p)
	}
	mutations := map[string][2]string{
		"wrong module":       {"//go:wasmimport insertfn event_get", "//go:wasmimport env event_get"},
		"misspelt name":      {"//go:wasmimport insertfn event_get", "//go:wasmimport insertfn event_gett"},
		"missing import":     {"//go:wasmimport insertfn log\n", "\n"},
		"imported twice":     {"//go:wasmimport insertfn event_set", "//go:wasmimport insertfn event_get"},
		"wrong export":       {"//go:wasmexport insertfn_handle\n", "//go:wasmexport handle\n"},
		"wrong result type":  {"func hostEventDelete(path unsafe.Pointer, pathLen uint32) int32", "func hostEventDelete(path unsafe.Pointer, pathLen uint32) int64"},
		"missing parameter":  {"func hostSetReason(ptr unsafe.Pointer, n uint32)", "func hostSetReason(ptr unsafe.Pointer)"},
		"detached directive": {"//go:wasmimport insertfn set_reason\n", "//go:wasmimport insertfn set_reason\n\n"},
		"no module":          {"//go:wasmimport insertfn event_read", "//go:wasmimport event_read"},
	}
	for name, m := range mutations {
		if !strings.Contains(string(src), m[0]) {
			t.Errorf("%s: host_wasip1.go no longer contains %q; update this test", name, m[0])
			continue
		}
		broken := strings.Replace(string(src), m[0], m[1], 1)
		if p := checkDirectives("host_wasip1.go", broken); len(p) == 0 {
			t.Errorf("%s: the check found nothing wrong", name)
		} else {
			t.Logf("%s: %v", name, p)
		}
	}
}
