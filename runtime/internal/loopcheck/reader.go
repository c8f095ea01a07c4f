package loopcheck

import (
	"errors"
	"fmt"

	"github.com/insertfn/insertfn/runtime/internal/wasmbin"
)

// reader is the binary format's reader with what loopcheck also reads:
// value and block types, instructions' immediates.
type reader struct{ wasmbin.Reader }

// valueType skips a value type.
func (r *reader) valueType() error {
	c, err := r.Byte()
	if err != nil {
		return err
	}
	switch c {
	case 0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F, 0x69: // i32 i64 f32 f64 v128 funcref externref exnref
		return nil
	}
	return fmt.Errorf("unknown value type 0x%02x", c)
}

// blockType skips a block type: empty, a value type, or a type index (s33).
func (r *reader) blockType() error {
	if r.Pos >= len(r.B) {
		return wasmbin.ErrShort
	}
	switch r.B[r.Pos] {
	case 0x40:
		r.Pos++
		return nil
	case 0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F, 0x69:
		return r.valueType()
	}
	_, err := r.LEB(5)
	return err
}

// memarg skips a memory argument: alignment (with the multi-memory bit, a
// memory index follows) and offset.
func (r *reader) memarg() error {
	align, err := r.U32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 {
		if _, err := r.U32(); err != nil {
			return err
		}
	}
	_, err = r.LEB(10)
	return err
}

// immediates skips the immediates of the instruction whose opcode was just
// read.
func (r *reader) immediates(op byte) error {
	var err error
	switch {
	case op == 0x00, op == 0x01, op == 0x05, op == 0x0A, op == 0x0B, op == 0x0F, op == 0x19,
		op == 0x1A, op == 0x1B, op == 0xD1, op == 0xD3, op == 0xD4:
		// unreachable nop else throw_ref end return catch_all drop select
		// ref.is_null ref.eq ref.as_non_null
	case op >= 0x02 && op <= 0x04, op == 0x06: // block loop if try
		err = r.blockType()
	case op == 0x07, op == 0x08, op == 0x09, op == 0x0C, op == 0x0D, op == 0x18, op == 0xD5, op == 0xD6:
		// catch throw rethrow br br_if delegate br_on_null br_on_non_null
		_, err = r.U32()
	case op == 0x0E: // br_table
		var n uint32
		if n, err = r.U32(); err == nil {
			for i := uint32(0); i <= n && err == nil; i++ {
				_, err = r.U32()
			}
		}
	case op == 0x10, op == 0x12, op == 0x14, op == 0x15, op == 0xD2:
		// call return_call call_ref return_call_ref ref.func
		_, err = r.U32()
	case op == 0x11, op == 0x13: // call_indirect return_call_indirect
		if _, err = r.U32(); err == nil {
			_, err = r.U32()
		}
	case op == 0x1C: // select with types
		var n uint32
		if n, err = r.U32(); err == nil {
			for i := uint32(0); i < n && err == nil; i++ {
				err = r.valueType()
			}
		}
	case op == 0x1F: // try_table
		err = r.tryTable()
	case op >= 0x20 && op <= 0x26: // local.* global.* table.get table.set
		_, err = r.U32()
	case op >= 0x28 && op <= 0x3E: // loads and stores
		err = r.memarg()
	case op == 0x3F, op == 0x40: // memory.size memory.grow
		_, err = r.U32()
	case op == 0x41:
		_, err = r.LEB(5)
	case op == 0x42:
		_, err = r.LEB(10)
	case op == 0x43:
		_, err = r.Bytes(4)
	case op == 0x44:
		_, err = r.Bytes(8)
	case op >= 0x45 && op <= 0xC4: // numeric, no immediates
	case op == 0xD0: // ref.null
		err = r.blockType() // a heap type: one byte or an s33, read the same way
	case op == 0xFC:
		err = r.prefixFC()
	case op == 0xFD:
		err = r.prefixFD()
	case op == 0xFE:
		err = r.prefixFE()
	default:
		return errors.New("unknown opcode")
	}
	return err
}

func (r *reader) tryTable() error {
	if err := r.blockType(); err != nil {
		return err
	}
	n, err := r.U32()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		kind, err := r.Byte()
		if err != nil {
			return err
		}
		switch kind {
		case 0x00, 0x01: // catch, catch_ref: tag and label
			if _, err := r.U32(); err != nil {
				return err
			}
		case 0x02, 0x03: // catch_all, catch_all_ref: label
		default:
			return fmt.Errorf("unknown catch kind 0x%02x", kind)
		}
		if _, err := r.U32(); err != nil {
			return err
		}
	}
	return nil
}

// prefixFC: saturating truncation, bulk memory, tables.
func (r *reader) prefixFC() error {
	sub, err := r.U32()
	if err != nil {
		return err
	}
	indices := 0
	switch {
	case sub <= 7: // trunc_sat
	case sub == 8, sub == 10, sub == 12, sub == 14: // memory.init memory.copy table.init table.copy
		indices = 2
	case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17: // data.drop memory.fill elem.drop table.grow/size/fill
		indices = 1
	default:
		return fmt.Errorf("unknown 0xFC instruction %d", sub)
	}
	for i := 0; i < indices; i++ {
		if _, err := r.U32(); err != nil {
			return err
		}
	}
	return nil
}

// prefixFD: SIMD (and relaxed SIMD, which has no immediates).
func (r *reader) prefixFD() error {
	sub, err := r.U32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 11, sub == 92, sub == 93: // loads, stores, load_zero
		return r.memarg()
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		_, err = r.Bytes(16)
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		_, err = r.Byte()
	case sub >= 84 && sub <= 91: // load_lane, store_lane
		if err = r.memarg(); err == nil {
			_, err = r.Byte()
		}
	case sub <= 0x113:
	default:
		return fmt.Errorf("unknown 0xFD instruction %d", sub)
	}
	return err
}

// prefixFE: threads (atomics).
func (r *reader) prefixFE() error {
	sub, err := r.U32()
	if err != nil {
		return err
	}
	switch {
	case sub == 0x03: // atomic.fence
		_, err = r.Byte()
		return err
	case sub <= 0x02, sub >= 0x10 && sub <= 0x4E:
		return r.memarg()
	}
	return fmt.Errorf("unknown 0xFE instruction %d", sub)
}
