// Command abigen writes the ABI's names and numbers, as package abi defines
// them, into the guest SDKs of other languages: the C header
// (sdk/c/insertfn.h) and the AssemblyScript library
// (sdk/assemblyscript/index.ts). Package abi stays the one place where they
// are spelled; the SDKs' generated parts follow from it, and a test
// (abigen_test.go) fails when a committed file differs from what this
// command writes.
//
// Each file has a generated part between two marker lines and is
// hand-written around it (the helpers). abigen replaces only the lines
// between the markers:
//
//	/* BEGIN GENERATED ... */   (C)       // BEGIN GENERATED ...   (AssemblyScript)
//	/* END GENERATED */                   // END GENERATED
//
// Run it through go generate in the sdk module (sdk/abi/generate.go):
//
//	cd sdk && go generate ./abi
//
// The constants come from abi.go's source, type-checked, so that every
// exported constant is carried over without a list to keep up to date: a
// new constant appears in both SDKs at the next go generate. The host
// functions come from [abi.HostFuncs].
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/constant"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/insertfn/insertfn/sdk/abi"
)

func main() {
	src := flag.String("abi", ".", "the directory of package abi (abi.go)")
	cOut := flag.String("c", "", "the C header whose generated part to rewrite")
	asOut := flag.String("as", "", "the AssemblyScript file whose generated part to rewrite")
	flag.Parse()
	if *cOut == "" && *asOut == "" {
		fmt.Fprintln(os.Stderr, "abigen: nothing to do: give -c FILE.h and/or -as FILE.ts")
		os.Exit(2)
	}
	groups, err := Constants(*src)
	if err != nil {
		fmt.Fprintf(os.Stderr, "abigen: %v\n", err)
		os.Exit(1)
	}
	for _, out := range []struct {
		path string
		lang Lang
	}{{*cOut, C}, {*asOut, AssemblyScript}} {
		if out.path == "" {
			continue
		}
		if err := rewrite(out.path, out.lang, groups); err != nil {
			fmt.Fprintf(os.Stderr, "abigen: %v\n", err)
			os.Exit(1)
		}
	}
}

// rewrite replaces the generated part of the file at path.
func rewrite(path string, lang Lang, groups []Group) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	gen, err := Generate(lang, groups)
	if err != nil {
		return err
	}
	b, err := Splice(old, lang, gen)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if bytes.Equal(b, old) {
		return nil
	}
	return os.WriteFile(path, b, 0o644)
}

// Lang is a language abigen writes.
type Lang int

// The languages.
const (
	C Lang = iota
	AssemblyScript
)

// markers returns the lines that open and close the generated part. The
// opening line is matched by its prefix, so that it can say more.
func (l Lang) markers() (begin, end string) {
	if l == C {
		return "/* BEGIN GENERATED", "/* END GENERATED */"
	}
	return "// BEGIN GENERATED", "// END GENERATED"
}

// Splice returns file with the lines between its markers replaced by gen.
func Splice(file []byte, lang Lang, gen []byte) ([]byte, error) {
	begin, end := lang.markers()
	i := bytes.Index(file, []byte(begin))
	if i < 0 {
		return nil, fmt.Errorf("no line opening with %q: put the markers %q and %q around the generated part", begin, begin, end)
	}
	nl := bytes.IndexByte(file[i:], '\n')
	if nl < 0 {
		return nil, fmt.Errorf("nothing after the line %q", begin)
	}
	start := i + nl + 1
	j := bytes.Index(file[start:], []byte(end))
	if j < 0 {
		return nil, fmt.Errorf("no line %q after %q", end, begin)
	}
	stop := start + j
	var b bytes.Buffer
	b.Write(file[:start])
	b.Write(gen)
	b.Write(file[stop:])
	return b.Bytes(), nil
}

// Group is one const declaration of abi.go, in source order.
type Group struct {
	Doc    string // the first sentence of the declaration's doc comment
	Consts []Const
}

// Const is one exported constant of package abi.
type Const struct {
	Name  string          // its Go name: ResultDrop
	Type  string          // its declared type's name ("Result"), or "" when untyped
	Basic types.BasicKind // its underlying type: types.Int32, types.Uint8, types.UntypedInt, ...
	Value constant.Value
}

// skipped are the types whose constants are not part of what a guest
// sees: ValueType encodes the host functions' signatures, which the
// generated declarations spell out.
var skipped = map[string]bool{"ValueType": true}

// Constants type-checks package abi in dir and returns its exported
// constants, grouped by declaration, in source order.
func Constants(dir string) ([]Group, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var parsed []*ast.File
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		if af.Name.Name == "abi" {
			parsed = append(parsed, af)
		}
	}
	if len(parsed) == 0 {
		return nil, fmt.Errorf("no Go files of package abi in %s: run abigen from sdk/abi (go generate) or give -abi DIR", dir)
	}
	conf := types.Config{Importer: importer.ForCompiler(fset, "source", nil)}
	pkg, err := conf.Check("abi", fset, parsed, nil)
	if err != nil {
		return nil, fmt.Errorf("type-checking package abi: %w", err)
	}
	var groups []Group
	for _, af := range parsed {
		for _, d := range af.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			g := Group{Doc: firstSentence(gd.Doc.Text())}
			for _, spec := range gd.Specs {
				for _, id := range spec.(*ast.ValueSpec).Names {
					if !id.IsExported() {
						continue
					}
					c := pkg.Scope().Lookup(id.Name).(*types.Const)
					k := Const{Name: id.Name, Value: c.Val()}
					if named, ok := c.Type().(*types.Named); ok {
						k.Type = named.Obj().Name()
					}
					k.Basic = c.Type().Underlying().(*types.Basic).Kind()
					if !skipped[k.Type] {
						g.Consts = append(g.Consts, k)
					}
				}
			}
			if len(g.Consts) > 0 {
				if g.Doc == "" && len(g.Consts) == 1 {
					g.Doc = firstSentence(gd.Specs[0].(*ast.ValueSpec).Doc.Text())
				}
				groups = append(groups, g)
			}
		}
	}
	return groups, nil
}

// firstSentence returns the first sentence of a doc comment, on one line,
// with its doc links' brackets removed.
func firstSentence(doc string) string {
	doc = strings.Join(strings.Fields(doc), " ")
	if i := strings.Index(doc, ". "); i >= 0 {
		doc = doc[:i+1]
	}
	return strings.NewReplacer("[", "", "]", "").Replace(doc)
}

// Generate returns the generated part of lang's file: the constants, then
// the host functions' import declarations.
func Generate(lang Lang, groups []Group) ([]byte, error) {
	var b bytes.Buffer
	for _, g := range groups {
		if g.Doc != "" {
			if lang == C {
				fmt.Fprintf(&b, "\n/* %s */\n", g.Doc)
			} else {
				fmt.Fprintf(&b, "\n// %s\n", g.Doc)
			}
		} else {
			b.WriteByte('\n')
		}
		for _, c := range g.Consts {
			v, err := literal(c)
			if err != nil {
				return nil, err
			}
			if lang == C {
				if c.Value.Kind() == constant.Int && constant.Sign(c.Value) < 0 {
					v = "(" + v + ")"
				}
				fmt.Fprintf(&b, "#define INSERTFN_%s %s /* abi.%s */\n", cName(c.Name), v, c.Name)
			} else {
				t, err := asType(c)
				if err != nil {
					return nil, err
				}
				fmt.Fprintf(&b, "export const %s: %s = %s; // abi.%s\n", cName(c.Name), t, v, c.Name)
			}
		}
	}
	if lang == C {
		b.WriteString("\n/* The host functions (abi.HostFuncs), imported from the module \"" + abi.ModuleName + "\". */\n")
	} else {
		b.WriteString("\n// The host functions (abi.HostFuncs), imported from the module \"" + abi.ModuleName + "\".\n")
	}
	for _, f := range abi.HostFuncs() {
		var err error
		if lang == C {
			err = cDecl(&b, f)
		} else {
			err = asDecl(&b, f)
		}
		if err != nil {
			return nil, err
		}
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// literal writes a constant's value as both languages read it: a string in
// double quotes, a flag (uint8) in hexadecimal, any other integer in
// decimal.
func literal(c Const) (string, error) {
	switch c.Value.Kind() {
	case constant.String:
		s := constant.StringVal(c.Value)
		for _, r := range s {
			if r > unicode.MaxASCII || !unicode.IsPrint(r) || r == '"' || r == '\\' {
				return "", fmt.Errorf("abi.%s = %q: only printable ASCII without quotes or backslashes is written out", c.Name, s)
			}
		}
		return `"` + s + `"`, nil
	case constant.Int:
		if c.Basic == types.Uint8 {
			return fmt.Sprintf("0x%02X", constant.Val(c.Value)), nil
		}
		return c.Value.ExactString(), nil
	}
	return "", fmt.Errorf("abi.%s is a %s constant: abigen writes only strings and integers; teach it this kind", c.Name, c.Value.Kind())
}

// asType is the AssemblyScript type of a constant.
func asType(c Const) (string, error) {
	switch c.Basic {
	case types.String, types.UntypedString:
		return "string", nil
	case types.Int32, types.UntypedInt:
		return "i32", nil
	case types.Uint32:
		return "u32", nil
	case types.Uint8:
		return "u8", nil
	}
	return "", fmt.Errorf("abi.%s has the underlying type %s: give it an AssemblyScript type in abigen's asType", c.Name, types.Typ[c.Basic])
}

// cName turns a Go name into the C and AssemblyScript constant's name,
// without the INSERTFN_ prefix of C: ResultDrop is RESULT_DROP,
// ExportABIVersion is EXPORT_ABI_VERSION. Version is the ABI's version:
// ABI_VERSION.
func cName(name string) string {
	if name == "Version" {
		return "ABI_VERSION"
	}
	rs := []rune(name)
	var b strings.Builder
	for i, r := range rs {
		if i > 0 && unicode.IsUpper(r) {
			prevLower := unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1])
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if prevLower || (unicode.IsUpper(rs[i-1]) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// errParam names a parameter the generator cannot type.
var errParam = errors.New("abigen does not know the type of the parameter")

// cParam is the C type of a host function's parameter, by its name in
// abi.HostFuncs: a pointer to bytes the host reads, a buffer the host
// writes, a length, or a number.
func cParam(p abi.Param) (string, error) {
	switch {
	case p.Type != abi.I32:
		return "", fmt.Errorf("%w %s %s (not an i32): give it a C type in cParam", errParam, p.Name, p.Type)
	case p.Name == "buf":
		return "void *", nil
	case p.Name == "ptr" || strings.HasSuffix(p.Name, "_ptr"):
		return "const void *", nil
	case p.Name == "len" || strings.HasSuffix(p.Name, "_len") || p.Name == "buf_limit":
		return "uint32_t ", nil
	case p.Name == "level" || p.Name == "result":
		return "int32_t ", nil
	}
	return "", fmt.Errorf("%w %s: give it a C type in cParam", errParam, p.Name)
}

// asParam is the AssemblyScript type of a host function's parameter.
func asParam(p abi.Param) (string, error) {
	t, err := cParam(p)
	switch {
	case err != nil:
		return "", err
	case strings.Contains(t, "*"):
		return "usize", nil
	case strings.HasPrefix(t, "uint32_t"):
		return "u32", nil
	}
	return "i32", nil
}

func cResult(f abi.HostFunc) string {
	switch {
	case len(f.Results) == 0:
		return "void"
	case f.Results[0] == abi.I64:
		return "uint64_t"
	}
	return "int32_t"
}

func asResult(f abi.HostFunc) string {
	switch {
	case len(f.Results) == 0:
		return "void"
	case f.Results[0] == abi.I64:
		return "u64"
	}
	return "i32"
}

// cDecl writes the declaration of a host function, named insertfn_NAME.
func cDecl(b *bytes.Buffer, f abi.HostFunc) error {
	fmt.Fprintf(b, "__attribute__((import_module(\"%s\"), import_name(\"%s\")))\n", abi.ModuleName, f.Name)
	fmt.Fprintf(b, "%s insertfn_%s(", cResult(f), f.Name)
	for i, p := range f.Params {
		t, err := cParam(p)
		if err != nil {
			return fmt.Errorf("host function %s: %w", f.Name, err)
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t + p.Name)
	}
	if len(f.Params) == 0 {
		b.WriteString("void")
	}
	b.WriteString(");\n")
	return nil
}

// asDecl writes the declaration of a host function, named as the ABI names
// it.
func asDecl(b *bytes.Buffer, f abi.HostFunc) error {
	fmt.Fprintf(b, "@external(\"%s\", \"%s\")\n", abi.ModuleName, f.Name)
	fmt.Fprintf(b, "export declare function %s(", f.Name)
	for i, p := range f.Params {
		t, err := asParam(p)
		if err != nil {
			return fmt.Errorf("host function %s: %w", f.Name, err)
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "%s: %s", p.Name, t)
	}
	fmt.Fprintf(b, "): %s;\n", asResult(f))
	return nil
}
