package routing

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

var (
	adAll = []Destination{ // M: ad = facebook, google-ads; analytics = amplitude; plus an unmapped webhook
		{Name: "facebook", Categories: []string{"ad"}},
		{Name: "google-ads", Categories: []string{"ad"}},
		{Name: "amplitude", Categories: []string{"analytics"}},
		{Name: "webhook"},
	}
	unmapped = []Destination{{Name: "facebook"}, {Name: "google-ads"}, {Name: "amplitude"}, {Name: "webhook"}}
	adOnly   = []Destination{
		{Name: "facebook", Categories: []string{"ad"}},
		{Name: "google-ads", Categories: []string{"ad"}},
		{Name: "amplitude"},
		{Name: "webhook"},
	}
	overlap = []Destination{ // ad = facebook, google-ads; analytics = facebook, amplitude
		{Name: "facebook", Categories: []string{"ad", "analytics"}},
		{Name: "google-ads", Categories: []string{"ad"}},
		{Name: "amplitude", Categories: []string{"analytics"}},
		{Name: "webhook"},
	}
)

func event(consent, integrations string) []byte {
	e := `{"type":"track","event":"Order Completed","userId":"u1","context":{"library":{"name":"analytics.js"}`
	if consent != "" {
		e += `,"consent":` + consent
	}
	e += `}`
	if integrations != "" {
		e += `,"integrations":` + integrations
	}
	return []byte(e + `}`)
}

func receivers(dests []Destination, ev []byte) []string {
	out := New(dests).Route(ev, nil)
	var names []string
	for i, o := range out {
		if o == Deliver {
			names = append(names, dests[i].Name)
		}
	}
	return names
}

// TestWorkedCases: the eleven worked cases of consent-routing.md. Every
// case also has an unmapped "webhook" destination.
func TestWorkedCases(t *testing.T) {
	const fbTrueAmpFalse = `{"facebook":true,"amplitude":false}`
	const adTrueAnFalse = `{"categoryPreferences":{"ad":true,"analytics":false}}`
	cases := []struct {
		n                     int
		consent, integrations string
		dests                 []Destination
		want                  []string
	}{
		{1, "", "", adAll, []string{"facebook", "google-ads", "amplitude", "webhook"}},
		{2, `{"categoryPreferences":{}}`, "", adAll, []string{"webhook"}},
		{3, "", fbTrueAmpFalse, adAll, []string{"facebook", "google-ads", "webhook"}},
		{4, `{"categoryPreferences":{}}`, fbTrueAmpFalse, adAll, []string{"webhook"}},
		{5, adTrueAnFalse, "", unmapped, []string{"facebook", "google-ads", "amplitude", "webhook"}},
		{5, adTrueAnFalse, fbTrueAmpFalse, unmapped, []string{"facebook", "google-ads", "webhook"}},
		{6, adTrueAnFalse, "", adOnly, []string{"facebook", "google-ads", "amplitude", "webhook"}},
		{7, adTrueAnFalse, fbTrueAmpFalse, adAll, []string{"facebook", "google-ads", "webhook"}},
		{8, adTrueAnFalse, `{"facebook":false,"amplitude":false}`, adAll, []string{"google-ads", "webhook"}},
		{9, adTrueAnFalse, fbTrueAmpFalse, overlap, []string{"google-ads", "webhook"}},
		{10, `{"categoryPreferences":{"ad":true,"analytics":true}}`, fbTrueAmpFalse, overlap, []string{"facebook", "google-ads", "webhook"}},
		{11, `{"categoryPreferences":{"ad":false,"analytics":true}}`, fbTrueAmpFalse, overlap, []string{"webhook"}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("case%d", c.n), func(t *testing.T) {
			got := receivers(c.dests, event(c.consent, c.integrations))
			if !slices.Equal(got, c.want) {
				t.Errorf("C=%s I=%s: receivers %v, want %v", c.consent, c.integrations, got, c.want)
			}
		})
	}
}

// manyCategories returns n granted categories c0..c(n-1), each followed by
// a comma: more than the router holds without going back to the JSON.
func manyCategories(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `"c%d":true,`, i)
	}
	return b.String()
}

func TestConsentStates(t *testing.T) {
	for _, c := range []struct {
		name, consent string
		want          []string
	}{
		{"empty consent object grants nothing", `{}`, []string{"webhook"}},
		{"categoryPreferences not an object", `{"categoryPreferences":"yes"}`, []string{"webhook"}},
		{"consent is null", `null`, []string{"webhook"}},
		{"singular categoryPreference", `{"categoryPreference":{"ad":true}}`, []string{"facebook", "google-ads", "webhook"}},
		{"missing category is false", `{"categoryPreferences":{"ad":true}}`, []string{"facebook", "google-ads", "webhook"}},
		{"non-boolean true is not consent", `{"categoryPreferences":{"ad":"true","analytics":1}}`, []string{"webhook"}},
		{"names are case-sensitive", `{"categoryPreferences":{"Ad":true,"ANALYTICS":true}}`, []string{"webhook"}},
		{"a repeated category refused by a later copy", `{"categoryPreferences":{"ad":true,"ad":false}}`, []string{"webhook"}},
		{"a repeated category refused by the first copy", `{"categoryPreferences":{"ad":false,"ad":true}}`, []string{"webhook"}},
		{"of repeated categoryPreferences, the first counts", `{"categoryPreferences":{"ad":true},"categoryPreferences":{"ad":false}}`, []string{"facebook", "google-ads", "webhook"}},
		// An mParticle-style object grants when its consented is true, for
		// the router as for a function (sdk/hostcall).
		{"a category as a consented object", `{"categoryPreferences":{"ad":{"consented":true}}}`, []string{"facebook", "google-ads", "webhook"}},
		{"a category as a refusing object", `{"categoryPreferences":{"ad":{"consented":false,"consented":true}}}`, []string{"webhook"}},
		{"a category as an object without consented", `{"categoryPreferences":{"ad":{"ts":1}}}`, []string{"webhook"}},
		{"a consented object in a long object", `{"categoryPreferences":{` + manyCategories(30) + `"ad":{"consented":true}}}`, []string{"facebook", "google-ads", "webhook"}},
		{"a repeated category every copy grants", `{"categoryPreferences":{"ad":true,"ad":true}}`, []string{"facebook", "google-ads", "webhook"}},
		{"a repeated category in a long object", `{"categoryPreferences":{` + manyCategories(30) + `"ad":true,"ad":false}}`, []string{"webhook"}},
		{"a long object", `{"categoryPreferences":{` + manyCategories(30) + `"ad":true}}`, []string{"facebook", "google-ads", "webhook"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := receivers(adAll, event(c.consent, "")); !slices.Equal(got, c.want) {
				t.Errorf("consent %s: receivers %v, want %v", c.consent, got, c.want)
			}
		})
	}
}

func TestIntegrations(t *testing.T) {
	for _, c := range []struct {
		integrations string
		want         []string
	}{
		{`{"All":false}`, nil},
		{`{"All":false,"webhook":true}`, []string{"webhook"}},
		{`{"All":false,"webhook":{"option":1}}`, []string{"webhook"}}, // an options object counts as true
		{`{"All":true,"webhook":false}`, []string{"facebook", "google-ads", "amplitude"}},
		{`{"Webhook":false}`, []string{"facebook", "google-ads", "amplitude", "webhook"}}, // case-sensitive
		{`{"All":false,"facebook":true}`, []string{"facebook"}},
		{`"nonsense"`, []string{"facebook", "google-ads", "amplitude", "webhook"}},
		// Of a repeated name the first copy counts, as for consent.
		{`{"All":false,"All":true}`, nil},
		{`{"webhook":false,"webhook":true}`, []string{"facebook", "google-ads", "amplitude"}},
		{`{` + manyCategories(30) + `"All":false,"All":true}`, nil},
	} {
		if got := receivers(adAll, event("", c.integrations)); !slices.Equal(got, c.want) {
			t.Errorf("integrations %s: receivers %v, want %v", c.integrations, got, c.want)
		}
	}
	// Integrations never give back what consent refused.
	got := receivers(adAll, event(`{"categoryPreferences":{"ad":false}}`, `{"All":true,"facebook":true}`))
	if !slices.Equal(got, []string{"webhook"}) {
		t.Errorf("integrations restored a destination consent refused: %v", got)
	}
}

func TestOutcomes(t *testing.T) {
	out := New(adAll).Route(event(`{"categoryPreferences":{"ad":true}}`, `{"google-ads":false}`), nil)
	want := []Outcome{Deliver, FilteredByIntegrations, FilteredByConsent, Deliver}
	if !slices.Equal(out, want) {
		t.Errorf("outcomes %v, want %v", out, want)
	}
}

func TestNamesWithPathSyntax(t *testing.T) {
	dests := []Destination{{Name: "Google Ads (Classic)", Categories: []string{"C0004.ads*"}}, {Name: "a.b"}}
	ev := []byte(`{"context":{"consent":{"categoryPreferences":{"C0004.ads*":true}}},"integrations":{"a.b":false}}`)
	if got := receivers(dests, ev); !slices.Equal(got, []string{"Google Ads (Classic)"}) {
		t.Errorf("receivers %v, want only Google Ads (Classic)", got)
	}
}

func TestRouteAllocatesNothing(t *testing.T) {
	r := New(overlap)
	ev := event(`{"categoryPreferences":{"ad":true,"analytics":true}}`, `{"All":true,"facebook":{"x":1},"amplitude":false}`)
	out := make([]Outcome, 0, 8)
	if n := testing.AllocsPerRun(100, func() { out = r.Route(ev, out) }); n != 0 {
		t.Errorf("Route allocates %.1f times per event, want 0", n)
	}
}

func FuzzRoute(f *testing.F) {
	f.Add([]byte(event(`{"categoryPreferences":{"ad":true}}`, `{"All":false}`)))
	f.Add([]byte(`{"context":{"consent":`))
	f.Add([]byte(`[1,2`))
	r := New(overlap)
	f.Fuzz(func(t *testing.T, ev []byte) {
		out := r.Route(ev, nil)
		if len(out) != len(overlap) {
			t.Fatalf("%d outcomes for %d destinations", len(out), len(overlap))
		}
	})
}

func BenchmarkRoute(b *testing.B) {
	r := New(overlap)
	ev := event(`{"categoryPreferences":{"ad":true,"analytics":true}}`, `{"facebook":true,"amplitude":false}`)
	out := make([]Outcome, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		out = r.Route(ev, out)
	}
}

// TestWithheld: Withheld names the categories that made Route filter a
// destination by consent, and none for a destination it did not filter so.
func TestWithheld(t *testing.T) {
	consents := []string{"", `{}`, `null`, `{"categoryPreferences":{"ad":true}}`, `{"categoryPreferences":{"ad":false,"analytics":true}}`,
		`{"categoryPreferences":{"ad":true,"ad":false}}`, `{"categoryPreference":{"analytics":true}}`,
		`{"categoryPreferences":{` + manyCategories(30) + `"analytics":{"consented":true}}}`}
	r := New(overlap)
	for _, c := range consents {
		ev := event(c, `{"All":false,"facebook":true}`)
		out := r.Route(ev, nil)
		for i, o := range out {
			w := r.Withheld(ev, i)
			if (o == FilteredByConsent) != (len(w) > 0) {
				t.Errorf("consent %s, %s: outcome %v but withheld %v", c, overlap[i].Name, o, w)
			}
		}
	}
	ev := event(`{"categoryPreferences":{"ad":false}}`, "")
	if w := r.Withheld(ev, 0); !slices.Equal(w, []string{"ad", "analytics"}) {
		t.Errorf("facebook withheld %v, want [ad analytics] (ad false, analytics missing)", w)
	}
}
