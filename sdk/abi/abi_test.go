package abi_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
)

// The numbers of the ABI are a contract with guests built in other languages
// (docs/abi.md restates them). Changing one breaks every such guest, so each
// is pinned here; a change must come with a new abi.Version.
func TestNumbersArePinned(t *testing.T) {
	if abi.Version != 1 {
		t.Errorf("Version = %d, want 1", abi.Version)
	}
	if abi.ModuleName != "insertfn" {
		t.Errorf("ModuleName = %q, want insertfn", abi.ModuleName)
	}
	if abi.MaxReasonLen != 1024 {
		t.Errorf("MaxReasonLen = %d, want 1024", abi.MaxReasonLen)
	}
	if abi.MaxNameLen != 65535 {
		t.Errorf("MaxNameLen = %d, want 65535", abi.MaxNameLen)
	}
	ints := []struct {
		name      string
		got, want int64
	}{
		{"EventOther", int64(abi.EventOther), 0},
		{"EventTrack", int64(abi.EventTrack), 1},
		{"EventIdentify", int64(abi.EventIdentify), 2},
		{"EventPage", int64(abi.EventPage), 3},
		{"EventScreen", int64(abi.EventScreen), 4},
		{"EventGroup", int64(abi.EventGroup), 5},
		{"EventAlias", int64(abi.EventAlias), 6},
		{"EventDelete", int64(abi.EventDelete), 7},

		{"ResultDeliver", int64(abi.ResultDeliver), 0},
		{"ResultDrop", int64(abi.ResultDrop), 1},
		{"ResultEventNotSupported", int64(abi.ResultEventNotSupported), 2},
		{"ResultInvalidEventPayload", int64(abi.ResultInvalidEventPayload), 3},
		{"ResultValidationError", int64(abi.ResultValidationError), 4},
		{"ResultRetry", int64(abi.ResultRetry), 5},
		{"ResultFunctionError", int64(abi.ResultFunctionError), 6},

		{"KindMissing", int64(abi.KindMissing), 0},
		{"KindNull", int64(abi.KindNull), 1},
		{"KindFalse", int64(abi.KindFalse), 2},
		{"KindTrue", int64(abi.KindTrue), 3},
		{"KindNumber", int64(abi.KindNumber), 4},
		{"KindString", int64(abi.KindString), 5},
		{"KindJSON", int64(abi.KindJSON), 6},

		{"StatusOK", int64(abi.StatusOK), 0},
		{"StatusInvalidJSON", int64(abi.StatusInvalidJSON), -1},
		{"StatusInvalidPath", int64(abi.StatusInvalidPath), -2},

		{"ConsentFound", int64(abi.ConsentFound), 0},
		{"ConsentSame", int64(abi.ConsentSame), 1},
		{"ConsentDiffers", int64(abi.ConsentDiffers), 2},
		{"ConsentNoRecord", int64(abi.ConsentNoRecord), 3},
		{"ConsentNoEventConsent", int64(abi.ConsentNoEventConsent), 4},
		{"ConsentNoID", int64(abi.ConsentNoID), 5},
		{"ConsentUnavailable", int64(abi.ConsentUnavailable), 6},

		{"LevelDebug", int64(abi.LevelDebug), 0},
		{"LevelInfo", int64(abi.LevelInfo), 1},
		{"LevelWarn", int64(abi.LevelWarn), 2},
		{"LevelError", int64(abi.LevelError), 3},

		{"FlagPurpose", int64(abi.FlagPurpose), 0x01},
		{"FlagInStored", int64(abi.FlagInStored), 0x02},
		{"FlagStoredConsented", int64(abi.FlagStoredConsented), 0x04},
		{"FlagInEvent", int64(abi.FlagInEvent), 0x08},
		{"FlagEventConsented", int64(abi.FlagEventConsented), 0x10},
	}
	for _, c := range ints {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestPackUnpack(t *testing.T) {
	cases := []struct {
		status, length uint32
		packed         uint64
	}{
		{0, 0, 0},
		{uint32(abi.KindString), 15, 0x0000_0005_0000_000F}, // the worked example of the package doc
		{uint32(abi.ConsentDiffers), 1 << 20, 0x0000_0002_0010_0000},
		{0, math.MaxUint32, 0x0000_0000_FFFF_FFFF},
		{math.MaxUint32, 0, 0xFFFF_FFFF_0000_0000},
		{math.MaxUint32, math.MaxUint32, math.MaxUint64},
	}
	for _, c := range cases {
		if got := abi.Pack(c.status, c.length); got != c.packed {
			t.Errorf("Pack(%d, %d) = %#x, want %#x", c.status, c.length, got, c.packed)
		}
		s, n := abi.Unpack(c.packed)
		if s != c.status || n != c.length {
			t.Errorf("Unpack(%#x) = %d, %d, want %d, %d", c.packed, s, n, c.status, c.length)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		s, n := r.Uint32(), r.Uint32()
		if gs, gn := abi.Unpack(abi.Pack(s, n)); gs != s || gn != n {
			t.Fatalf("Unpack(Pack(%d, %d)) = %d, %d", s, n, gs, gn)
		}
		v := r.Uint64()
		if got := abi.Pack(abi.Unpack(v)); got != v {
			t.Fatalf("Pack(Unpack(%#x)) = %#x", v, got)
		}
	}
}

// The worked examples of docs/abi.md, byte by byte.
func TestEntryEncodingWorkedExamples(t *testing.T) {
	// consent_compare: the event says Advertising false, the record stores
	// true since 1700000000000.
	cat := abi.AppendEntry(nil, abi.FlagInEvent|abi.FlagInStored|abi.FlagStoredConsented, "Advertising", "ignored for a category", 1700000000000)
	wantCat := []byte{
		0x0E,       // flags: InStored | StoredConsented | InEvent
		0x0B, 0x00, // len("Advertising") = 11, little-endian
		'A', 'd', 'v', 'e', 'r', 't', 'i', 's', 'i', 'n', 'g',
		0x00, 0x68, 0xE5, 0xCF, 0x8B, 0x01, 0x00, 0x00, // 1700000000000 = 0x0000018BCFE56800, little-endian
	}
	if !bytes.Equal(cat, wantCat) {
		t.Errorf("category entry = % X\nwant             % X", cat, wantCat)
	}
	if len(cat) != 22 || abi.Pack(uint32(abi.ConsentDiffers), uint32(len(cat))) != 0x0000_0002_0000_0016 {
		t.Errorf("consent_compare result for it = %#x", abi.Pack(uint32(abi.ConsentDiffers), uint32(len(cat))))
	}

	// consent_lookup: a stored GDPR purpose.
	pur := abi.AppendEntry(nil, abi.FlagPurpose|abi.FlagInStored|abi.FlagStoredConsented, "gdpr", "location_collection", 1523039002083)
	wantPur := []byte{0x07, 0x04, 0x00}
	wantPur = append(wantPur, "gdpr"...)
	wantPur = append(wantPur, 0x13, 0x00)
	wantPur = append(wantPur, "location_collection"...)
	wantPur = append(wantPur, 0xE3, 0xDD, 0x32, 0x9C, 0x62, 0x01, 0x00, 0x00)
	if !bytes.Equal(pur, wantPur) || len(pur) != 36 {
		t.Errorf("purpose entry = % X\nwant            % X", pur, wantPur)
	}

	// event_get of the string "Order Completed" (the package doc's example).
	if got := abi.Pack(uint32(abi.KindString), uint32(len("Order Completed"))); got != 0x0000_0005_0000_000F {
		t.Errorf("event_get result = %#x", got)
	}
}

type entry struct {
	flags         uint8
	name, purpose string
	ts            int64
}

func TestAppendDecodeRoundTrip(t *testing.T) {
	long := strings.Repeat("x", abi.MaxNameLen)
	cases := []entry{
		{abi.FlagInStored | abi.FlagStoredConsented, "Advertising", "", 1700000000000},
		{abi.FlagInEvent | abi.FlagEventConsented, "C0004", "", 0},
		{abi.FlagInStored, "", "", 0}, // empty category name
		{abi.FlagPurpose | abi.FlagInStored | abi.FlagStoredConsented, "gdpr", "location_collection", 1523039002083},
		{abi.FlagPurpose | abi.FlagInEvent, "ccpa", "data_sale_opt_out", -1},
		{abi.FlagPurpose, "", "", math.MinInt64}, // empty regulation and purpose
		{abi.FlagPurpose, "gdpr", "", math.MaxInt64},
		{abi.FlagPurpose, "", "p", 1},
		{0xFF, "every flag", "and a purpose", 42},
		{0, long, "", 7}, // exactly MaxNameLen: kept whole
		{abi.FlagPurpose, long, long, 7},
		{abi.FlagInStored, "naïve ✓ \x00 bytes", "", 3},
	}
	var all []byte
	for _, c := range cases {
		b := abi.AppendEntry(nil, c.flags, c.name, c.purpose, c.ts)
		want := 1 + 2 + len(c.name) + 8
		if c.flags&abi.FlagPurpose != 0 {
			want += 2 + len(c.purpose)
		}
		if len(b) != want {
			t.Errorf("%+v: encoded length %d, want %d", c, len(b), want)
		}
		var e abi.Entry
		rest, ok := abi.DecodeEntry(b, &e)
		if !ok || len(rest) != 0 {
			t.Fatalf("%+v: DecodeEntry ok=%v rest=%d bytes", c, ok, len(rest))
		}
		checkEntry(t, &e, c)
		all = append(all, b...)
	}

	// AppendEntry appends: the concatenation decodes back entry by entry.
	prefix := []byte("prefix")
	buf := append([]byte(nil), prefix...)
	for _, c := range cases {
		buf = abi.AppendEntry(buf, c.flags, c.name, c.purpose, c.ts)
	}
	if !bytes.HasPrefix(buf, prefix) || !bytes.Equal(buf[len(prefix):], all) {
		t.Fatal("AppendEntry did not append to dst")
	}
	b := all
	var e abi.Entry
	for i, c := range cases {
		var ok bool
		if b, ok = abi.DecodeEntry(b, &e); !ok {
			t.Fatalf("entry %d: DecodeEntry failed", i)
		}
		checkEntry(t, &e, c)
	}
	if len(b) != 0 {
		t.Errorf("%d bytes left after the last entry", len(b))
	}
}

func checkEntry(t *testing.T, e *abi.Entry, want entry) {
	t.Helper()
	purpose := want.purpose
	if want.flags&abi.FlagPurpose == 0 {
		purpose = "" // a category carries no purpose
	}
	if e.Flags != want.flags || string(e.Name) != want.name || string(e.Purpose) != purpose || e.Timestamp != want.ts {
		t.Errorf("decoded {%#x %.20q %.20q %d}, want {%#x %.20q %.20q %d}",
			e.Flags, e.Name, e.Purpose, e.Timestamp, want.flags, want.name, purpose, want.ts)
	}
	if e.IsPurpose() != (want.flags&abi.FlagPurpose != 0) ||
		e.InStored() != (want.flags&abi.FlagInStored != 0) ||
		e.StoredConsented() != (want.flags&abi.FlagStoredConsented != 0) ||
		e.InEvent() != (want.flags&abi.FlagInEvent != 0) ||
		e.EventConsented() != (want.flags&abi.FlagEventConsented != 0) {
		t.Errorf("flag accessors disagree with flags %#x", e.Flags)
	}
}

func TestAppendEntryCutsLongNames(t *testing.T) {
	name := strings.Repeat("n", abi.MaxNameLen) + "TAIL"
	purpose := strings.Repeat("p", abi.MaxNameLen+100)

	b := abi.AppendEntry(nil, abi.FlagPurpose, name, purpose, 99)
	if want := 1 + 2 + abi.MaxNameLen + 2 + abi.MaxNameLen + 8; len(b) != want {
		t.Fatalf("encoded length %d, want %d", len(b), want)
	}
	if b[1] != 0xFF || b[2] != 0xFF {
		t.Errorf("name length field = %#x %#x, want ff ff", b[1], b[2])
	}
	var e abi.Entry
	rest, ok := abi.DecodeEntry(b, &e)
	if !ok || len(rest) != 0 {
		t.Fatalf("DecodeEntry ok=%v rest=%d", ok, len(rest))
	}
	if string(e.Name) != name[:abi.MaxNameLen] || string(e.Purpose) != purpose[:abi.MaxNameLen] || e.Timestamp != 99 {
		t.Errorf("decoded name %d bytes, purpose %d bytes, ts %d", len(e.Name), len(e.Purpose), e.Timestamp)
	}

	// One byte over: cut by one byte.
	over := strings.Repeat("o", abi.MaxNameLen+1)
	b = abi.AppendEntry(nil, abi.FlagPurpose, over, over, 6)
	if _, ok := abi.DecodeEntry(b, &e); !ok || string(e.Name) != over[:abi.MaxNameLen] || string(e.Purpose) != over[:abi.MaxNameLen] || e.Timestamp != 6 {
		t.Errorf("MaxNameLen+1: ok=%v name %d bytes purpose %d bytes ts %d", ok, len(e.Name), len(e.Purpose), e.Timestamp)
	}

	// A category cut the same way.
	b = abi.AppendEntry(nil, 0, name, "", 5)
	if _, ok := abi.DecodeEntry(b, &e); !ok || string(e.Name) != name[:abi.MaxNameLen] || e.Timestamp != 5 {
		t.Errorf("category: ok=%v name %d bytes ts %d", ok, len(e.Name), e.Timestamp)
	}
}

func TestDecodeEntryTruncated(t *testing.T) {
	for _, full := range [][]byte{
		abi.AppendEntry(nil, abi.FlagInStored, "Advertising", "", 1),
		abi.AppendEntry(nil, abi.FlagPurpose|abi.FlagInEvent, "gdpr", "location_collection", 2),
		abi.AppendEntry(nil, 0, "", "", 0),
		abi.AppendEntry(nil, abi.FlagPurpose, "", "", 0),
	} {
		for n := 0; n < len(full); n++ {
			var e abi.Entry
			if _, ok := abi.DecodeEntry(full[:n:n], &e); ok {
				t.Errorf("DecodeEntry of %d of %d bytes (% X) succeeded", n, len(full), full[:n])
			}
		}
		var e abi.Entry
		if _, ok := abi.DecodeEntry(full, &e); !ok {
			t.Errorf("DecodeEntry of the whole entry % X failed", full)
		}
	}
}

func TestDecodeEntryMalformed(t *testing.T) {
	cases := map[string][]byte{
		"empty":                        nil,
		"flags only":                   {0x02},
		"one length byte":              {0x02, 0x05},
		"name longer than the input":   {0x02, 0x05, 0x00, 'a', 'b'},
		"name length 0xffff":           append([]byte{0x02, 0xFF, 0xFF}, make([]byte, 100)...),
		"no timestamp":                 {0x02, 0x01, 0x00, 'a'},
		"short timestamp":              {0x02, 0x01, 0x00, 'a', 1, 2, 3, 4, 5, 6, 7},
		"purpose flag, no purpose":     {0x01, 0x01, 0x00, 'a', 1, 2, 3, 4, 5, 6, 7, 8}, // the timestamp is read as the purpose's length
		"purpose longer than input":    {0x01, 0x00, 0x00, 0x09, 0x00, 'p'},
		"purpose ok, short timestamp":  {0x01, 0x00, 0x00, 0x01, 0x00, 'p', 0, 0},
		"category ok, short timestamp": {0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0},
	}
	for name, b := range cases {
		var e abi.Entry
		if _, ok := abi.DecodeEntry(b, &e); ok {
			t.Errorf("%s: DecodeEntry(% X) succeeded: %+v", name, b, e)
		}
	}
}

func TestDecodeEntryViews(t *testing.T) {
	b := abi.AppendEntry(nil, abi.FlagPurpose, "gdpr", "ads", 1)
	b = abi.AppendEntry(b, abi.FlagInStored, "Analytics", "", 2)
	orig := append([]byte(nil), b...)

	var e abi.Entry
	rest, ok := abi.DecodeEntry(b, &e)
	if !ok || string(e.Purpose) != "ads" {
		t.Fatalf("first entry: ok=%v %+v", ok, e)
	}
	// Names are views whose capacity ends with them: appending to one must
	// not write over the bytes that follow in the buffer.
	_ = append(e.Name, "XXXXXXXX"...)
	_ = append(e.Purpose, "XXXXXXXX"...)
	if !bytes.Equal(b, orig) {
		t.Fatal("appending to a decoded name wrote into the buffer")
	}
	// Decoding a category into the same Entry clears the previous purpose.
	if _, ok := abi.DecodeEntry(rest, &e); !ok {
		t.Fatal("second entry failed")
	}
	if e.Purpose != nil || string(e.Name) != "Analytics" || e.Timestamp != 2 {
		t.Errorf("second entry = %+v, want a category without a purpose", e)
	}
}

func TestEventTypes(t *testing.T) {
	names := map[abi.EventType]string{
		abi.EventTrack: "track", abi.EventIdentify: "identify", abi.EventPage: "page",
		abi.EventScreen: "screen", abi.EventGroup: "group", abi.EventAlias: "alias", abi.EventDelete: "delete",
	}
	for typ, name := range names {
		if got := typ.String(); got != name {
			t.Errorf("%d.String() = %q, want %q", typ, got, name)
		}
		if got := abi.ParseEventType(name); got != typ {
			t.Errorf("ParseEventType(%q) = %d, want %d", name, got, typ)
		}
	}
	for _, s := range []string{"", "Track", "TRACK", "batch", "tracks", " track", "other"} {
		if got := abi.ParseEventType(s); got != abi.EventOther {
			t.Errorf("ParseEventType(%q) = %d, want EventOther", s, got)
		}
	}
	for _, typ := range []abi.EventType{abi.EventOther, -1, 8, 1000, math.MinInt32, math.MaxInt32} {
		if got := typ.String(); got != "" {
			t.Errorf("EventType(%d).String() = %q, want \"\"", typ, got)
		}
	}
}

func TestResultNames(t *testing.T) {
	want := map[abi.Result]string{
		abi.ResultDeliver:             "Deliver",
		abi.ResultDrop:                "DropEvent",
		abi.ResultEventNotSupported:   "EventNotSupported",
		abi.ResultInvalidEventPayload: "InvalidEventPayload",
		abi.ResultValidationError:     "ValidationError",
		abi.ResultRetry:               "RetryError",
		abi.ResultFunctionError:       "FunctionError",
	}
	for r, name := range want {
		if got := r.String(); got != name {
			t.Errorf("Result(%d).String() = %q, want %q", r, got, name)
		}
		if !r.Valid() {
			t.Errorf("Result(%d).Valid() = false", r)
		}
	}
	for _, r := range []abi.Result{-1, 7, 100, math.MinInt32, math.MaxInt32} {
		if got := r.String(); got != "FunctionError" {
			t.Errorf("Result(%d).String() = %q, want FunctionError", r, got)
		}
		if r.Valid() {
			t.Errorf("Result(%d).Valid() = true", r)
		}
	}
}

func TestStatusAndLevelNames(t *testing.T) {
	consent := map[abi.ConsentStatus]string{
		abi.ConsentFound: "found", abi.ConsentSame: "same", abi.ConsentDiffers: "differs",
		abi.ConsentNoRecord: "no record", abi.ConsentNoEventConsent: "no consent in event",
		abi.ConsentNoID: "no id", abi.ConsentUnavailable: "store unavailable",
		7: "unknown", math.MaxUint32: "unknown",
	}
	for s, name := range consent {
		if got := s.String(); got != name {
			t.Errorf("ConsentStatus(%d).String() = %q, want %q", s, got, name)
		}
	}
	levels := map[abi.Level]string{
		abi.LevelDebug: "debug", abi.LevelInfo: "info", abi.LevelWarn: "warn", abi.LevelError: "error",
		-1: "info", 4: "info", math.MaxInt32: "info",
	}
	for l, name := range levels {
		if got := l.String(); got != name {
			t.Errorf("Level(%d).String() = %q, want %q", l, got, name)
		}
	}
}

// FuzzDecodeEntry: DecodeEntry never panics on any input, and whatever it
// decodes re-encodes to exactly the bytes it consumed.
func FuzzDecodeEntry(f *testing.F) {
	f.Add([]byte{})
	f.Add(abi.AppendEntry(nil, abi.FlagInStored|abi.FlagStoredConsented, "Advertising", "", 1700000000000))
	f.Add(abi.AppendEntry(nil, abi.FlagPurpose|abi.FlagInEvent, "gdpr", "location_collection", 1523039002083))
	f.Add(abi.AppendEntry(abi.AppendEntry(nil, 0, "", "", 0), abi.FlagPurpose, "", "", -1))
	f.Add([]byte{0x01, 0xFF, 0xFF, 0x00})
	f.Add([]byte{0xFF, 0x00, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := append([]byte(nil), b...)
		in := b
		for len(in) > 0 {
			var e abi.Entry
			rest, ok := abi.DecodeEntry(in, &e)
			if !ok {
				break
			}
			consumed := len(in) - len(rest)
			if consumed <= 0 || len(rest) > len(in) {
				t.Fatalf("DecodeEntry consumed %d bytes of %d", consumed, len(in))
			}
			if len(rest) > 0 && &rest[0] != &in[consumed] {
				t.Fatal("rest is not the tail of the input")
			}
			if e.Flags&abi.FlagPurpose == 0 && e.Purpose != nil {
				t.Fatalf("a category decoded with a purpose %q", e.Purpose)
			}
			re := abi.AppendEntry(nil, e.Flags, string(e.Name), string(e.Purpose), e.Timestamp)
			if !bytes.Equal(re, in[:consumed]) {
				t.Fatalf("re-encoding differs:\n in % X\nout % X", in[:consumed], re)
			}
			in = rest
		}
		if !bytes.Equal(b, orig) {
			t.Fatal("DecodeEntry changed its input")
		}
	})
}

func TestHostFuncSignature(t *testing.T) {
	for _, tc := range []struct {
		f    abi.HostFunc
		want string
	}{
		{abi.HostFunc{Name: "f", Params: []abi.Param{{"a", abi.I32}, {"b", abi.I64}}, Results: []abi.ValueType{abi.I64}}, "(a i32, b i64) -> i64"},
		{abi.HostFunc{Name: "g", Params: []abi.Param{{"ptr", abi.I32}}}, "(ptr i32)"},
		{abi.HostFunc{Name: "h", Results: []abi.ValueType{abi.I32}}, "() -> i32"},
		{abi.HostFunc{Name: "x", Params: []abi.Param{{"v", abi.ValueType(0x7d)}}}, "(v unknown)"},
	} {
		if got := tc.f.Signature(); got != tc.want {
			t.Errorf("%s: Signature() = %q, want %q", tc.f.Name, got, tc.want)
		}
	}
	// Each call returns its own table: a caller cannot change the ABI.
	fs := abi.HostFuncs()
	fs[0].Name, fs[0].Params[0].Type, fs[0].Results[0] = "changed", abi.I64, abi.I32
	if again := abi.HostFuncs(); again[0].Name != abi.FuncEventGet || again[0].Params[0].Type != abi.I32 || again[0].Results[0] != abi.I64 {
		t.Errorf("changing abi.HostFuncs' result changed the table: %+v", again[0])
	}
}
