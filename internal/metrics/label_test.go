package metrics

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLabelValue(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	for _, w := range []struct{ in, want string }{
		{"asked to drop", "asked to drop"},
		{"bad\xffbyte", "bad\uFFFDbyte"},
		{long, strings.Repeat("é", 64)},
		{"", ""},
	} {
		if got := labelValue(w.in); got != w.want {
			t.Errorf("labelValue(%q) = %q, want %q", w.in, got, w.want)
		}
	}
}

// FuzzLabelValue: any string a function may choose as a drop reason
// becomes a label value Prometheus accepts.
func FuzzLabelValue(f *testing.F) {
	for _, s := range []string{"", "asked to drop", "\xff\xfe", strings.Repeat("日本", 50), strings.Repeat("a", 127) + "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := labelValue(s)
		if !utf8.ValidString(v) {
			t.Fatalf("labelValue(%q) = %q: not UTF-8", s, v)
		}
		if len(v) > maxLabelLen {
			t.Fatalf("labelValue(%q) is %d bytes", s, len(v))
		}
		if utf8.ValidString(s) && !strings.HasPrefix(s, v) {
			t.Fatalf("labelValue(%q) = %q: not a prefix of valid input", s, v)
		}
		if utf8.ValidString(s) && len(s) <= maxLabelLen && v != s {
			t.Fatalf("labelValue(%q) = %q: changed a valid short value", s, v)
		}
	})
}

func TestReasonSetFold(t *testing.T) {
	r := newReasonSet(2)
	got := r.fold(map[string]uint64{"c": 1, "a": 2, "b": 3, "": 4})
	// Admitted in sorted order: "" (as "(none)") and "a"; b and c summed.
	want := map[string]uint64{"(none)": 4, "a": 2, OtherReason: 4}
	if len(got) != len(want) {
		t.Fatalf("fold = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("fold[%q] = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	// Admission is for good: a later fold keeps the same series.
	got = r.fold(map[string]uint64{"a": 5, "b": 6, "z": 1})
	if got["a"] != 5 || got[OtherReason] != 7 || len(got) != 2 {
		t.Errorf("second fold = %v", got)
	}
}
