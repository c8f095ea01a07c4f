package pipeline

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/pipeline/destfilter"
	"github.com/insertfn/insertfn/internal/pipeline/routing"
	"github.com/insertfn/insertfn/internal/wasmbuild"
	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/sdk/consent"
)

var builder *wasmbuild.Builder

func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m, &builder)) }

var ctx = context.Background()

// newProcessor deploys the consent-match example as the source function of
// source "web", with destinations ads (Advertising), analytics (Analytics)
// and a raw archive (unmapped), over a memory consent store holding u1.
func newProcessor(t *testing.T, destFns ...string) (*Processor, *consentstore.Store) {
	t.Helper()
	return newProcessorOn(t, consentstore.NewMemory(), destFns...)
}

// newProcessorOn is newProcessor with the consent store over b.
func newProcessorOn(t *testing.T, b consentstore.Backend, destFns ...string) (*Processor, *consentstore.Store) {
	t.Helper()
	eng, err := runtime.NewEngine(runtime.Config{CacheDir: wasmbuild.CompilationCache()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	store := consentstore.New(b, consentstore.Options{})
	if _, err := store.Update(ctx, consentstore.Update{Source: "test", Record: consent.Record{ID: "u1",
		Categories: []consent.Category{{Name: "Advertising", Consented: true, Timestamp: 1000}, {Name: "Analytics", Consented: false, Timestamp: 1000}}}}); err != nil {
		t.Fatal(err)
	}
	reg := functions.NewRegistry(eng, store)
	t.Cleanup(func() { reg.Close(context.Background()) })
	wasm := builder.Build(t, "../../examples/consent-match")
	if _, err := reg.Deploy(ctx, functions.Manifest{Name: "consent-match", Settings: []byte(`{"missingRecord":"drop"}`)}, wasm); err != nil {
		t.Fatal(err)
	}
	p, err := NewProcessor(reg, store, []Source{{Name: "web", Functions: []string{"consent-match"}}}, []Destination{
		{Name: "ads", Categories: []string{"Advertising"}, Functions: destFns},
		{Name: "analytics", Categories: []string{"Analytics"}},
		{Name: "archive"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, store
}

func receivers(p *Processor, res *Result) []string {
	var out []string
	for i, o := range res.Outputs {
		if o != nil {
			out = append(out, p.Destinations()[i].Name)
		}
	}
	return out
}

func TestProcess(t *testing.T) {
	p, store := newProcessor(t)
	var res Result

	// Consent agrees with the store: routed by consent.
	match := []byte(`{"type":"track","event":"Viewed","userId":"u1","messageId":"m1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}}}`)
	if err := p.Process(ctx, "web", match, &res); err != nil {
		t.Fatal(err)
	}
	if res.Dropped || !slices.Equal(receivers(p, &res), []string{"ads", "archive"}) {
		t.Errorf("matching event: dropped=%t receivers %v, want ads and archive", res.Dropped, receivers(p, &res))
	}
	if !slices.Equal(res.Outcomes, []routing.Outcome{routing.Deliver, routing.FilteredByConsent, routing.Deliver}) {
		t.Errorf("outcomes %v", res.Outcomes)
	}

	// Stale consent on the event: dropped for every destination.
	stale := []byte(`{"type":"track","event":"Viewed","userId":"u1","messageId":"m2","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}}`)
	if err := p.Process(ctx, "web", stale, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Dropped || res.DropReason != "Consent mismatch" || len(receivers(p, &res)) != 0 {
		t.Errorf("stale event: dropped=%t reason %q receivers %v, want dropped for Consent mismatch", res.Dropped, res.DropReason, receivers(p, &res))
	}

	// A consent preference event updates the store before the function
	// runs: the event itself then matches, and so do later events.
	pref := []byte(`{"type":"track","event":"Segment Consent Preference Updated","userId":"u1","messageId":"m3","timestamp":"2026-11-23T10:00:00.000Z","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}}`)
	if err := p.Process(ctx, "web", pref, &res); err != nil {
		t.Fatal(err)
	}
	if res.Dropped || res.ConsentChanges != 1 {
		t.Errorf("preference event: dropped=%t (%s), %d consent changes; want delivered, 1 change", res.Dropped, res.DropReason, res.ConsentChanges)
	}
	if r, _ := store.Get(ctx, "u1"); r == nil || !r.CategoryMap()["Analytics"] {
		t.Errorf("store after the preference event: %+v, want Analytics true", r)
	}
	if err := p.Process(ctx, "web", stale, &res); err != nil {
		t.Fatal(err)
	}
	if res.Dropped || !slices.Equal(receivers(p, &res), []string{"ads", "analytics", "archive"}) {
		t.Errorf("formerly stale event: dropped=%t receivers %v, want all three", res.Dropped, receivers(p, &res))
	}

	// Unknown people are dropped by the function's setting.
	if err := p.Process(ctx, "web", []byte(`{"type":"track","event":"x","userId":"nobody","context":{"consent":{"categoryPreferences":{}}}}`), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Dropped || res.DropReason != "No stored consent" {
		t.Errorf("unknown person: dropped=%t reason %q", res.Dropped, res.DropReason)
	}

	if err := p.Process(ctx, "mobile", match, &res); err == nil {
		t.Error("an unknown source was processed")
	}

	s := p.Counters().Snapshot()
	if s.Processed != 5 || s.Dropped["Consent mismatch"] != 1 || s.Dropped["No stored consent"] != 1 || s.ConsentUpdates != 1 {
		t.Errorf("counters %+v", s)
	}
	if d := s.Destinations["analytics"]; d.FilteredConsent != 1 {
		t.Errorf("analytics counters %+v, want 1 filtered by consent", d)
	}
	if f := s.Functions["consent-match"]; f.Runs != 5 || f.Dropped != 2 || f.Delivered != 3 {
		t.Errorf("function counters %+v", f)
	}
}

func TestDestinationFunctions(t *testing.T) {
	p, _ := newProcessor(t, "consent-match")
	var res Result
	// The ads destination runs consent-match again: it passes.
	ev := []byte(`{"type":"track","event":"Viewed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}}}`)
	if err := p.Process(ctx, "web", ev, &res); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(receivers(p, &res), []string{"ads", "archive"}) {
		t.Errorf("receivers %v", receivers(p, &res))
	}
}

// TestProcessJudgesByConsentAtReceipt: an event is judged by the consent
// stored as of its receipt (receivedAt), so one that waited in the queue
// while the person changed their mind is not dropped for carrying the
// choice it was sent under; an event received after the change is judged
// by the new choice.
func TestProcessJudgesByConsentAtReceipt(t *testing.T) {
	p, store := newProcessor(t)
	change := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if _, err := store.Update(ctx, consentstore.Update{Source: "test", Record: consent.Record{ID: "u1",
		Categories: []consent.Category{{Name: "Advertising", Consented: false, Timestamp: change.UnixMilli()}}}}); err != nil {
		t.Fatal(err)
	}
	event := func(id, receivedAt string) []byte {
		return []byte(`{"type":"track","event":"Viewed","userId":"u1","messageId":"` + id + `",` +
			`"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}},"receivedAt":"` + receivedAt + `"}`)
	}
	var res Result
	if err := p.Process(ctx, "web", event("before", "2026-12-01T09:59:59.999Z"), &res); err != nil {
		t.Fatal(err)
	}
	if res.Dropped || !slices.Equal(receivers(p, &res), []string{"ads", "archive"}) {
		t.Errorf("an event received before the change, carrying the choice of then: dropped=%t (%s) receivers %v; want ads and archive",
			res.Dropped, res.DropReason, receivers(p, &res))
	}
	if err := p.Process(ctx, "web", event("after", "2026-12-01T10:00:00.001Z"), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Dropped || res.DropReason != "Consent mismatch" {
		t.Errorf("an event received after the change, carrying the old choice: dropped=%t (%s); want a Consent mismatch", res.Dropped, res.DropReason)
	}
	// Someone who had decided nothing by the event's receipt has no
	// record for it (consent-match's missingRecord here: drop).
	if _, err := store.Update(ctx, consentstore.Update{Source: "test", Record: consent.Record{ID: "u2",
		Categories: []consent.Category{{Name: "Advertising", Consented: true, Timestamp: change.UnixMilli()}}}}); err != nil {
		t.Fatal(err)
	}
	early := []byte(`{"type":"track","event":"Viewed","userId":"u2","messageId":"u2-early","context":{"consent":{"categoryPreferences":{"Advertising":true}}},"receivedAt":"2026-12-01T09:00:00.000Z"}`)
	if err := p.Process(ctx, "web", early, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Dropped || res.DropReason != "No stored consent" {
		t.Errorf("an event received before its person decided anything: dropped=%t (%s); want No stored consent", res.Dropped, res.DropReason)
	}
}

// TestSetFilters: filters set while the processor runs apply to the next
// event; a filter that does not compile leaves the ones in place.
func TestSetFilters(t *testing.T) {
	p, _ := newProcessor(t)
	var res Result
	ev := event("m1", true, false)
	archive := slices.IndexFunc(p.Destinations(), func(d Destination) bool { return d.Name == "archive" })
	run := func() string {
		t.Helper()
		if err := p.Process(ctx, "web", ev, &res); err != nil {
			t.Fatal(err)
		}
		return res.FilteredBy[archive]
	}
	if by := run(); by != "" {
		t.Fatalf("filtered by %q before any filter", by)
	}
	if err := p.SetFilters("archive", []destfilter.Filter{{Name: "no-views", If: `event = 'Viewed'`, Action: destfilter.Drop}}); err != nil {
		t.Fatal(err)
	}
	if by := run(); by != "no-views" || res.Outputs[archive] != nil {
		t.Errorf("after SetFilters: filtered by %q, output %s; want no-views, none", by, res.Outputs[archive])
	}
	if err := p.SetFilters("archive", []destfilter.Filter{{Name: "bad", If: `event =`, Action: destfilter.Drop}}); err == nil {
		t.Error("a filter that does not parse was taken")
	}
	if f, ok := p.Filters("archive"); !ok || len(f) != 1 || f[0].Name != "no-views" {
		t.Errorf("Filters after a refused set: %+v, %v; want no-views still", f, ok)
	}
	if by := run(); by != "no-views" {
		t.Errorf("after a refused set: filtered by %q, want no-views still", by)
	}
	if err := p.SetFilters("nowhere", nil); !errors.Is(err, ErrUnknownDestination) {
		t.Errorf("SetFilters of an unknown destination: %v", err)
	}
	if s := p.Counters().Snapshot(); s.Destinations["archive"].FilteredByFilter["no-views"] != 2 {
		t.Errorf("counters: %+v, want 2 filtered by no-views at archive", s.Destinations["archive"])
	}
}
