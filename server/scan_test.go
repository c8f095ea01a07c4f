package server

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

var scanSeeds = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e+10`, `-12.5E-3`, `true`, `false`, `null`, ` {"a" : [1, 2 ,{"b":null}] } `,
	`{"batch":[{"type":"track","userId":"u","event":"e"},{"x":"\u00e9\n\"\\\/"}],"context":{"a":1},"sentAt":"2024-05-01T12:00:00Z"}`,
	`{"b\u0061tch":[1,2],"batch":[3]}`, `{"batch":{"a":1},"batch":[1]}`, `{"batch":[]}`, `{"batch":[ ] , "x" : 1}`,
	`{"a":"0123456789abcdef\"0123456789"}`, `"héllo wörld, a longer string of plain text"`,
	// Invalid.
	``, ` `, `{`, `}`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `01`, `1.`, `.5`, `1e`, `-`, `+1`, `tru`, `nul`, `"a`,
	`"\x"`, `"\u12g4"`, "\"a\x01b\"", "\"0123456789\x1f\"", `{"a":1}x`, `[1 2]`, `"abc\`, `{"a":"b"`, `[`, `{"batch":[1,}`,
	strings.Repeat("[", maxNesting) + strings.Repeat("]", maxNesting),
	strings.Repeat("[", maxNesting+1) + strings.Repeat("]", maxNesting+1),
}

// checkScan compares scanBody with gjson and encoding/json on b: the same
// validity, and, for an object, the members and batch elements gjson's
// ForEach reads.
func checkScan(t *testing.T, b string) {
	t.Helper()
	var x bodyIndex
	got := scanBody(b, &x)
	want := gjson.Valid(b) && json.Valid([]byte(b))
	deep := strings.Count(b, "[")+strings.Count(b, "{") > maxNesting // may be too deep
	if got != want && !(deep && !got) {
		t.Fatalf("scanBody(%q) = %v; gjson and encoding/json say %v", b, got, want)
	}
	if got != scanBody(b, nil) {
		t.Fatalf("scanBody(%q) with and without an index differ", b)
	}
	root := gjson.Parse(b)
	if !got || !root.IsObject() {
		return
	}
	var members []indexedMember
	var batch gjson.Result
	root.ForEach(func(k, v gjson.Result) bool {
		members = append(members, indexedMember{k.Str, v.Raw})
		if k.Str == "batch" && !batch.Exists() {
			batch = v
		}
		return true
	})
	if !slices.Equal(members, x.members) {
		t.Fatalf("members of %q: %q; gjson reads %q", b, x.members, members)
	}
	if x.hasBatch != batch.IsArray() {
		t.Fatalf("batch of %q: hasBatch %v; gjson reads %s", b, x.hasBatch, batch.Raw)
	}
	var elements []string
	batch.ForEach(func(_, v gjson.Result) bool {
		elements = append(elements, v.Raw)
		return true
	})
	if x.hasBatch && !slices.Equal(elements, x.elements) {
		t.Fatalf("elements of %q: %q; gjson reads %q", b, x.elements, elements)
	}
	for _, m := range members {
		if got, want := x.member(m.name).Raw, root.Get(gjson.Escape(m.name)).Raw; got != want {
			t.Fatalf("member %q of %q: %q; gjson reads %q", m.name, b, got, want)
		}
	}
}

func TestScanBody(t *testing.T) {
	for _, s := range scanSeeds {
		checkScan(t, s)
	}
	// Every byte that may end a run of plain characters, at every offset
	// of an 8-byte word.
	for _, c := range []byte{'"', '\\', 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xff} {
		for at := range 17 {
			b := []byte(`"` + strings.Repeat("a", 20) + `"`)
			b[1+at] = c
			checkScan(t, string(b))
		}
	}
}

func FuzzScanBody(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b string) {
		checkScan(t, b)
	})
}

func BenchmarkScanBody(b *testing.B) {
	body := string(mustBody(100))
	b.SetBytes(int64(len(body)))
	b.Run("scanBody", func(b *testing.B) {
		var x bodyIndex
		for b.Loop() {
			x.reset()
			if !scanBody(body, &x) || len(x.elements) != 100 {
				b.Fatal("not a batch of 100")
			}
		}
	})
	b.Run("gjson", func(b *testing.B) {
		for b.Loop() {
			if !gjson.Valid(body) {
				b.Fatal("invalid")
			}
			n := 0
			gjson.Parse(body).ForEach(func(k, v gjson.Result) bool {
				if k.Str == "batch" {
					v.ForEach(func(_, _ gjson.Result) bool { n++; return true })
				}
				return true
			})
			if n != 100 {
				b.Fatal("not a batch of 100")
			}
		}
	})
}
