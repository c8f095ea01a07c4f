package boltstore

import (
	"errors"
	"reflect"
	"testing"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

func sampleRecord() *consent.Record {
	r := &consent.Record{
		ID:      "u1",
		Aliases: []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895", "anon-\x00-ü"},
		Categories: []consent.Category{
			{Name: "Advertising", Consented: true, Timestamp: 1700000000000},
			{Name: "Analytics", Consented: false, Timestamp: -5},
			{Name: "C0004", Consented: true, Timestamp: 0},
		},
		Purposes: []consent.Purpose{
			{Regulation: "ccpa", Name: "data_sale_opt_out", Consented: true, Timestamp: 1579198790480},
			{Regulation: "gdpr", Name: "location_collection", Consented: true, Timestamp: 1523039002083,
				Document: "location_collection_agreement.v43", Location: "example.com/signup", HardwareID: "IDFA:a5d9"},
		},
		UpdatedAt: 1700000000000,
	}
	r.Normalize()
	return r
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []*consent.Record{sampleRecord(), {ID: "only-id"}, {ID: "x", UpdatedAt: -1 << 63}} {
		got, err := decodeRecord(encodeRecord(r))
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip\n got %+v\nwant %+v", got, r)
		}
	}
}

func TestPointRoundTrip(t *testing.T) {
	for _, p := range []consentstore.Point{
		{Kind: consentstore.KindCategory, Name: "Advertising", Consented: true, Timestamp: 100, Source: "segment:m1", RecordedAt: 200},
		{Kind: consentstore.KindPurpose, Regulation: "gdpr", Name: "p", Timestamp: 1, Document: "d", Location: "l", HardwareID: "h", Source: "admin", RecordedAt: 2},
	} {
		got, err := decodePoint(encodePoint(&p))
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", p, err)
		}
		if got != p {
			t.Errorf("round trip\n got %+v\nwant %+v", got, p)
		}
	}
}

// TestDecodeCorrupt: every truncation and every single-byte change of a
// valid encoding decodes to an error or to a record, never a panic; the
// truncations and a few known-bad inputs are errors wrapping ErrCorrupt.
func TestDecodeCorrupt(t *testing.T) {
	rec := encodeRecord(sampleRecord())
	pt := encodePoint(&consentstore.Point{Kind: consentstore.KindPurpose, Regulation: "gdpr", Name: "p", Consented: true, Timestamp: 9, Source: "s", RecordedAt: 1})
	for n := range len(rec) {
		if _, err := decodeRecord(rec[:n]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("record truncated to %d of %d bytes: %v, want ErrCorrupt", n, len(rec), err)
		}
	}
	for n := range len(pt) {
		if _, err := decodePoint(pt[:n]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("point truncated to %d of %d bytes: %v, want ErrCorrupt", n, len(pt), err)
		}
	}
	for i := range rec {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			b := append([]byte(nil), rec...)
			b[i] ^= x
			decodeRecord(b) // must not panic
		}
	}
	for name, b := range map[string][]byte{
		"trailing bytes":      append(append([]byte(nil), rec...), 0),
		"version 2":           append([]byte{2}, rec[1:]...),
		"huge alias count":    {recordV1, 1, 'u', 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"huge string":         {recordV1, 0xff, 0xff, 0xff, 0xff, 0x0f, 'u'},
		"overlong varint":     {recordV1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
		"unsorted categories": encodeRecord(&consent.Record{ID: "u", Categories: []consent.Category{{Name: "b"}, {Name: "a"}}}),
		"duplicate purposes":  encodeRecord(&consent.Record{ID: "u", Purposes: []consent.Purpose{{Regulation: "g", Name: "p"}, {Regulation: "g", Name: "p"}}}),
		"unknown flags":       {recordV1, 1, 'u', 0, 0, 1, 1, 'A', 0x02, 0, 0},
	} {
		if r, err := decodeRecord(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: decode = %+v, %v; want ErrCorrupt", name, r, err)
		}
	}
	if _, err := decodePoint([]byte{pointV1, 7}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("point of unknown kind: %v, want ErrCorrupt", err)
	}
}

func TestDecodeAllocations(t *testing.T) {
	b := encodeRecord(sampleRecord())
	n := testing.AllocsPerRun(100, func() {
		if _, err := decodeRecord(b); err != nil {
			t.Fatal(err)
		}
	})
	// The record, one string for all fields, three slices.
	if n > 5 {
		t.Errorf("decodeRecord: %.0f allocations, want at most 5", n)
	}
}

// FuzzDecode: arbitrary bytes decode to an error or to a record that
// encodes back to the same bytes; never a panic.
func FuzzDecode(f *testing.F) {
	f.Add(encodeRecord(sampleRecord()))
	f.Add(encodeRecord(&consent.Record{ID: "a"}))
	f.Add(encodePoint(&consentstore.Point{Kind: consentstore.KindCategory, Name: "A", Timestamp: 1}))
	f.Add([]byte{})
	f.Add([]byte{recordV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRecord(b); err == nil {
			if got := encodeRecord(r); string(got) != string(b) {
				// Varints have one canonical form when written; a decoded
				// record re-encodes to the same bytes unless b used an
				// overlong form. Decoding again must agree.
				r2, err := decodeRecord(got)
				if err != nil || !reflect.DeepEqual(r, r2) {
					t.Fatalf("re-encoding %x gives %x: %+v, %v", b, got, r2, err)
				}
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeRecord(%x): %v, want an ErrCorrupt", b, err)
		}
		if p, err := decodePoint(b); err == nil {
			if p2, err := decodePoint(encodePoint(&p)); err != nil || p2 != p {
				t.Fatalf("point %+v re-decodes to %+v, %v", p, p2, err)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodePoint(%x): %v, want an ErrCorrupt", b, err)
		}
	})
}
