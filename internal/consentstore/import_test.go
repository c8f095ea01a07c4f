package consentstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/insertfn/insertfn/sdk/consent"
	"time"
)

type reported struct {
	line int
	err  string
}

func importString(t *testing.T, s *Store, name, input string) (ImportStats, []reported, error) {
	t.Helper()
	var bad []reported
	st, err := Import(ctx, s, strings.NewReader(input), name, func(line int, err error) {
		bad = append(bad, reported{line, err.Error()})
	})
	return st, bad, err
}

func fixedClock(ms int64) Options {
	return Options{Now: func() time.Time { return time.UnixMilli(ms) }}
}

func TestImport(t *testing.T) {
	s := New(NewMemory(), fixedClock(1800000000000))
	input := strings.Join([]string{
		"\xef\xbb\xbf" + recU1, // 1
		"",                     // 2: blank
		`{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":1600000000000}}}`, // 3: older, changes nothing
		`{"id":"u1","categoryPreferences":{"Analytics":true},"source":"onetrust"}`,                                    // 4: bare boolean, now
		`{not json`, // 5
		recU2 + "\r",
		`{"id":"u3","categoryPreference":{"Advertising":true}}`,                                           // 7: misspelt
		`{"categoryPreferences":{"Advertising":true}}`,                                                    // 8: no id
		`{"id":"u3","consent_state":{"gdpr":{"m":{"timestamp_unixtime_ms":1}}}}`,                          // 9: no consented
		`{"id":"u3","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":-5}}}`, // 10: store refuses
		`[1,2]`, // 11
		`{"id":"anon1","consent_state":{"gdpr":{"m":{"consented":true,"timestamp_unixtime_ms":1700000000000}}},"source":null}`, // 12
		`{"id":"u4","source":7}`, // 13
		"   ",
		`{"id":"u5","categoryPreferences":{"Functional":true}}`, // 15, no final newline
	}, "\n")
	st, bad, err := importString(t, s, "people.ndjson", input)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	want := []reported{
		{5, "invalid character"},
		{7, `unknown field "categoryPreference"`},
		{8, `record without an "id"`},
		{9, `"consented" is required`},
		{10, "negative timestamp -5"},
		{11, "want a consent record (a JSON object)"},
		{13, "field source: want a string, got a number (7)"},
	}
	if len(bad) != len(want) {
		t.Fatalf("reported %v\nwant lines %v", bad, want)
	}
	for i, w := range want {
		if bad[i].line != w.line || !strings.Contains(bad[i].err, w.err) {
			t.Errorf("report %d = line %d %q, want line %d containing %q", i, bad[i].line, bad[i].err, w.line, w.err)
		}
	}
	// Changes: u1 Advertising+Analytics (2), Analytics again no (bare true at now
	// vs stored false: changed, 1), u2 ccpa (1), anon1 gdpr.m (1), u5 (1).
	if wantSt := (ImportStats{Lines: 13, Applied: 6, Failed: 7, Changes: 6}); st != wantSt {
		t.Errorf("stats = %+v, want %+v", st, wantSt)
	}

	r, err := s.Get(ctx, "anon1")
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "u1" {
		t.Fatalf("anon1 finds %q, want u1", r.ID)
	}
	if c, _ := r.Category("Advertising"); !c.Consented || c.Timestamp != 1700000000000 {
		t.Errorf("Advertising = %+v: the older line 3 must not win", c)
	}
	if c, _ := r.Category("Analytics"); !c.Consented || c.Timestamp != 1800000000000 {
		t.Errorf("Analytics = %+v, want true at the store's clock", c)
	}
	if p, ok := r.Purpose("gdpr", "m"); !ok || !p.Consented {
		t.Errorf("gdpr.m = %+v, %v", p, ok)
	}
	for _, id := range []string{"u2", "u5"} {
		if _, err := s.Get(ctx, id); err != nil {
			t.Errorf("Get(%s): %v", id, err)
		}
	}
	for _, id := range []string{"u3", "u4"} {
		if _, err := s.Get(ctx, id); err == nil {
			t.Errorf("Get(%s) found a record from a bad line", id)
		}
	}

	// Every history point names the file and line it came from.
	_, hist, err := s.History(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{}
	for _, h := range hist {
		sources[h.Name+"@"+fmt.Sprint(h.Timestamp)] = h.Source
	}
	for k, want := range map[string]string{
		"Advertising@1700000000000": "import:people.ndjson:1",
		"Advertising@1600000000000": "import:people.ndjson:3",
		"Analytics@1800000000000":   "import:people.ndjson:4:onetrust",
		"m@1700000000000":           "import:people.ndjson:12",
	} {
		if sources[k] != want {
			t.Errorf("source of %s = %q, want %q (history %v)", k, sources[k], want, sources)
		}
	}
}

func TestImportNilReport(t *testing.T) {
	s := New(NewMemory(), Options{})
	st, err := Import(ctx, s, strings.NewReader("x\n"+recU2+"\n"), "in", nil)
	if err != nil || st != (ImportStats{Lines: 2, Applied: 1, Failed: 1, Changes: 1}) {
		t.Errorf("Import = %+v, %v", st, err)
	}
}

// TestImportReplaceRefusedLineErasesNothing: a line the store refuses
// (a decision dated in the future) is reported, and the record it names
// stays as it was; a closed store stops the import.
func TestImportReplaceRefusedLineErasesNothing(t *testing.T) {
	s := New(NewMemory(), fixedClock(1800000000000))
	if _, err := Import(ctx, s, strings.NewReader(recU1), "in", nil); err != nil {
		t.Fatal(err)
	}
	future := `{"id":"anon1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":1900000000000}}}`
	var bad []int
	st, err := ImportReplace(ctx, s, strings.NewReader(future), "in", func(line int, err error) { bad = append(bad, line) })
	if err != nil || st.Failed != 1 || !slices.Equal(bad, []int{1}) {
		t.Fatalf("ImportReplace = %+v, %v, bad lines %v; want line 1 reported", st, err, bad)
	}
	rec, err := s.Get(ctx, "anon1")
	if err != nil || rec.ID != "u1" || len(rec.Categories) != 2 {
		t.Errorf("after a refused line: %+v, %v; want u1 as it was", rec, err)
	}
	s.Close()
	if _, err := ImportReplace(ctx, s, strings.NewReader(recU2), "in", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("ImportReplace on a closed store: %v, want ErrClosed", err)
	}
}

func TestImportLongLine(t *testing.T) {
	s := New(NewMemory(), Options{})
	long := `{"id":"big","aliases":["` + strings.Repeat("a", MaxImportLine) + `"]}`
	st, bad, err := importString(t, s, "in", recU1+"\n"+long+"\n"+recU2)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || bad[0].line != 2 || !strings.Contains(bad[0].err, "line longer than") {
		t.Errorf("reported %v, want line 2 too long", bad)
	}
	if st != (ImportStats{Lines: 3, Applied: 2, Failed: 1, Changes: 3}) {
		t.Errorf("stats = %+v", st)
	}
}

func TestLineReader(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		bufSize     int
		want        []string // "!" for a line too long
	}{
		{"plain", "ab\ncd\n", 16, []string{"ab\n", "cd\n"}},
		{"no final newline", "ab\ncd", 16, []string{"ab\n", "cd"}},
		{"empty lines", "\n\n", 16, []string{"\n", "\n"}},
		{"empty", "", 16, nil},
		{"too long, across buffers", "0123456789abc\nxy\n", 16, []string{"!", "xy\n"}},
		{"too long at the end", "ab\n0123456789abcdefghij", 16, []string{"ab\n", "!"}},
		{"longest that fits with CRLF", "01234567\r\n012345678\r\n", 16, []string{"01234567\r\n", "!"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lr := lineReader{br: bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(tc.input)), tc.bufSize), max: 8}
			var got []string
			for {
				b, tooLong, err := lr.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if tooLong {
					got = append(got, "!")
				} else {
					got = append(got, string(b))
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || lr.line != len(tc.want) {
				t.Errorf("lines = %q (count %d), want %q", got, lr.line, tc.want)
			}
		})
	}
}

func TestImportStops(t *testing.T) {
	t.Run("closed store", func(t *testing.T) {
		s := New(NewMemory(), Options{})
		s.Close()
		st, bad, err := importString(t, s, "in", recU1+"\n"+recU2)
		if !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "import in:1: ") {
			t.Errorf("Import into a closed store: %v, want ErrClosed at in:1", err)
		}
		if len(bad) != 0 || st.Applied != 0 || st.Lines != 1 {
			t.Errorf("stats %+v, reported %v", st, bad)
		}
	})
	t.Run("context", func(t *testing.T) {
		s := New(NewMemory(), Options{})
		c, cancel := context.WithCancel(ctx)
		cancel()
		_, err := Import(c, s, strings.NewReader(recU1), "in", nil)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Import with a done context: %v", err)
		}
	})
	t.Run("read error", func(t *testing.T) {
		s := New(NewMemory(), Options{})
		r := io.MultiReader(strings.NewReader(recU1+"\n"), iotest.ErrReader(errors.New("disk on fire")))
		st, err := Import(ctx, s, r, "in", nil)
		if err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "in:2") {
			t.Errorf("Import of a failing reader: %v", err)
		}
		if st.Applied != 1 {
			t.Errorf("stats = %+v, want the first line applied", st)
		}
	})
}

func TestExportRoundTrip(t *testing.T) {
	src := New(NewMemory(), Options{})
	if _, err := Import(ctx, src, strings.NewReader(strings.Join([]string{
		recU2, recU1,
		`{"id":"u3","aliases":["x","y"],"categoryPreferences":{"A":{"consented":true,"timestamp_unixtime_ms":5}},"consent_state":{"gdpr":{"m":{"consented":false,"timestamp_unixtime_ms":9,"document":"d","location":"l","hardware_id":"h"}}}}`,
		`{"id":"y","categoryPreferences":{"B":{"consented":false,"timestamp_unixtime_ms":7}}}`,
	}, "\n")), "in", nil); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Export(ctx, src, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], `{"id":"u1",`) || !strings.HasPrefix(lines[2], `{"id":"u3",`) {
		t.Fatalf("export, want u1, u2, u3 sorted:\n%s", out.String())
	}

	dst := New(NewMemory(), Options{})
	st, err := Import(ctx, dst, bytes.NewReader(out.Bytes()), "export", func(line int, err error) { t.Errorf("line %d: %v", line, err) })
	if err != nil || st.Applied != 3 {
		t.Fatalf("re-import: %+v, %v", st, err)
	}
	var again bytes.Buffer
	if err := Export(ctx, dst, &again); err != nil {
		t.Fatal(err)
	}
	if again.String() != out.String() {
		t.Errorf("export after re-import:\n%s\nwant\n%s", again.String(), out.String())
	}
	if m, err := Load(bytes.NewReader(out.Bytes()), "export"); err != nil || m.Len() != 3 {
		t.Errorf("Load of an export: %v", err)
	}

	var empty bytes.Buffer
	if err := Export(ctx, New(NewMemory(), Options{}), &empty); err != nil || empty.Len() != 0 {
		t.Errorf("Export of an empty store = %q, %v", empty.String(), err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestExportErrors(t *testing.T) {
	s := New(NewMemory(), Options{})
	if _, err := Import(ctx, s, strings.NewReader(recU1), "in", nil); err != nil {
		t.Fatal(err)
	}
	if err := Export(ctx, s, failWriter{}); err == nil || !strings.Contains(err.Error(), "consent store: export: disk full") {
		t.Errorf("Export to a failing writer: %v", err)
	}
	s.Close()
	if err := Export(ctx, s, io.Discard); !errors.Is(err, ErrClosed) {
		t.Errorf("Export of a closed store: %v", err)
	}
}

func TestParseUpdate(t *testing.T) {
	u, err := ParseUpdate([]byte(`{"categoryPreferences":{"Advertising":true,"Analytics":{"consented":false,"timestamp_unixtime_ms":3}},"source":"cmp"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []consent.Category{{Name: "Advertising", Consented: true}, {Name: "Analytics", Timestamp: 3}}
	if u.Record.ID != "" || u.Source != "cmp" || !slices.Equal(u.Record.Categories, want) {
		t.Errorf("ParseUpdate = %+v", u)
	}
	for in, want := range map[string]string{
		`{"id":"u1","Advertising":true}`: `unknown field "Advertising"`,
		`{"id":"u1","source":["a"]}`:     "field source: want a string, got an array",
		`{"id":"u1","aliases":[true]}`:   "aliases",
		`{"id":"u1","aliases":[1e400]}`:  "aliases[0]: number 1e400",
		`{"id":12345678901234567890}`:    "id: number 12345678901234567890 would be the id 12345678901234567000",
		`"u1"`:                           "want a consent record",
		`{"id":"u1"`:                     "unexpected end of JSON input",
	} {
		if _, err := ParseUpdate([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseUpdate(%s) = %v, want an error containing %q", in, err, want)
		}
	}
}

// batchMemory is a Memory that writes batches, like the embedded store,
// and refuses updates of the id bad, alone or in a batch.
type batchMemory struct {
	*Memory
	bad     string
	batches []int // the size of each batch written
}

func (b *batchMemory) Update(ctx context.Context, u *Update) (*consent.Record, []consent.Change, error) {
	if u.Record.ID == b.bad {
		return nil, nil, fmt.Errorf("consent store: test: %q refused", b.bad)
	}
	return b.Memory.Update(ctx, u)
}

func (b *batchMemory) UpdateMany(ctx context.Context, updates []*Update) ([][]consent.Change, error) {
	for _, u := range updates {
		if u.Record.ID == b.bad || u.RecordedAt == 0 || u.Record.Categories[0].Timestamp == 0 {
			return nil, fmt.Errorf("consent store: test: batch refused")
		}
	}
	all := make([][]consent.Change, len(updates))
	for i, u := range updates {
		_, all[i], _ = b.Memory.Update(ctx, u)
	}
	b.batches = append(b.batches, len(updates))
	return all, nil
}

func TestImportBatches(t *testing.T) {
	b := &batchMemory{Memory: NewMemory(), bad: "u700"}
	s := New(b, fixedClock(1800000000000))
	var in strings.Builder
	n := 2*importBatch + 10
	for i := range n {
		switch i {
		case 3:
			in.WriteString("{bad\n")
		case 5:
			in.WriteString(`{"id":"u5","categoryPreferences":{"A":{"consented":true,"timestamp_unixtime_ms":-1}}}` + "\n")
		default:
			fmt.Fprintf(&in, `{"id":"u%d","categoryPreferences":{"A":true,"B":{"consented":false,"timestamp_unixtime_ms":%d}}}`+"\n", i, 1700000000000+i)
		}
	}
	st, bad, err := importString(t, s, "big", in.String())
	if err != nil {
		t.Fatal(err)
	}
	if want := (ImportStats{Lines: n, Applied: n - 3, Failed: 3, Changes: 2 * (n - 3)}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if len(bad) != 3 || bad[0].line != 4 || bad[1].line != 6 || !strings.Contains(bad[1].err, "negative timestamp") ||
		bad[2].line != 701 || !strings.Contains(bad[2].err, `"u700" refused`) {
		t.Errorf("reported %v", bad)
	}
	// The first batch is written whole; the second, holding u700, line by
	// line; the rest as one batch at the end.
	if want := []int{importBatch, 8}; !slices.Equal(b.batches, want) {
		t.Errorf("batches = %v, want %v", b.batches, want)
	}
	r, err := s.Get(ctx, "u1000")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := r.Category("A"); !c.Consented || c.Timestamp != 1800000000000 {
		t.Errorf("u1000 A = %+v, want true at the store's clock", c)
	}
	_, hist, err := s.History(ctx, "u1000")
	if err != nil || len(hist) != 2 || hist[0].Source != "import:big:1001" {
		t.Errorf("history of u1000 = %+v, %v", hist, err)
	}
	if m := b.Len(); m != n-3 {
		t.Errorf("%d records, want %d", m, n-3)
	}
}
