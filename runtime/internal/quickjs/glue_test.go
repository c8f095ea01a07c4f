package quickjs

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
)

// glue returns the pinned emscripten glue, which make js-engine copies next
// to the engine.
func glue(t *testing.T) string {
	t.Helper()
	b, err := engineFiles.ReadFile("engine/dist/emscripten-module.cjs")
	if err != nil {
		skipWithoutEngine(t, fmt.Errorf("the engine's glue: %v (run make js-engine)", err))
	}
	return string(b)
}

// The glue defines the imports as one object literal, ua={b:(...)=>...,
// c:...}; each import's definition must be there, under its name, and hold
// the text this package identified it by.
func TestImportsMatchTheGlue(t *testing.T) {
	js := glue(t)
	start := strings.Index(js, "ua={")
	end := strings.Index(js, "},Z;")
	if start < 0 || end < start {
		t.Fatal("the glue's import object (ua={...},Z;) is not where it was: a new version of the glue? Map its imports again")
	}
	obj := js[start+len("ua={") : end+1]
	// Each entry begins at a name followed by a colon after a comma (or the
	// object's start) at the top level of the literal.
	defs := splitTopLevel(obj)
	imports := hostImports()
	if len(defs) != len(imports)+1 { // +1: the memory, a:q
		t.Errorf("the glue defines %d imports, the host %d (and the memory)", len(defs), len(imports))
	}
	if defs["a"] != "q" {
		t.Errorf("the memory is not a.a in the glue: a:%q", defs["a"])
	}
	for _, h := range imports {
		def, ok := defs[h.name]
		if !ok {
			t.Errorf("the glue defines no import %q (%s)", h.name, h.glue)
			continue
		}
		if !strings.Contains(def, h.marker) {
			t.Errorf("import %q: the glue's definition does not contain %q, by which this package knows it as %s:\n%s", h.name, h.marker, h.glue, def)
		}
	}
}

// splitTopLevel splits an object literal's body into its entries by name.
func splitTopLevel(obj string) map[string]string {
	defs := make(map[string]string)
	depth, startEntry := 0, 0
	var quote byte
	flush := func(end int) {
		entry := obj[startEntry:end]
		if i := strings.IndexByte(entry, ':'); i > 0 {
			defs[entry[:i]] = entry[i+1:]
		}
	}
	for i := 0; i < len(obj); i++ {
		c := obj[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '{' || c == '[':
			depth++
		case c == ')' || c == '}' || c == ']':
			depth--
			if depth < 0 {
				flush(i)
				return defs
			}
		case c == ',' && depth == 0:
			flush(i)
			startEntry = i + 1
		}
	}
	flush(len(obj))
	return defs
}

// The glue assigns the exports as c._NAME=b.minified.
func TestExportsMatchTheGlue(t *testing.T) {
	js := glue(t)
	glueExports := make(map[string]string)
	for _, m := range regexp.MustCompile(`c\._(\w+)=b\.([\w$]+)`).FindAllStringSubmatch(js, -1) {
		glueExports[m[1]] = m[2]
	}
	if len(glueExports) < 50 {
		t.Fatalf("found %d exports in the glue: has its form changed?", len(glueExports))
	}
	for _, e := range engineExports {
		if e.c == "__wasm_call_ctors" {
			// The glue calls it right after instantiation, as Z.v().
			if !strings.Contains(js, "Z."+e.name+"()") {
				t.Errorf("the glue does not call %s as Z.%s()", e.c, e.name)
			}
			continue
		}
		if got := glueExports[e.c]; got != e.name {
			t.Errorf("%s: the glue exports it as %q, this package calls %q", e.c, got, e.name)
		}
	}
}

func TestPrepare(t *testing.T) {
	wasm, err := EngineWasm()
	if err != nil {
		t.Fatal(err)
	}
	prepared, minPages, err := prepare(wasm)
	if err != nil {
		t.Fatal(err)
	}
	// The static data and emscripten's 5 MiB stack, which ends at
	// 5342832 in the pinned build, not emscripten's 16 MiB at start.
	if minPages != 82 {
		t.Errorf("min pages %d, want 82: the pages below the stack's top and one more", minPages)
	}
	again, _, _ := prepare(wasm)
	if string(again) != string(prepared) {
		t.Error("prepare is not deterministic: the compilation cache would miss")
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	compiled, err := rt.CompileModule(ctx, prepared)
	if err != nil {
		t.Fatal(err)
	}
	if len(compiled.ImportedMemories()) != 0 {
		t.Error("the prepared engine still imports a memory")
	}
	mem, ok := compiled.ExportedMemories()[memoryExport]
	if !ok {
		t.Fatal("the prepared engine does not export its memory")
	}
	if max, ok := mem.Max(); !ok || max != maxPages || mem.Min() != minPages {
		t.Errorf("memory limits %d..%d (%v), want %d..%d", mem.Min(), max, ok, minPages, maxPages)
	}
	if _, ok := compiled.ExportedFunctions()["w"]; !ok {
		t.Error("the prepared engine lost its exports")
	}
	if _, _, err := prepare(prepared); err == nil {
		t.Error("prepare accepted a module without a memory import")
	}
}

func TestNoEngineErrorNamesTheMakeTarget(t *testing.T) {
	if !strings.Contains(ErrNoEngine.Error(), "make js-engine") {
		t.Fatal(ErrNoEngine)
	}
}
