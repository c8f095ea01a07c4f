package destfilter

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/internal/pipeline/fql"
)

const order = `{"type":"track","event":"Order Completed","userId":"u1","properties":{"total":30,"email":"a@b.c","phone":"1","sku":"x"},"context":{"traits":{"email":"a@b.c","plan":"pro"},"ip":"1.2.3.4"}}`

func apply(t *testing.T, filters []Filter, event string) (string, string) {
	t.Helper()
	s, err := Compile(filters)
	if err != nil {
		t.Fatal(err)
	}
	var ev fql.Event
	out, by := s.Apply(&ev, []byte(event))
	return string(out), by
}

func TestActions(t *testing.T) {
	for _, c := range []struct {
		name    string
		filters []Filter
		want    string // the event out, "" when dropped
		by      string
	}{
		{"drop matching", []Filter{{Name: "no-orders", If: `event = 'Order Completed'`, Action: Drop}}, "", "no-orders"},
		{"drop not matching", []Filter{{Name: "no-pages", If: `type = 'page'`, Action: Drop}}, order, ""},
		{"keep matching", []Filter{{Name: "orders-only", If: `event = 'Order Completed'`, Action: Keep}}, order, ""},
		{"keep not matching", []Filter{{Name: "pages-only", If: `type = 'page'`, Action: Keep}}, "", "pages-only"},
		{"drop everything", []Filter{{Name: "all", Action: Drop}}, "", "all"},
		{"disabled", []Filter{{Name: "off", If: `true`, Action: Drop, Disabled: true}}, order, ""},
		{"first drop wins", []Filter{{Name: "a", If: `userId = 'u1'`, Action: Drop}, {Name: "b", Action: Drop}}, "", "a"},
		{"drop properties", []Filter{{Name: "pii", If: `type = 'track'`, Action: DropProperties,
			Fields: map[string][]string{"properties": {"email", "phone"}, "context.traits": {"email"}}}},
			`{"type":"track","event":"Order Completed","userId":"u1","properties":{"total":30,"sku":"x"},"context":{"traits":{"plan":"pro"},"ip":"1.2.3.4"}}`, ""},
		{"allow properties", []Filter{{Name: "allow", Action: AllowProperties, Fields: map[string][]string{"properties": {"total"}}}},
			`{"type":"track","event":"Order Completed","userId":"u1","properties":{"total":30},"context":{"traits":{"email":"a@b.c","plan":"pro"},"ip":"1.2.3.4"}}`, ""},
		{"allow at the top", []Filter{{Name: "top", Action: AllowProperties, Fields: map[string][]string{"": {"type", "event"}}}},
			`{"type":"track","event":"Order Completed"}`, ""},
		{"properties then a filter on the result", []Filter{
			{Name: "pii", Action: DropProperties, Fields: map[string][]string{"properties": {"email"}}},
			{Name: "needs-email", If: `properties.email = null`, Action: Drop}}, "", "needs-email"},
		{"sample all", []Filter{{Name: "s", Action: Sample, Percent: 1}}, order, ""},
		{"sample none", []Filter{{Name: "s", Action: Sample, Percent: 0}}, "", "s"},
		{"sample none, not matching", []Filter{{Name: "s", If: `type = 'page'`, Action: Sample, Percent: 0}}, order, ""},
	} {
		got, by := apply(t, c.filters, order)
		if got != c.want || by != c.by {
			t.Errorf("%s:\n got %s (by %q)\nwant %s (by %q)", c.name, got, by, c.want, c.by)
		}
	}
}

// TestApplyLeavesTheInput: an event a filter edits is a new buffer.
func TestApplyLeavesTheInput(t *testing.T) {
	in := []byte(order)
	s, _ := Compile([]Filter{{Name: "pii", Action: DropProperties, Fields: map[string][]string{"properties": {"email"}}}})
	var ev fql.Event
	out, _ := s.Apply(&ev, in)
	if string(in) != order || strings.Contains(string(out), "a@b.c\",\"phone") {
		t.Errorf("the input changed (%s) or the output kept the email (%s)", in, out)
	}
}

// TestSampleIsDeterministic: the same person gets the same answer every
// time, and the share kept over many people is close to Percent.
func TestSampleIsDeterministic(t *testing.T) {
	for _, percent := range []float64{0.01, 0.1, 0.5, 0.9} {
		s, err := Compile([]Filter{{Name: "s", Action: Sample, Percent: percent}})
		if err != nil {
			t.Fatal(err)
		}
		var ev fql.Event
		kept := 0
		const people = 20000
		for i := range people {
			e := fmt.Appendf(nil, `{"type":"track","userId":"user-%d","messageId":"m%d"}`, i, i)
			out, _ := s.Apply(&ev, e)
			again, _ := s.Apply(&ev, fmt.Appendf(nil, `{"type":"page","userId":"user-%d","messageId":"other-%d"}`, i, i))
			if (out == nil) != (again == nil) {
				t.Fatalf("percent %v: user-%d kept once and dropped once", percent, i)
			}
			if out != nil {
				kept++
			}
		}
		share := float64(kept) / people
		if tolerance := 4 * math.Sqrt(percent*(1-percent)/people); math.Abs(share-percent) > tolerance {
			t.Errorf("percent %v: kept %.4f of %d people, more than %.4f away", percent, share, people, tolerance)
		}
	}
	// Without a userId, the anonymousId decides; with path messageId, the event.
	s, _ := Compile([]Filter{{Name: "s", Action: Sample, Percent: 0.5, Path: "messageId"}})
	var ev fql.Event
	kept := 0
	for i := range 1000 {
		if out, _ := s.Apply(&ev, fmt.Appendf(nil, `{"userId":"same","messageId":"m%d"}`, i)); out != nil {
			kept++
		}
	}
	if kept < 400 || kept > 600 {
		t.Errorf("sampling by messageId kept %d of 1000 events of one person, want about half", kept)
	}
}

// TestSampleValue: a sample hashes the JSON of the value gjson reads
// from the event, of the first of its fields the event has (not null),
// else of the last: the same event is kept or not as before its fields
// were read through the fql.Event.
func TestSampleValue(t *testing.T) {
	events := []string{
		`{"userId":"u-1","anonymousId":"a-1"}`,
		`{"userId":null,"anonymousId":"a-1"}`,
		`{"anonymousId":"a-1"}`,
		`{"userId":null,"anonymousId":null}`,
		`{"userId":null}`,
		`{}`,
		`{"userId":12345.50,"anonymousId":"a"}`,
		`{"userId":"\u0075-1"}`,
		`{ "userId" : { "id" : [1, 2] } }`,
		`{"type":"track","properties":{"account":{"id":"acc-9"}},"userId":true}`,
	}
	for _, path := range []string{"", "properties.account.id", "properties.account", "userId"} {
		var ev fql.Event
		s, err := Compile([]Filter{{Name: "s", Action: Sample, Percent: 0.5, Path: path}})
		if err != nil {
			t.Fatal(err)
		}
		f := &s.filters[0]
		gpaths := []string{"userId", "anonymousId"}
		if path != "" {
			gpaths = []string{path}
		}
		for _, event := range events {
			var v gjson.Result
			for _, p := range gpaths {
				if v = gjson.Get(event, p); v.Exists() && v.Type != gjson.Null {
					break
				}
			}
			for _, percent := range []float64{0.001, 0.25, 0.5, 0.75, 0.999} {
				f.Percent = percent
				ev.Reset([]byte(event))
				if got, want := f.sampled(&ev), Share(v.Raw) < percent; got != want {
					t.Errorf("path %q, %s, percent %v: sampled %v, want %v (the share of %s)", path, event, percent, got, want, v.Raw)
				}
			}
		}
	}
}

func TestCompileErrors(t *testing.T) {
	_, err := Compile([]Filter{
		{Name: "a", If: `type = `, Action: Drop},
		{Name: "a", Action: "remove"},
		{Name: "", Action: Sample, Percent: 2},
		{Name: "p", Action: DropProperties},
		{Name: "q", Action: Drop, Percent: 0.5},
		{Name: "r", Action: Sample, Percent: 0.5, Path: "user id"},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"filters[0].if: fql: at position 7: expected a value",
		`filters[1].name: "a" is the name of another filter`,
		`filters[1].action: "remove": want one of`,
		"filters[2].name: a filter needs a name",
		"filters[2].percent: 2: want the share kept",
		"filters[3].fields: drop_properties needs the names",
		"filters[4].percent: percent and path are for the sample action",
		`filters[5].path: "user id" is not a field path`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors\n%v\nsay nothing like %q", err, want)
		}
	}
	var fe *Error
	if !errors.As(err, &fe) || !strings.HasPrefix(fe.ConfigKey(), "filters[") {
		t.Errorf("the errors are not *Error with their keys: %v", err)
	}
}

func BenchmarkApply(b *testing.B) {
	s, err := Compile([]Filter{
		{Name: "a", If: `type = 'identify'`, Action: Drop},
		{Name: "b", If: `context.traits.plan = 'free'`, Action: Drop},
		{Name: "c", If: `match(event, 'Order *')`, Action: Keep},
		{Name: "d", If: `properties.total > 1000`, Action: Drop},
		{Name: "e", Action: Sample, Percent: 0.999},
	})
	if err != nil {
		b.Fatal(err)
	}
	ev, in := new(fql.Event), []byte(order)
	b.ReportAllocs()
	for b.Loop() {
		s.Apply(ev, in)
	}
}
