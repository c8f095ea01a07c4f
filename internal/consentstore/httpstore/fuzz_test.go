package httpstore_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/internal/consentstore/httpstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

// FuzzParse: decoding a response never panics, and a decoded record is one
// the store can hand out: it has an id, named and sorted entries without
// negative timestamps, and it survives a round trip through the wire
// format.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"id":"u1","aliases":["a1"],"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":1}}}`,
		`{"consent_state":{"gdpr":{"p":{"consented":true,"timestamp_unixtime_ms":1,"document":"d"}}}}`,
		`{"Advertising": true, "Analytics": false}`,
		`{"categoryPreferences": {"A": true}}`,
		`{"A": {"consented": false, "timestamp_unixtime_ms": 9}}`,
		`{"id":"u1","aliases":["u1",""]}`,
		`[[[[[]]]]]`, `{"":true}`, `null`, ``,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, body string, categories bool) {
		format := httpstore.FormatRecord
		if categories {
			format = httpstore.FormatCategories
		}
		r, err := httpstore.Decode(format, "looked-up", []byte(body))
		if err != nil {
			if r != nil {
				t.Fatalf("Decode returned a record with an error")
			}
			return
		}
		if r.ID == "" {
			t.Fatalf("record without an id from %q", body)
		}
		if categories && (r.ID != "looked-up" || len(r.Purposes) != 0) {
			t.Fatalf("categories format gave %+v", r)
		}
		if slices.Contains(r.Aliases, r.ID) || slices.Contains(r.Aliases, "") {
			t.Fatalf("aliases %q contain the id or an empty id", r.Aliases)
		}
		if !slices.IsSortedFunc(r.Categories, func(a, b consent.Category) int { return strings.Compare(a.Name, b.Name) }) {
			t.Fatalf("categories not sorted: %+v", r.Categories)
		}
		for _, c := range r.Categories {
			if c.Name == "" || c.Timestamp < 0 || c.Timestamp > r.UpdatedAt && categories {
				t.Fatalf("bad category %+v in %+v", c, r)
			}
		}
		for _, p := range r.Purposes {
			if p.Regulation == "" || p.Name == "" || p.Timestamp < 0 {
				t.Fatalf("bad purpose %+v", p)
			}
		}
		js, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := httpstore.Decode(httpstore.FormatRecord, "other", js)
		if err != nil {
			t.Fatalf("the decoded record %s does not decode again: %v", js, err)
		}
		if js2, _ := json.Marshal(back); string(js2) != string(js) {
			t.Fatalf("round trip changed %s into %s", js, js2)
		}
	})
}
