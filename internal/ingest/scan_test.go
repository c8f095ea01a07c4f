package ingest

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
	`{"b\u0061tch":[1,2],"batch":[3]}`, `{"context":{"a":{"context":{}},"b":[1]},"context":{"c":1},"type":"track"}`,
	`{"batch":[{"context":"x","context":{"a":1}},{"c\u006fntext":{"b":2,"b":3},"x":{"context":{}}},[{"context":{}}],7,{}]}`, `{"batch":{"a":1},"batch":[1]}`, `{"batch":[]}`, `{"batch":[ ] , "x" : 1}`,
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
	if got && x.bodyView().object != root.IsObject() {
		t.Fatalf("scanBody(%q): object %v; gjson reads %s", b, x.bodyView().object, root.Raw)
	}
	if !got || !root.IsObject() {
		return
	}
	members := objectMembers(root)
	if !slices.Equal(members, x.members) {
		t.Fatalf("members of %q: %q; gjson reads %q", b, x.members, members)
	}
	checkContext(t, b, x.bodyView().context, root)
	var batch gjson.Result
	for _, m := range members {
		if m.name == "batch" {
			batch = gjson.Parse(m.value)
			break
		}
	}
	if x.hasBatch != batch.IsArray() {
		t.Fatalf("batch of %q: hasBatch %v; gjson reads %s", b, x.hasBatch, batch.Raw)
	}
	var elements []gjson.Result
	batch.ForEach(func(_, v gjson.Result) bool {
		elements = append(elements, v)
		return true
	})
	if !x.hasBatch {
		elements = nil
	}
	if len(elements) != len(x.elements) {
		t.Fatalf("elements of %q: %d; gjson reads %d", b, len(x.elements), len(elements))
	}
	for i, e := range elements {
		v := x.view(i)
		if x.elements[i].raw != e.Raw || v.object != e.IsObject() {
			t.Fatalf("element %d of %q: %q (object %v); gjson reads %q", i, b, x.elements[i].raw, v.object, e.Raw)
		}
		if want := objectMembers(e); !slices.Equal(want, v.members) {
			t.Fatalf("members of element %d of %q: %q; gjson reads %q", i, b, v.members, want)
		}
		checkContext(t, b, v.context, e)
	}
	for _, m := range members {
		if got, want := x.member(m.name).Raw, root.Get(gjson.Escape(m.name)).Raw; got != want {
			t.Fatalf("member %q of %q: %q; gjson reads %q", m.name, b, got, want)
		}
	}
}

// objectMembers returns the members of obj as gjson's ForEach reads them.
func objectMembers(obj gjson.Result) []indexedMember {
	var ms []indexedMember
	if !obj.IsObject() {
		return nil
	}
	obj.ForEach(func(k, v gjson.Result) bool {
		ms = append(ms, indexedMember{k.Str, k.Raw, v.Raw})
		return true
	})
	return ms
}

// checkContext compares got, the indexed members of obj's context, with
// the members gjson reads in obj's first member named context.
func checkContext(t *testing.T, b string, got []indexedMember, obj gjson.Result) {
	t.Helper()
	var want []indexedMember
	for _, m := range objectMembers(obj) {
		if m.name == "context" {
			want = objectMembers(gjson.Parse(m.value))
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("context of %s in %q: %q; gjson reads %q", obj.Raw, b, got, want)
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
