package consent_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/sdk/consent"
)

// specExample is the example of /work/shared/spec/consent-record.md.
const specExample = `{
  "id": "u123",
  "aliases": ["23adfd82-aa0f-45a7-a756-24f2a7a4c895"],
  "categoryPreferences": {
    "Advertising": {"consented": true,  "timestamp_unixtime_ms": 1700000000000},
    "Analytics":   {"consented": false, "timestamp_unixtime_ms": 1700000000000}
  },
  "consent_state": {
    "gdpr": {
      "location_collection": {
        "consented": true,
        "timestamp_unixtime_ms": 1523039002083,
        "document": "location_collection_agreement.v43",
        "location": "example.com/signup",
        "hardware_id": "IDFA:a5d934n0-232f-4afc-2e9a-3832d95zc702"
      }
    },
    "ccpa": {
      "data_sale_opt_out": {"consented": true, "timestamp_unixtime_ms": 1579198790480}
    }
  },
  "updated_at_unixtime_ms": 1700000000000
}`

func specRecord() *consent.Record {
	return &consent.Record{
		ID:      "u123",
		Aliases: []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"},
		Categories: []consent.Category{
			{Name: "Advertising", Consented: true, Timestamp: 1700000000000},
			{Name: "Analytics", Consented: false, Timestamp: 1700000000000},
		},
		Purposes: []consent.Purpose{
			{Regulation: "ccpa", Name: "data_sale_opt_out", Consented: true, Timestamp: 1579198790480},
			{Regulation: "gdpr", Name: "location_collection", Consented: true, Timestamp: 1523039002083,
				Document: "location_collection_agreement.v43", Location: "example.com/signup",
				HardwareID: "IDFA:a5d934n0-232f-4afc-2e9a-3832d95zc702"},
		},
		UpdatedAt: 1700000000000,
	}
}

func jsonEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want invalid JSON %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("JSON differs:\n got %s\nwant %s", got, want)
	}
}

func TestWireFormatRoundTrip(t *testing.T) {
	var r consent.Record
	if err := json.Unmarshal([]byte(specExample), &r); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&r, specRecord()) {
		t.Fatalf("decoded\n %+v\nwant\n %+v", r, *specRecord())
	}
	if c, ok := r.Category("Advertising"); !ok || !c.Consented || c.Timestamp != 1700000000000 {
		t.Errorf("Category(Advertising) = %+v, %v", c, ok)
	}
	if _, ok := r.Category("advertising"); ok {
		t.Error("category names must match case-sensitively")
	}
	if p, ok := r.Purpose("ccpa", "data_sale_opt_out"); !ok || !p.Consented {
		t.Errorf("Purpose(ccpa, data_sale_opt_out) = %+v, %v", p, ok)
	}
	if _, ok := r.Purpose("gdpr", "data_sale_opt_out"); ok {
		t.Error("Purpose found under the wrong regulation")
	}
	if m := r.CategoryMap(); !reflect.DeepEqual(m, map[string]bool{"Advertising": true, "Analytics": false}) {
		t.Errorf("CategoryMap = %v", m)
	}
	if ids := r.IDs(); !reflect.DeepEqual(ids, []string{"u123", "23adfd82-aa0f-45a7-a756-24f2a7a4c895"}) {
		t.Errorf("IDs = %v", ids)
	}

	out, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, out, []byte(specExample))

	var again consent.Record
	if err := json.Unmarshal(out, &again); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&again, &r) {
		t.Errorf("second round trip differs:\n %+v\n %+v", again, r)
	}
}

func TestWireFormatMinimal(t *testing.T) {
	out, err := json.Marshal(&consent.Record{ID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	// Empty sections are left out, the id is always there.
	jsonEqual(t, out, []byte(`{"id":"u1"}`))
}

func TestBareBooleanCategories(t *testing.T) {
	var r consent.Record
	err := json.Unmarshal([]byte(`{"id":"u1","categoryPreferences":{"Zeta":true,"Alpha":false,"Mid":{"consented":true,"timestamp_unixtime_ms":5}, "Spaced": true }}`), &r)
	if err != nil {
		t.Fatal(err)
	}
	want := []consent.Category{
		{Name: "Alpha", Consented: false, Timestamp: 0},
		{Name: "Mid", Consented: true, Timestamp: 5},
		{Name: "Spaced", Consented: true, Timestamp: 0},
		{Name: "Zeta", Consented: true, Timestamp: 0},
	}
	if !reflect.DeepEqual(r.Categories, want) {
		t.Errorf("categories = %+v, want (sorted by name) %+v", r.Categories, want)
	}
}

func TestWireFormatErrors(t *testing.T) {
	cases := map[string]string{
		"purpose without consented":   `{"id":"u1","consent_state":{"gdpr":{"ads":{"timestamp_unixtime_ms":1}}}}`,
		"purpose with null consented": `{"id":"u1","consent_state":{"gdpr":{"ads":{"consented":null,"timestamp_unixtime_ms":1}}}}`,
		"category as a string":        `{"id":"u1","categoryPreferences":{"Ads":"yes"}}`,
		"category as a number":        `{"id":"u1","categoryPreferences":{"Ads":1}}`,
		"consented as a string":       `{"id":"u1","categoryPreferences":{"Ads":{"consented":"true"}}}`,
		"not an object":               `[1,2]`,
		"truncated":                   `{"id":"u1"`,
	}
	for name, in := range cases {
		var r consent.Record
		if err := json.Unmarshal([]byte(in), &r); err == nil {
			t.Errorf("%s: no error for %s (got %+v)", name, in, r)
		}
	}
	var r consent.Record
	err := json.Unmarshal([]byte(cases["purpose without consented"]), &r)
	if err == nil || !strings.Contains(err.Error(), "consented") || !strings.Contains(err.Error(), "gdpr") {
		t.Errorf("error %v should name the purpose and the missing field", err)
	}
}

func TestNormalize(t *testing.T) {
	r := &consent.Record{
		ID:      "u1",
		Aliases: []string{"b", "u1", "", "a", "b"},
		Categories: []consent.Category{
			{Name: "B", Consented: true, Timestamp: 1},
			{Name: "A", Consented: false, Timestamp: 5},
			{Name: "B", Consented: false, Timestamp: 9}, // newest B
			{Name: "B", Consented: true, Timestamp: 3},
		},
		Purposes: []consent.Purpose{
			{Regulation: "gdpr", Name: "x", Consented: true, Timestamp: 2},
			{Regulation: "ccpa", Name: "y", Consented: true, Timestamp: 1},
			{Regulation: "gdpr", Name: "x", Consented: false, Timestamp: 7}, // newest gdpr/x
			{Regulation: "gdpr", Name: "a", Consented: false, Timestamp: 1},
		},
	}
	r.Normalize()
	if !reflect.DeepEqual(r.Aliases, []string{"a", "b"}) {
		t.Errorf("aliases = %q", r.Aliases)
	}
	wantC := []consent.Category{{Name: "A", Timestamp: 5}, {Name: "B", Consented: false, Timestamp: 9}}
	if !reflect.DeepEqual(r.Categories, wantC) {
		t.Errorf("categories = %+v, want %+v", r.Categories, wantC)
	}
	wantP := []consent.Purpose{
		{Regulation: "ccpa", Name: "y", Consented: true, Timestamp: 1},
		{Regulation: "gdpr", Name: "a", Consented: false, Timestamp: 1},
		{Regulation: "gdpr", Name: "x", Consented: false, Timestamp: 7},
	}
	if !reflect.DeepEqual(r.Purposes, wantP) {
		t.Errorf("purposes = %+v, want %+v", r.Purposes, wantP)
	}
}

func TestClone(t *testing.T) {
	r := specRecord()
	c := r.Clone()
	c.Categories[0].Consented = false
	c.Purposes[0].Name = "changed"
	c.Aliases[0] = "changed"
	if !reflect.DeepEqual(r, specRecord()) {
		t.Error("changing a clone changed the original")
	}
}

func cat(name string, consented bool, ts int64) consent.Category {
	return consent.Category{Name: name, Consented: consented, Timestamp: ts}
}

func pur(reg, name string, consented bool, ts int64) consent.Purpose {
	return consent.Purpose{Regulation: reg, Name: name, Consented: consented, Timestamp: ts}
}

func TestMergeOlderUpdateChangesNothing(t *testing.T) {
	r := specRecord()
	u := &consent.Record{ID: "u123",
		Categories: []consent.Category{cat("Advertising", false, 1699999999999)},
		Purposes:   []consent.Purpose{pur("ccpa", "data_sale_opt_out", false, 1)},
	}
	if ch := r.Merge(u); len(ch) != 0 {
		t.Errorf("changes = %+v, want none", ch)
	}
	if !reflect.DeepEqual(r, specRecord()) {
		t.Errorf("record changed:\n %+v", r)
	}
}

func TestMergeEqualTimestampWins(t *testing.T) {
	r := specRecord()
	u := &consent.Record{ID: "u123",
		Categories: []consent.Category{cat("Advertising", false, 1700000000000)},
		Purposes:   []consent.Purpose{pur("ccpa", "data_sale_opt_out", false, 1579198790480)},
	}
	ch := r.Merge(u)
	want := []consent.Change{
		{Kind: "category", Name: "Advertising",
			Old: &consent.Entry{Consented: true, Timestamp: 1700000000000},
			New: &consent.Entry{Consented: false, Timestamp: 1700000000000}},
		{Kind: "purpose", Regulation: "ccpa", Name: "data_sale_opt_out",
			Old: &consent.Entry{Consented: true, Timestamp: 1579198790480},
			New: &consent.Entry{Consented: false, Timestamp: 1579198790480}},
	}
	if !reflect.DeepEqual(ch, want) {
		t.Errorf("changes = %s, want %s", dump(ch), dump(want))
	}
	if c, _ := r.Category("Advertising"); c.Consented {
		t.Error("Advertising still consented")
	}
	if p, _ := r.Purpose("ccpa", "data_sale_opt_out"); p.Consented {
		t.Error("ccpa opt-out still consented")
	}

	// Replaying the same update is harmless: no change, same record.
	before := r.Clone()
	if ch := r.Merge(u); len(ch) != 0 {
		t.Errorf("replay: changes = %s, want none", dump(ch))
	}
	if !reflect.DeepEqual(r, before) {
		t.Error("replay changed the record")
	}
}

func TestMergeNewerUpdate(t *testing.T) {
	r := specRecord()
	u := &consent.Record{ID: "u123",
		Categories: []consent.Category{cat("Analytics", true, 1800000000000), cat("Advertising", true, 1800000000000)},
	}
	ch := r.Merge(u)
	// Advertising was already consented: its timestamp moves, but no stored
	// value changed, so it is not a change.
	want := []consent.Change{{Kind: "category", Name: "Analytics",
		Old: &consent.Entry{Consented: false, Timestamp: 1700000000000},
		New: &consent.Entry{Consented: true, Timestamp: 1800000000000}}}
	if !reflect.DeepEqual(ch, want) {
		t.Errorf("changes = %s, want %s", dump(ch), dump(want))
	}
	if c, _ := r.Category("Advertising"); c.Timestamp != 1800000000000 {
		t.Errorf("Advertising timestamp = %d, want the update's", c.Timestamp)
	}
	if r.UpdatedAt != 1800000000000 {
		t.Errorf("UpdatedAt = %d, want the newest entry's timestamp", r.UpdatedAt)
	}
}

func TestMergePartialUpdate(t *testing.T) {
	r := specRecord()
	u := &consent.Record{ID: "u123", Categories: []consent.Category{cat("Functional", true, 1700000000001)},
		Purposes: []consent.Purpose{pur("gdpr", "analytics", false, 1700000000002)}}
	ch := r.Merge(u)
	want := []consent.Change{
		{Kind: "category", Name: "Functional", New: &consent.Entry{Consented: true, Timestamp: 1700000000001}},
		{Kind: "purpose", Regulation: "gdpr", Name: "analytics", New: &consent.Entry{Consented: false, Timestamp: 1700000000002}},
	}
	if !reflect.DeepEqual(ch, want) {
		t.Errorf("changes = %s, want %s", dump(ch), dump(want))
	}
	exp := specRecord()
	exp.Categories = append(exp.Categories, cat("Functional", true, 1700000000001))
	exp.Purposes = append(exp.Purposes, pur("gdpr", "analytics", false, 1700000000002))
	exp.UpdatedAt = 1700000000002
	exp.Normalize()
	if !reflect.DeepEqual(r, exp) {
		t.Errorf("merged\n %+v\nwant\n %+v", r, exp)
	}
	// The untouched purpose keeps its optional context.
	if p, _ := r.Purpose("gdpr", "location_collection"); p.Document != "location_collection_agreement.v43" {
		t.Errorf("gdpr/location_collection lost its document: %+v", p)
	}
}

func TestMergeAliases(t *testing.T) {
	r := &consent.Record{ID: "u1", Aliases: []string{"a1"}}
	r.Merge(&consent.Record{ID: "u1", Aliases: []string{"a2", "a1", "u1", "", "a2"}})
	if !reflect.DeepEqual(r.Aliases, []string{"a1", "a2"}) {
		t.Errorf("aliases = %q, want [a1 a2]", r.Aliases)
	}
	// An update under another id links that id.
	r.Merge(&consent.Record{ID: "a3", Aliases: []string{"u1"}})
	if r.ID != "u1" || !reflect.DeepEqual(r.Aliases, []string{"a1", "a2", "a3"}) {
		t.Errorf("id %q aliases %q, want u1 [a1 a2 a3]", r.ID, r.Aliases)
	}
	if ids := r.IDs(); !reflect.DeepEqual(ids, []string{"u1", "a1", "a2", "a3"}) {
		t.Errorf("IDs = %q", ids)
	}
}

func dump(ch []consent.Change) string {
	b, _ := json.Marshal(ch)
	return string(b)
}

// updates for the order tests: several updates of the same entries, each
// entry's timestamps distinct across updates (so that last writer wins has
// one answer), plus replays (same timestamp, same value).
func orderUpdates() []*consent.Record {
	return []*consent.Record{
		{ID: "u1", Aliases: []string{"a1"}, Categories: []consent.Category{cat("Ads", true, 10), cat("Analytics", false, 10)}},
		{ID: "u1", Categories: []consent.Category{cat("Ads", false, 20)}, Purposes: []consent.Purpose{pur("gdpr", "ads", true, 5)}},
		{ID: "u1", Aliases: []string{"a2"}, Categories: []consent.Category{cat("Ads", true, 15), cat("Functional", true, 1)}},
		{ID: "a1", Purposes: []consent.Purpose{pur("gdpr", "ads", false, 7), pur("ccpa", "data_sale_opt_out", true, 3)}},
		{ID: "u1", Categories: []consent.Category{cat("Analytics", true, 30), cat("Ads", false, 20)}}, // replays Ads@20
		{ID: "u1", Purposes: []consent.Purpose{pur("gdpr", "ads", true, 6), pur("ccpa", "data_sale_opt_out", false, 2)}},
	}
}

func applyAll(order []int, updates []*consent.Record) *consent.Record {
	r := &consent.Record{ID: "u1"}
	for _, i := range order {
		r.Merge(updates[i].Clone())
	}
	return r
}

func permutations(n int, f func([]int)) {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	var rec func(k int)
	rec = func(k int) {
		if k == n {
			f(p)
			return
		}
		for i := k; i < n; i++ {
			p[k], p[i] = p[i], p[k]
			rec(k + 1)
			p[k], p[i] = p[i], p[k]
		}
	}
	rec(0)
}

func TestMergeOrderIndependent(t *testing.T) {
	updates := orderUpdates()
	want := &consent.Record{
		ID:         "u1",
		Aliases:    []string{"a1", "a2"},
		Categories: []consent.Category{cat("Ads", false, 20), cat("Analytics", true, 30), cat("Functional", true, 1)},
		Purposes:   []consent.Purpose{pur("ccpa", "data_sale_opt_out", true, 3), pur("gdpr", "ads", false, 7)},
		UpdatedAt:  30,
	}
	n := 0
	permutations(len(updates), func(order []int) {
		n++
		if got := applyAll(order, updates); !reflect.DeepEqual(got, want) {
			t.Fatalf("order %v gives\n %+v\nwant\n %+v", order, got, want)
		}
	})
	if n != 720 {
		t.Fatalf("tried %d orders, want 720", n)
	}
}

func TestMergeOrderIndependentRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	names := []string{"Ads", "Analytics", "Functional", "C0001", "C0004"}
	regs := []string{"gdpr", "ccpa"}
	for round := range 50 {
		// Random updates; each (entry, timestamp) pair carries one value,
		// so equal timestamps are replays and the final record is defined.
		value := map[string]bool{}
		valueOf := func(key string, ts int64) bool {
			k := fmt.Sprint(key, "@", ts)
			if _, ok := value[k]; !ok {
				value[k] = r.IntN(2) == 0
			}
			return value[k]
		}
		var updates []*consent.Record
		for range 12 {
			u := &consent.Record{ID: "u1"}
			if r.IntN(3) == 0 {
				u.Aliases = []string{fmt.Sprint("a", r.IntN(4))}
			}
			for _, n := range names {
				if r.IntN(2) == 0 {
					ts := int64(r.IntN(6))
					u.Categories = append(u.Categories, cat(n, valueOf(n, ts), ts))
				}
			}
			for _, reg := range regs {
				for _, p := range names[:2] {
					if r.IntN(3) == 0 {
						ts := int64(r.IntN(6))
						u.Purposes = append(u.Purposes, pur(reg, p, valueOf(reg+"/"+p, ts), ts))
					}
				}
			}
			u.Normalize()
			updates = append(updates, u)
		}
		order := make([]int, len(updates))
		for i := range order {
			order[i] = i
		}
		want := applyAll(order, updates)
		for range 100 {
			r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			if got := applyAll(order, updates); !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d: order %v gives\n %+v\nwant\n %+v", round, order, got, want)
			}
		}
		// Merging is also associative: merging a merged batch equals
		// merging its updates one by one.
		half := &consent.Record{ID: "u1"}
		for _, u := range updates[6:] {
			half.Merge(u.Clone())
		}
		got := applyAll([]int{0, 1, 2, 3, 4, 5}, updates)
		got.Merge(half)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: merging a merged half gives\n %+v\nwant\n %+v", round, got, want)
		}
	}
}
