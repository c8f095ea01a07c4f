package consentstore

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, name, input string) (*Memory, error) {
	t.Helper()
	return Load(strings.NewReader(input), name)
}

func mustLoad(t *testing.T, name, input string) *Memory {
	t.Helper()
	m, err := load(t, name, input)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

const (
	recU1 = `{"id":"u1","aliases":["anon1"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":1700000000000},"Analytics":{"consented":false,"timestamp_unixtime_ms":1700000000000}}}`
	recU2 = `{"id":"u2","consent_state":{"ccpa":{"data_sale_opt_out":{"consented":true,"timestamp_unixtime_ms":1579198790480}}}}`
)

func TestLoadFormats(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		want        []string
	}{
		{"array", "[" + recU1 + "," + recU2 + "]", []string{"u1", "u2"}},
		{"pretty array", "[\n  " + recU1 + ",\n\n  " + recU2 + "\n]\n", []string{"u1", "u2"}},
		{"empty array", "[]", nil},
		{"object", recU1, []string{"u1"}},
		{"pretty object", "\n{\n  \"id\": \"u1\",\n  \"categoryPreferences\": {\"Advertising\": true}\n}\n", []string{"u1"}},
		{"ndjson", recU1 + "\n" + recU2 + "\n", []string{"u1", "u2"}},
		{"ndjson with blank lines and CRLF", "\r\n" + recU1 + "\r\n\r\n  \n" + recU2, []string{"u1", "u2"}},
		{"byte order mark", "\xef\xbb\xbf" + recU1 + "\n" + recU2, []string{"u1", "u2"}},
		{"empty", "", nil},
		{"blank", "\n  \n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustLoad(t, "in", tc.input)
			if got := ids(m); !slices.Equal(got, tc.want) {
				t.Errorf("records = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLoadMergesInOrder(t *testing.T) {
	m := mustLoad(t, "in.ndjson", strings.Join([]string{
		`{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":10}}}`,
		`{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":5}}}`, // older: ignored
		`{"id":"anon1","categoryPreferences":{"Analytics":{"consented":true,"timestamp_unixtime_ms":7}}}`,
		`{"id":"u1","aliases":["anon1"]}`, // links the two
	}, "\n"))
	if m.Len() != 1 {
		t.Fatalf("records = %v, want one", ids(m))
	}
	r := get(t, m, "anon1")
	if c := category(t, r, "Advertising"); !c.Consented {
		t.Errorf("Advertising = %+v: the older line must not win", c)
	}
	if c := category(t, r, "Analytics"); !c.Consented {
		t.Errorf("Analytics = %+v", c)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		want        string // the start of the error message
		contains    string
	}{
		{"ndjson bad line", recU1 + "\n\n{\"id\": \"u3\",\n" + recU2, "consentstore: load consent.ndjson:3: ", "unexpected end of JSON input"},
		{"ndjson garbage", recU1 + "\n" + recU2 + "\nnot json\n", "consentstore: load consent.ndjson:3: ", "invalid character"},
		{"ndjson not an object", recU1 + "\n42\n", "consentstore: load consent.ndjson:2: ", "want a consent record"},
		{"ndjson without id", recU1 + "\n" + `{"categoryPreferences":{"Advertising":true}}`, "consentstore: load consent.ndjson:2: ", `without an "id"`},
		{"ndjson bad type", `{"id":"u1","aliases":"anon1"}`, "consentstore: load consent.ndjson:1: ", "aliases"},
		{"ndjson purpose without consented", recU1 + "\n" + `{"id":"u2","consent_state":{"gdpr":{"x":{"timestamp_unixtime_ms":1}}}}`, "consentstore: load consent.ndjson:2: ", `"consented" is required`},
		{"array bad element", "[\n" + recU1 + ",\n" + `{"id":""}` + "\n]", "consentstore: load consent.ndjson:3: ", `without an "id"`},
		{"array element not an object", "[\n" + recU1 + ",\n\"u2\"\n]", "consentstore: load consent.ndjson:3: ", "want a consent record"},
		{"array syntax", "[\n" + recU1 + ",\n{\"id\" \"u2\"}\n]", "consentstore: load consent.ndjson:3: ", "invalid character"},
		{"array unterminated", "[\n" + recU1 + ",\n", "consentstore: load consent.ndjson:3: ", "unexpected end"},
		{"pretty object syntax", "{\n  \"id\": \"u1\",\n  \"categoryPreferences\": {\"Advertising\": tru}\n}", "consentstore: load consent.ndjson:3: ", "invalid character"},
		{"trailing garbage", "{\n \"id\": \"u1\"\n}\nx", "consentstore: load consent.ndjson:4: ", "after the end"},
		{"not a record", "\n\"hello\"\n", "consentstore: load consent.ndjson:2: ", "want a consent record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := load(t, "consent.ndjson", tc.input)
			if err == nil {
				t.Fatalf("Load succeeded with %v, want an error", ids(m))
			}
			if !strings.HasPrefix(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error = %q\nwant it to start with %q and contain %q", err, tc.want, tc.contains)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "consent.ndjson")
	if err := os.WriteFile(path, []byte(recU1+"\n"+recU2+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(m); !slices.Equal(got, []string{"u1", "u2"}) {
		t.Errorf("records = %v", got)
	}
	if r := get(t, m, "anon1"); r.ID != "u1" {
		t.Errorf("Get(anon1) = %s", r.ID)
	}

	missing := filepath.Join(dir, "nope.json")
	if _, err := LoadFile(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("LoadFile of a missing file: %v, want an error naming it", err)
	}
	bad := filepath.Join(dir, "bad.ndjson")
	if err := os.WriteFile(bad, []byte(recU1+"\n{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(bad); err == nil || !strings.HasPrefix(err.Error(), "consentstore: load "+bad+":2: ") {
		t.Errorf("LoadFile of a bad file: %v, want it to name %s:2", err, bad)
	}
}

// TestLoadUpdates: Load reads what Import reads, partial updates with bare
// booleans and a source included, so `insertfn test --consent` takes an
// import file as it is, with the same result: a bare boolean is a decision
// taken at the time of the load.
func TestLoadUpdates(t *testing.T) {
	before := time.Now().UnixMilli()
	m := mustLoad(t, "updates.ndjson", strings.Join([]string{
		`{"id":"u1","categoryPreferences":{"Advertising":true},"source":"onetrust"}`,
		`{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":1700000000000}}}`,
		`{"id":"u1","aliases":["anon1"],"categoryPreferences":{"Analytics":{"consented":false,"timestamp_unixtime_ms":5}}}`,
		`{"id":"anon1","consent_state":{"ccpa":{"data_sale_opt_out":{"consented":true,"timestamp_unixtime_ms":7}}}}`,
	}, "\n"))
	r := get(t, m, "anon1")
	if r.ID != "u1" {
		t.Fatalf("anon1 finds %q, want u1", r.ID)
	}
	if c := category(t, r, "Advertising"); !c.Consented || c.Timestamp < before || c.Timestamp > time.Now().UnixMilli() {
		t.Errorf("Advertising = %+v, want true at the time of the load", c)
	}
	if c := category(t, r, "Analytics"); c.Consented || c.Timestamp != 5 {
		t.Errorf("Analytics = %+v", c)
	}
	if p, ok := r.Purpose("ccpa", "data_sale_opt_out"); !ok || !p.Consented {
		t.Errorf("ccpa = %+v, %v", p, ok)
	}
}
