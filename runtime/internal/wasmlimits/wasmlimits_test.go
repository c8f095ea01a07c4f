package wasmlimits

import (
	"errors"
	"testing"

	"github.com/insertfn/insertfn/runtime/wasmtest"
)

// generous are limits no small module breaks.
var generous = Limits{ModuleBytes: 1 << 20, CodeBytes: 1 << 20, FunctionBytes: 1 << 20, Functions: 1000,
	Locals: 1000, Tables: 4, TableElements: 1000, SectionItems: 1000, MemoryPages: 16}

// TestCheckTruncated: every prefix of a valid module is either accepted
// or refused with an *Error, never a panic, and the whole module passes.
func TestCheckTruncated(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" + // type 0: () -> ()
		"\x02\x08\x01\x01m\x01g\x03\x7f\x00" + // import m.g: an immutable i32 global
		"\x03\x02\x01\x00" + // one function of type 0
		"\x04\x04\x01\x70\x00\x02" + // a funcref table of 2
		"\x05\x03\x01\x00\x01" + // a memory of 1 page
		"\x0a\x06\x01\x04\x01\x01\x7f\x0b" + // body: one i32 local, end
		"\x00\x03\x01n\x00") // custom section "n"
	if err := Check(wasm, generous); err != nil {
		t.Fatalf("the whole module: %v", err)
	}
	for n := range len(wasm) {
		err := Check(wasm[:n], generous)
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Errorf("prefix of %d bytes: %T %v, want an *Error", n, err, err)
		}
	}
	for _, c := range []struct {
		limits func(*Limits)
		want   string
	}{
		{func(l *Limits) { l.Tables = 0 }, "Tables"},
		{func(l *Limits) { l.TableElements = 1 }, "TableElements"},
		{func(l *Limits) { l.Locals = 0 }, "Locals"},
		{func(l *Limits) { l.MemoryPages = 0 }, "MemoryPages"},
		{func(l *Limits) { l.Functions = 0 }, "Functions"},
	} {
		l := generous
		c.limits(&l)
		var e *Error
		if err := Check(wasm, l); !errors.As(err, &e) || e.Limit != c.want {
			t.Errorf("limit %s: %v", c.want, err)
		}
	}
}

// TestCheckEntries: the entries of the element, data, export and name
// sections are walked: a well-formed module passes, every prefix of it is
// refused with an *Error and no panic, and counts inside entries that the
// bytes cannot hold, or more element entries than TableElements, are
// refused.
func TestCheckEntries(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x07\x01\x60\x02\x7f\x63\x70\x00" + // type 0: (i32, (ref null func)) -> ()
		"\x03\x02\x01\x00" + // one function of type 0
		"\x05\x03\x01\x00\x01" + // a memory of 1 page
		"\x07\x05\x01\x01f\x00\x00" + // export "f": function 0
		"\x09\x12\x03" + // three element segments:
		"\x00\x41\x00\x0b\x01\x00" + // active, function indexes [0]
		"\x01\x00\x02\x00\x00" + // passive, function indexes [0 0]
		"\x05\x70\x01\xd0\x70\x0b" + // passive, expressions [ref.null func]
		"\x0a\x04\x01\x02\x00\x0b" + // body: end
		"\x0b\x0b\x02\x00\x41\x00\x0b\x02hi\x01\x01!" + // data: active "hi", passive "!"
		"\x00\x16\x04name" + // the name section:
		"\x00\x02\x01m" + // module "m"
		"\x01\x04\x01\x00\x01f" + // function 0 "f"
		"\x02\x05\x01\x00\x01\x00\x00") // function 0: local 0 ""
	if err := Check(wasm, generous); err != nil {
		t.Fatalf("the whole module: %v", err)
	}
	for n := range len(wasm) {
		err := Check(wasm[:n], generous)
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Errorf("prefix of %d bytes: %T %v, want an *Error", n, err, err)
		}
	}
	l := generous
	l.TableElements = 3
	var e *Error
	if err := Check(wasm, l); !errors.As(err, &e) || e.Limit != "TableElements" {
		t.Errorf("4 element entries under TableElements 3: %v", err)
	}
	for _, c := range wasmtest.HugeCounts() {
		if err := Check(c.Wasm, generous); !errors.As(err, &e) || e.Limit != "" {
			t.Errorf("%s: %v, want a malformed module", c.Name, err)
		}
		for n := range len(c.Wasm) {
			if err := Check(c.Wasm[:n], generous); err != nil && !errors.As(err, &e) {
				t.Errorf("%s, prefix of %d bytes: %T %v", c.Name, n, err, err)
			}
		}
	}
}
