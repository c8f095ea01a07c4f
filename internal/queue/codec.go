package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The stored encoding. Keys are a kind byte, then for items and dead
// letters the topic name's length (one byte) and the name, then the
// sequence number, 8 bytes big-endian, so that a topic's keys sort in
// append order:
//
//	'm' "format"                      the layout version
//	'i' len(topic) topic seq          an item
//	'd' len(topic) topic seq          a dead letter
//
// Values start with a version byte, then varints, then the data:
//
//	item v1: 0x01 attempts(uvarint) notBefore(varint, Unix ns; 0 = ready) data
//	dead v1: 0x01 attempts(uvarint) at(varint, Unix ns) len(reason)(uvarint) reason data
//
// A fresh item's header is the three bytes 01 00 00. Decoding checks
// every length against the bytes left, so damaged bytes give an error
// wrapping [ErrCorrupt], never a panic.
const (
	valueV1 = 1

	// freshHeaderLen is the header length of an item never retried.
	freshHeaderLen = 3

	kindMeta = 'm'
	kindItem = 'i'
	kindDead = 'd'
)

// keyFormat is the key of the layout version.
const keyFormat = string(kindMeta) + "format"

// ErrCorrupt is wrapped by errors about stored bytes that are not a
// value of a known encoding: the store was damaged, or written by a newer
// insertfn. Items whose header cannot be read are moved to their topic's
// dead letters with the raw bytes as data.
var ErrCorrupt = errors.New("queue: corrupt stored data")

// topicPrefix returns the prefix of the keys of kind in the named topic.
func topicPrefix(kind byte, name Topic) []byte {
	p := make([]byte, 0, 2+len(name)+8)
	p = append(p, kind, byte(len(name)))
	return append(p, name...)
}

// appendSeq appends seq to a key prefix.
func appendSeq(prefix []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(prefix, seq)
}

// keySeq returns the sequence number at the end of an item or
// dead-letter key.
func keySeq(k []byte) uint64 {
	return binary.BigEndian.Uint64(k[len(k)-8:])
}

// parseKey splits a stored item or dead-letter key into its kind, topic
// name and sequence number; ok is false for a key of neither shape.
func parseKey(k []byte) (kind byte, name []byte, seq uint64, ok bool) {
	if len(k) < 2+8 || (k[0] != kindItem && k[0] != kindDead) || int(k[1])+2+8 != len(k) {
		return 0, nil, 0, false
	}
	return k[0], k[2 : 2+int(k[1])], binary.BigEndian.Uint64(k[len(k)-8:]), true
}

// appendFresh appends the stored value of a new item.
func appendFresh(b, data []byte) []byte {
	b = append(b, valueV1, 0, 0)
	return append(b, data...)
}

// encodeItem returns the stored value of an item with a header.
func encodeItem(attempts int, notBefore int64, data []byte) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(data))
	b = append(b, valueV1)
	b = binary.AppendUvarint(b, uint64(attempts))
	b = binary.AppendVarint(b, notBefore)
	return append(b, data...)
}

// itemHeader is the decoded header of an item value.
type itemHeader struct {
	attempts  int
	notBefore int64 // Unix ns; 0 when the item is ready
}

// decodeItem splits a stored item value into its header and data. data
// aliases v.
func decodeItem(v []byte) (h itemHeader, data []byte, err error) {
	d := decoder{b: v}
	d.version()
	h.attempts = d.count()
	h.notBefore = d.varint()
	if d.err != nil {
		return itemHeader{}, nil, d.err
	}
	return h, v[d.off:], nil
}

// encodeDead returns the stored value of a dead letter.
func encodeDead(attempts int, at int64, reason string, data []byte) []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(reason)+len(data))
	b = append(b, valueV1)
	b = binary.AppendUvarint(b, uint64(attempts))
	b = binary.AppendVarint(b, at)
	b = binary.AppendUvarint(b, uint64(len(reason)))
	b = append(b, reason...)
	return append(b, data...)
}

// deadValue is a decoded dead letter. reason and data alias the input.
type deadValue struct {
	attempts int
	at       int64
	reason   []byte
	data     []byte
}

// decodeDead decodes a stored dead letter.
func decodeDead(v []byte) (deadValue, error) {
	d := decoder{b: v}
	d.version()
	var dv deadValue
	dv.attempts = d.count()
	dv.at = d.varint()
	dv.reason = d.bytes()
	if d.err != nil {
		return deadValue{}, d.err
	}
	dv.data = v[d.off:]
	return dv, nil
}

// decoder reads the stored encoding; the first error sticks.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: byte %d: %s", ErrCorrupt, d.off, what)
	}
}

func (d *decoder) version() {
	switch {
	case len(d.b) == 0:
		d.fail("empty value")
	case d.b[0] != valueV1:
		d.fail(fmt.Sprintf("unknown value version %d (written by a newer insertfn?)", d.b[0]))
	default:
		d.off = 1
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("truncated or overlong uvarint")
		return 0
	}
	d.off += n
	return x
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("truncated or overlong varint")
		return 0
	}
	d.off += n
	return x
}

// count reads a uvarint that must fit an int32.
func (d *decoder) count() int {
	x := d.uvarint()
	if x > math.MaxInt32 {
		d.fail("count out of range")
		return 0
	}
	return int(x)
}

// bytes reads a length and that many bytes.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail(fmt.Sprintf("length %d beyond the %d bytes left", n, len(d.b)-d.off))
		return nil
	}
	b := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return b
}
