package wasmbin

import (
	"errors"
	"testing"
)

func TestReader(t *testing.T) {
	r := Reader{B: []byte{0xE5, 0x8E, 0x26, 0x03, 'a', 'b', 'c', 0x05, 0x01, 0x02, 0x10}}
	if v, err := r.U32(); err != nil || v != 624485 {
		t.Fatalf("U32 = %d, %v; want 624485", v, err)
	}
	if n, err := r.Name(); err != nil || string(n) != "abc" {
		t.Fatalf("Name = %q, %v", n, err)
	}
	if min, max, err := r.Limits(); err != nil || min != 1 || max != 2 { // flags 0x05: 64-bit, with a maximum
		t.Fatalf("Limits = %d, %d, %v; want 1, 2", min, max, err)
	}
	r = Reader{B: []byte{0x08, 0x01}}
	if _, _, err := r.Limits(); err == nil {
		t.Fatal("Limits took the unknown flags 0x08")
	}
	r = Reader{B: []byte{0x01, 0x02, 0x10}}
	if min, max, err := r.Limits(); err != nil || min != 2 || max != 16 || !r.Done() {
		t.Fatalf("Limits = %d, %d, %v", min, max, err)
	}
	r = Reader{B: []byte{0x80, 0x80}}
	if _, err := r.U32(); !errors.Is(err, ErrShort) {
		t.Fatalf("a cut LEB128 number: %v, want ErrShort", err)
	}
	r = Reader{B: []byte{0xFF, 0xFF, 0xFF, 0xFF, 0x7F}}
	if _, err := r.U32(); err == nil {
		t.Fatal("a number over 32 bits read as a u32")
	}
	r = Reader{B: []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01}}
	if _, err := r.U32(); err == nil {
		t.Fatal("a six-byte LEB128 number read as a u32")
	}
	r = Reader{B: []byte{1, 2}}
	if _, err := r.Bytes(3); !errors.Is(err, ErrShort) {
		t.Fatalf("Bytes past the end: %v", err)
	}
	if _, err := r.Bytes(-1); !errors.Is(err, ErrShort) {
		t.Fatalf("Bytes(-1): %v", err)
	}
}
