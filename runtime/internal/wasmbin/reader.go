// Package wasmbin reads the WebAssembly binary format for the runtime's
// checks of a module before it is compiled (wasmlimits) and its
// instrumentation (loopcheck): one reader of bytes, LEB128 numbers, names
// and limits that never reads past its end.
package wasmbin

import (
	"errors"
	"fmt"
)

// ErrShort is the error of a read past the end of what the Reader holds.
var ErrShort = errors.New("unexpected end")

// Reader decodes the binary format from B, at Pos. Every method fails
// rather than read past the end of B.
type Reader struct {
	B   []byte
	Pos int
}

// Done reports whether everything has been read.
func (r *Reader) Done() bool { return r.Pos >= len(r.B) }

// Byte reads one byte.
func (r *Reader) Byte() (byte, error) {
	if r.Pos >= len(r.B) {
		return 0, ErrShort
	}
	c := r.B[r.Pos]
	r.Pos++
	return c, nil
}

// Bytes reads n bytes, as a view of B.
func (r *Reader) Bytes(n int) ([]byte, error) {
	if n < 0 || n > len(r.B)-r.Pos {
		return nil, ErrShort
	}
	s := r.B[r.Pos : r.Pos+n]
	r.Pos += n
	return s, nil
}

// LEB reads an LEB128 number of at most maxBytes bytes and returns its low
// 64 bits, read as unsigned (a signed number is skipped the same way).
func (r *Reader) LEB(maxBytes int) (uint64, error) {
	var v uint64
	for i := range maxBytes {
		c, err := r.Byte()
		if err != nil {
			return 0, err
		}
		if i < 10 {
			v |= uint64(c&0x7F) << (7 * i)
		}
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("LEB128 number too long")
}

// U32 reads an unsigned 32-bit LEB128 number.
func (r *Reader) U32() (uint32, error) {
	v, err := r.LEB(5)
	if err != nil {
		return 0, err
	}
	if v > 1<<32-1 {
		return 0, errors.New("u32 out of range")
	}
	return uint32(v), nil
}

// Name reads a name: its length, then its bytes (a view of B).
func (r *Reader) Name() ([]byte, error) {
	n, err := r.U32()
	if err != nil {
		return nil, err
	}
	return r.Bytes(int(n))
}

// Limits reads a limits type: flags, the minimum and, when flagged, the
// maximum (64-bit numbers for memory64 and table64; max is 0 without one).
func (r *Reader) Limits() (min, max uint64, err error) {
	flags, err := r.Byte()
	if err != nil {
		return 0, 0, err
	}
	if flags > 0x07 {
		return 0, 0, fmt.Errorf("unknown limits flags 0x%02x", flags)
	}
	width := 5
	if flags&0x04 != 0 {
		width = 10
	}
	if min, err = r.LEB(width); err != nil {
		return 0, 0, err
	}
	if flags&0x01 != 0 {
		if max, err = r.LEB(width); err != nil {
			return 0, 0, err
		}
	}
	return min, max, nil
}
