package consent

import (
	"errors"
	"math/big"
	"regexp"
	"strconv"
	"testing"
)

func TestNumberID(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{"123", "123"},
		{"123.0", "123"},
		{"1.23e2", "123"},
		{"123e0", "123"},
		{"1230E-1", "123"},
		{"-5", "-5"},
		{"-0", "0"},
		{"0", "0"},
		{"0.0e10", "0"},
		{"1.5", "1.5"},
		{"0.000001", "0.000001"},
		{"0.0000001", "1e-7"},
		{"1e21", "1e+21"},
		{"1e20", "100000000000000000000"},
		{"123456789012345", "123456789012345"},
		{"1234567890123456", "1234567890123456"},
		{"9007199254740993e0", ""}, // 2^53+1 is not a double
		{"9007199254740992", "9007199254740992"},
		{"12345678901234567891", ""},
		{"0.1", "0.1"},
		{"0.10000000000000000001", ""},
		{"1e400", ""},
		{"1e-400", ""},
		{"1e-99999999", ""},
		{"-1.25e-10", "-1.25e-10"},
	} {
		got, err := NumberID(c.raw)
		if c.want == "" {
			if !errors.Is(err, ErrInexactID) {
				t.Errorf("NumberID(%s) = %q, %v; want ErrInexactID", c.raw, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("NumberID(%s) = %q, %v; want %q", c.raw, got, err, c.want)
		}
	}
}

func TestAppendNumberIDLeavesDstOnError(t *testing.T) {
	dst := []byte("x")
	got, err := AppendNumberID(dst, "12345678901234567891")
	if err == nil || string(got) != "x" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestNumberIDAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		_, _ = AppendNumberID(buf[:0], "4711")
		_, _ = NumberID("4711")
	}); n != 0 {
		t.Fatalf("%v allocations for a canonical integer id", n)
	}
}

// FuzzNumberID checks that an accepted id reads back as the same double
// and is its own canonical form.
func FuzzNumberID(f *testing.F) {
	for _, s := range []string{"1", "1.5e3", "-0.0", "1e21", "123.000", "5e-7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) > 400 {
			return
		}
		id, err := NumberID(raw)
		if err != nil {
			return
		}
		a, err1 := strconv.ParseFloat(raw, 64)
		b, err2 := strconv.ParseFloat(id, 64)
		if err1 != nil || err2 != nil || a != b {
			t.Fatalf("NumberID(%q) = %q: reads back as %v, not %v", raw, id, b, a)
		}
		if again, err := NumberID(id); err != nil || again != id {
			t.Fatalf("NumberID(%q) = %q, %v; not a fixed point", id, again, err)
		}
	})
}

// FuzzSameDecimal checks the digit comparison against math/big's.
func FuzzSameDecimal(f *testing.F) {
	f.Add("120.50", "1205e-1")
	f.Add("0.0012", "12E-4")
	f.Add("-0", "0.000")
	f.Fuzz(func(t *testing.T, a, b string) {
		if len(a) > 60 || len(b) > 60 || !jsonNumber(a) || !jsonNumber(b) {
			return
		}
		x, _ := new(big.Rat).SetString(a)
		y, _ := new(big.Rat).SetString(b)
		if want := x.Cmp(y) == 0; sameDecimal(a, b) != want {
			t.Fatalf("sameDecimal(%s, %s) = %v, want %v", a, b, !want, want)
		}
	})
}

// jsonNumber reports whether s is a JSON number with a short exponent.
func jsonNumber(s string) bool {
	return regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]{1,3})?$`).MatchString(s)
}
