package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

// The stored encoding of a record and of a history point: a version byte,
// then the fields in a fixed order, strings as a uvarint length and the
// bytes, timestamps as varints, booleans as a flags byte. It is several
// times faster to decode than the JSON wire format, which matters on the
// lookup path (see BenchmarkGet).
//
//	record v1: 0x01 id updatedAt
//	           nAliases {alias}
//	           nCategories {name flags timestamp}
//	           nPurposes {regulation name flags timestamp document location hardwareID}
//	point v1:  0x01 kind regulation name flags timestamp document location hardwareID source recordedAt
//
// Decoding checks every length against the bytes left, so corrupt bytes
// give an error wrapping [ErrCorrupt], never a panic or a huge allocation.
const (
	recordV1 = 1
	pointV1  = 1

	flagConsented = 1 << 0

	kindCategory = 0
	kindPurpose  = 1
)

// ErrCorrupt is wrapped by the errors of a lookup that found bytes in the
// database that are not a record or point of a known encoding: the file was
// damaged, or written by a newer insertfn. Restore it from a backup or an
// export.
var ErrCorrupt = errors.New("corrupt stored data")

// appendString appends s with its length.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func flags(consented bool) byte {
	if consented {
		return flagConsented
	}
	return 0
}

// encodeRecord returns r in the stored encoding. r must be normalized.
func encodeRecord(r *consent.Record) []byte {
	n := 1 + 10 + len(r.ID) + 3*binary.MaxVarintLen64
	for _, a := range r.Aliases {
		n += len(a) + 2
	}
	for _, c := range r.Categories {
		n += len(c.Name) + 2 + 1 + binary.MaxVarintLen64
	}
	for _, p := range r.Purposes {
		n += len(p.Regulation) + len(p.Name) + len(p.Document) + len(p.Location) + len(p.HardwareID) + 10 + 1 + binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = append(b, recordV1)
	b = appendString(b, r.ID)
	b = binary.AppendVarint(b, r.UpdatedAt)
	b = binary.AppendUvarint(b, uint64(len(r.Aliases)))
	for _, a := range r.Aliases {
		b = appendString(b, a)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Categories)))
	for _, c := range r.Categories {
		b = appendString(b, c.Name)
		b = append(b, flags(c.Consented))
		b = binary.AppendVarint(b, c.Timestamp)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Purposes)))
	for _, p := range r.Purposes {
		b = appendString(b, p.Regulation)
		b = appendString(b, p.Name)
		b = append(b, flags(p.Consented))
		b = binary.AppendVarint(b, p.Timestamp)
		b = appendString(b, p.Document)
		b = appendString(b, p.Location)
		b = appendString(b, p.HardwareID)
	}
	return b
}

// decoder reads the stored encoding. The strings it returns are substrings
// of s, one copy of the whole input, so a decoded record costs a handful of
// allocations whatever its size. The first error sticks.
type decoder struct {
	b   []byte
	s   string // string(b)
	off int
	err error
}

func newDecoder(b []byte) *decoder { return &decoder{b: b, s: string(b)} }

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: byte %d: %s", ErrCorrupt, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated")
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad length")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad number")
		return 0
	}
	d.off += n
	return v
}

// count reads the number of entries that follow, each at least min bytes
// long, and refuses counts the bytes left cannot hold.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64((len(d.b)-d.off)/min) {
		d.fail("%d entries cannot fit in %d bytes", n, len(d.b)-d.off)
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("string of %d bytes, %d left", n, len(d.b)-d.off)
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *decoder) consented() bool {
	f := d.byte()
	if f&^flagConsented != 0 {
		d.fail("unknown flags %#x", f)
	}
	return f&flagConsented != 0
}

func (d *decoder) end() {
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d bytes after the end", len(d.b)-d.off)
	}
}

// decodeRecord decodes a record from the stored encoding. It checks what
// the rest of the store relies on: entries sorted and unique, as
// [consent.Record.Normalize] leaves them.
func decodeRecord(b []byte) (*consent.Record, error) {
	if len(b) == 0 || b[0] != recordV1 {
		if len(b) == 0 {
			return nil, fmt.Errorf("%w: empty record", ErrCorrupt)
		}
		return nil, fmt.Errorf("%w: record encoding version %d, want %d (written by a newer insertfn?)", ErrCorrupt, b[0], recordV1)
	}
	d := newDecoder(b)
	d.off = 1
	r := &consent.Record{ID: d.string(), UpdatedAt: d.varint()}
	if n := d.count(1); n > 0 {
		r.Aliases = make([]string, n)
		for i := range r.Aliases {
			r.Aliases[i] = d.string()
			if d.err == nil && (r.Aliases[i] == "" || i > 0 && r.Aliases[i] <= r.Aliases[i-1]) {
				d.fail("aliases not sorted")
			}
		}
	}
	if n := d.count(3); n > 0 {
		r.Categories = make([]consent.Category, n)
		for i := range r.Categories {
			c := &r.Categories[i]
			c.Name = d.string()
			c.Consented = d.consented()
			c.Timestamp = d.varint()
			if d.err == nil && i > 0 && c.Name <= r.Categories[i-1].Name {
				d.fail("categories not sorted")
			}
		}
	}
	if n := d.count(7); n > 0 { // 7: the shortest purpose
		r.Purposes = make([]consent.Purpose, n)
		for i := range r.Purposes {
			p := &r.Purposes[i]
			p.Regulation = d.string()
			p.Name = d.string()
			p.Consented = d.consented()
			p.Timestamp = d.varint()
			p.Document = d.string()
			p.Location = d.string()
			p.HardwareID = d.string()
			if d.err == nil && i > 0 {
				q := &r.Purposes[i-1]
				if c := strings.Compare(p.Regulation, q.Regulation); c < 0 || c == 0 && p.Name <= q.Name {
					d.fail("purposes not sorted")
				}
			}
		}
	}
	d.end()
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

// encodePoint returns p in the stored encoding.
func encodePoint(p *consentstore.Point) []byte {
	b := make([]byte, 0, 2+len(p.Regulation)+len(p.Name)+len(p.Document)+len(p.Location)+len(p.HardwareID)+len(p.Source)+6*2+1+2*binary.MaxVarintLen64)
	b = append(b, pointV1)
	if p.Kind == consentstore.KindPurpose {
		b = append(b, kindPurpose)
	} else {
		b = append(b, kindCategory)
	}
	b = appendString(b, p.Regulation)
	b = appendString(b, p.Name)
	b = append(b, flags(p.Consented))
	b = binary.AppendVarint(b, p.Timestamp)
	b = appendString(b, p.Document)
	b = appendString(b, p.Location)
	b = appendString(b, p.HardwareID)
	b = appendString(b, p.Source)
	b = binary.AppendVarint(b, p.RecordedAt)
	return b
}

// decodePoint decodes a history point from the stored encoding.
func decodePoint(b []byte) (consentstore.Point, error) {
	if len(b) == 0 || b[0] != pointV1 {
		if len(b) == 0 {
			return consentstore.Point{}, fmt.Errorf("%w: empty history point", ErrCorrupt)
		}
		return consentstore.Point{}, fmt.Errorf("%w: history point encoding version %d, want %d (written by a newer insertfn?)", ErrCorrupt, b[0], pointV1)
	}
	d := newDecoder(b)
	d.off = 1
	var p consentstore.Point
	switch d.byte() {
	case kindCategory:
		p.Kind = consentstore.KindCategory
	case kindPurpose:
		p.Kind = consentstore.KindPurpose
	default:
		d.fail("unknown point kind")
	}
	p.Regulation = d.string()
	p.Name = d.string()
	p.Consented = d.consented()
	p.Timestamp = d.varint()
	p.Document = d.string()
	p.Location = d.string()
	p.HardwareID = d.string()
	p.Source = d.string()
	p.RecordedAt = d.varint()
	d.end()
	if d.err != nil {
		return consentstore.Point{}, d.err
	}
	return p, nil
}
