package wasmlimits

import (
	"errors"
	"testing"
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
