package queue

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode feeds arbitrary stored values to the decoders: they return
// a value or an error wrapping ErrCorrupt, never panic, and encoded
// values decode to what was encoded.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{1, 0, 0, 'x'}, 0, int64(0), "reason")
	f.Add([]byte{1, 5, 0x80}, 3, int64(-7), "")
	f.Add([]byte{2}, 1<<20, int64(1)<<62, "r")
	f.Fuzz(func(t *testing.T, raw []byte, attempts int, at int64, reason string) {
		if _, _, err := decodeItem(raw); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeItem: %v", err)
		}
		if _, err := decodeDead(raw); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeDead: %v", err)
		}
		attempts &= 0x7fffffff
		h, data, err := decodeItem(encodeItem(attempts, at, raw))
		if err != nil || h.attempts != attempts || h.notBefore != at || !bytes.Equal(data, raw) {
			t.Fatalf("item round trip: %+v %q %v", h, data, err)
		}
		dv, err := decodeDead(encodeDead(attempts, at, reason, raw))
		if err != nil || dv.attempts != attempts || dv.at != at || string(dv.reason) != reason || !bytes.Equal(dv.data, raw) {
			t.Fatalf("dead round trip: %+v %v", dv, err)
		}
		if h, data, err := decodeItem(appendFresh(nil, raw)); err != nil || h != (itemHeader{}) || !bytes.Equal(data, raw) {
			t.Fatalf("fresh round trip: %+v %q %v", h, data, err)
		}
	})
}
