// Package pipeline is the one place that decides what happens to an
// accepted event: consent updates first, then the source's functions in
// order, then routing by consent to destinations, then each destination's
// own functions. Every step reports to [Counters] here, so the counts add
// up: for each destination, events received = delivered + dropped +
// filtered + failed.
//
// A [Processor] handles one event at a time (safe for concurrent use); the
// [Pipeline] runs processors from the durable queue and hands what they
// produce to delivery.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/pipeline/destfilter"
	"github.com/insertfn/insertfn/internal/pipeline/fql"
	"github.com/insertfn/insertfn/internal/pipeline/routing"
	"github.com/insertfn/insertfn/internal/pipeline/tap"
	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/sdk/segment"
)

// Source is one configured source: the functions its events run through,
// in order.
type Source struct {
	Name      string
	Functions []string
}

// Destination is one configured destination: the consent categories it is
// mapped to and the functions its events run through after routing.
// It is also the destination's entry in the configuration file (with its
// sink's settings beside it), under the keys its tags give.
type Destination struct {
	// Name is the destination's name as an event's integrations object
	// spells it.
	Name string `yaml:"name"`
	// Categories are the consent categories it is mapped to; none: it is
	// unmapped and consent does not restrict it.
	Categories []string `yaml:"categories"`
	// Functions run for this destination only, after routing and its
	// filters.
	Functions []string `yaml:"functions"`
	// Filters are the destination's filters (Segment's Destination
	// Filters, in FQL), in order, after routing and before Functions:
	// they can only take events, or properties of events, away.
	Filters []destfilter.Filter `yaml:"filters"`
}

// Processor turns one accepted event into what each destination receives.
type Processor struct {
	reg      *functions.Registry
	store    *consentstore.Store
	sources  map[string]*Source
	dests    []Destination
	filters  []atomic.Pointer[destfilter.Set] // by destination; nil: none
	router   *routing.Router
	counters *Counters
	logs     *FunctionLogs
	observer Observer // nil: none

	filterMu     sync.Mutex
	filterConfig map[string][]destfilter.Filter // set by SetFilters, by destination
}

// Observer is told about every function run and the events handled
// (metrics: durations, errors by kind, events by source and type): each
// function run as it ends, the events when they are counted (see
// [Counters]). Its methods must be cheap and safe for concurrent use; they
// must not keep the strings or the outcome.
type Observer interface {
	ObserveFunction(name string, out *functions.Outcome)
	ObserveEvents(source, eventType string, n uint64)
}

// NewProcessor returns a processor for the configured sources and
// destinations.
//
// # Parameters
//   - reg: runs functions by name; every function the sources and
//     destinations name must be deployed there before events flow.
//   - store: the consent store that consent preference events
//     ([segment.IsConsentPreference]) update; nil: such events update
//     nothing (they still flow).
//   - sources, dests: the configuration; NewProcessor keeps copies.
//   - counters: where the processor counts; nil: a new one.
func NewProcessor(reg *functions.Registry, store *consentstore.Store, sources []Source, dests []Destination, counters *Counters) (*Processor, error) {
	p := &Processor{reg: reg, store: store, sources: make(map[string]*Source, len(sources)), counters: counters,
		logs: NewFunctionLogs(0)}
	if p.counters == nil {
		p.counters = NewCounters()
	}
	for _, s := range sources {
		if s.Name == "" || len(s.Name) > 255 {
			return nil, fmt.Errorf("pipeline: source name %q: want 1 to 255 bytes", s.Name)
		}
		if _, dup := p.sources[s.Name]; dup {
			return nil, fmt.Errorf("pipeline: source %q configured twice", s.Name)
		}
		s.Functions = append([]string(nil), s.Functions...)
		p.sources[s.Name] = &s
	}
	rd := make([]routing.Destination, len(dests))
	seen := make(map[string]bool, len(dests))
	for i, d := range dests {
		if seen[d.Name] {
			return nil, fmt.Errorf("pipeline: destination %q configured twice", d.Name)
		}
		seen[d.Name] = true
		d.Categories = append([]string(nil), d.Categories...)
		d.Functions = append([]string(nil), d.Functions...)
		d.Filters = append([]destfilter.Filter(nil), d.Filters...)
		if _, err := destfilter.Compile(d.Filters); err != nil {
			return nil, fmt.Errorf("pipeline: destination %q: %w", d.Name, err)
		}
		p.dests = append(p.dests, d)
		rd[i] = routing.Destination{Name: d.Name, Categories: d.Categories}
	}
	p.router = routing.New(rd)
	p.filters = make([]atomic.Pointer[destfilter.Set], len(p.dests))
	for i, d := range p.dests {
		set, _ := destfilter.Compile(d.Filters) // checked above
		p.filters[i].Store(set)
	}
	return p, nil
}

// SetFilters replaces the filters of destination name, for the events
// processed from now on (an event in flight finishes with the filters it
// began with).
//
// # Results
//   - nil, or an error when there is no such destination or a filter
//     does not compile (the filters in place stay).
func (p *Processor) SetFilters(name string, filters []destfilter.Filter) error {
	i := slices.IndexFunc(p.dests, func(d Destination) bool { return d.Name == name })
	if i < 0 {
		return fmt.Errorf("pipeline: %w %q", ErrUnknownDestination, name)
	}
	set, err := destfilter.Compile(filters)
	if err != nil {
		return fmt.Errorf("pipeline: destination %q: %w", name, err)
	}
	p.filters[i].Store(set)
	p.filterMu.Lock()
	defer p.filterMu.Unlock()
	if p.filterConfig == nil {
		p.filterConfig = make(map[string][]destfilter.Filter)
	}
	p.filterConfig[name] = slices.Clone(filters)
	return nil
}

// Filters returns the filters of destination name as they are now, and
// whether there is such a destination.
func (p *Processor) Filters(name string) ([]destfilter.Filter, bool) {
	i := slices.IndexFunc(p.dests, func(d Destination) bool { return d.Name == name })
	if i < 0 {
		return nil, false
	}
	p.filterMu.Lock()
	defer p.filterMu.Unlock()
	if f, ok := p.filterConfig[name]; ok {
		return slices.Clone(f), true
	}
	return slices.Clone(p.dests[i].Filters), true
}

// ErrUnknownDestination is returned for a destination that is not
// configured.
var ErrUnknownDestination = errors.New("no destination called")

// Destinations returns the destinations, in the order of
// [Result.Outputs]. The slice is shared: do not change it.
func (p *Processor) Destinations() []Destination { return p.dests }

// Counters returns the processor's counters.
func (p *Processor) Counters() *Counters { return p.counters }

// SetObserver makes o the processor's observer. Call it before the first
// event.
func (p *Processor) SetObserver(o Observer) { p.observer = o }

// Logs returns the last lines each function logged.
func (p *Processor) Logs() *FunctionLogs { return p.logs }

// Result is what became of one event.
type Result struct {
	// Dropped says a source function dropped the event (or failed under a
	// drop policy): no destination receives it. DropReason says why: the
	// function's DropEvent reason, or its error kind.
	Dropped      bool
	DropFunction string
	DropReason   string
	// Outcomes holds routing's decision per destination (not meaningful
	// when Dropped).
	Outcomes []routing.Outcome
	// Outputs holds, per destination, the event it receives, or nil. An
	// output may share memory with the input event or with other outputs:
	// treat them as read-only.
	Outputs [][]byte
	// DestinationDrops holds, per destination, which of its own functions
	// dropped the event and why (zero when none did).
	DestinationDrops []Drop
	// FilteredBy holds, per destination, the name of the destination
	// filter that dropped the event ("" when none did).
	FilteredBy []string
	// ConsentChanges counts the stored values a consent update changed.
	ConsentChanges int

	update consentUpdate     // what the event did to the consent store
	routed []byte            // the event as routed (after the source's functions)
	run    functions.Outcome // reused across functions and events
	view   fql.Event         // the routed event, read for destination filters
}

// consentUpdate is what an event did to the consent store.
type consentUpdate uint8

const (
	updateNone     consentUpdate = iota // not a consent-preference event, or no store
	updateApplied                       // applied to the store
	updateRejected                      // too malformed to apply
)

// ErrUnknownSource is returned for an event of a source that is not
// configured (the configuration changed while it was queued).
var ErrUnknownSource = errors.New("pipeline: unknown source")

// Process runs one event through the pipeline, fills res (reuse it across
// calls), and counts what became of the event in the processor's
// [Counters] and [Observer].
//
// # Parameters
//   - ctx: bounds the consent update and every function call.
//   - source: the name of the source the event came in through.
//   - event: the normalized event JSON; Process does not keep it.
//
// # Results
//
// nil when the event was handled, whatever became of it (res says);
// otherwise an error that means "try this event again later": the consent
// store could not take an update, or a function could not run at all (ctx
// done, function removed). A function's own failure is not such an error:
// its failure policy decides, and res says. After an error only the
// function runs are counted (each run counts, also when the event is
// processed again later); the event itself is counted when it is handled.
func (p *Processor) Process(ctx context.Context, source string, event []byte, res *Result) error {
	if err := p.run(ctx, source, event, res); err != nil {
		return err
	}
	b := make(flowBatch, 1)
	p.record(b.source(source), eventType(event), res)
	p.count(b)
	return nil
}

// run is Process without counting the event: the pipeline counts the
// events of an inbox item (with record and count) only once the whole item
// is handled, so that an item processed again is counted once.
func (p *Processor) run(ctx context.Context, source string, event []byte, res *Result) error {
	src := p.sources[source]
	if src == nil {
		return fmt.Errorf("%w %q", ErrUnknownSource, source)
	}
	res.Dropped, res.DropFunction, res.DropReason, res.ConsentChanges, res.update, res.routed = false, "", "", 0, updateNone, nil
	res.DestinationDrops = res.DestinationDrops[:0]
	res.FilteredBy = res.FilteredBy[:0]
	res.Outcomes = res.Outcomes[:0]
	res.Outputs = res.Outputs[:0]

	if err := p.updateConsent(ctx, event, res); err != nil {
		return err
	}
	ev, fn, reason, err := p.chain(ctx, src.Functions, event, res)
	if err != nil {
		return err
	}
	if ev == nil {
		res.Dropped, res.DropFunction, res.DropReason = true, fn, reason
		return nil
	}
	res.routed = ev
	res.Outcomes = p.router.Route(ev, res.Outcomes)
	for i := range p.dests {
		d := &p.dests[i]
		var out []byte
		var drop Drop
		filteredBy := ""
		if res.Outcomes[i] == routing.Deliver {
			in := ev
			if set := p.filters[i].Load(); set != nil {
				in, filteredBy = set.Apply(&res.view, ev)
			}
			if in != nil {
				out, drop.Function, drop.Reason, err = p.chain(ctx, d.Functions, in, res)
				if err != nil {
					return err
				}
				if out == nil {
					drop.Count = 1
				}
			}
		}
		res.Outputs = append(res.Outputs, out)
		res.DestinationDrops = append(res.DestinationDrops, drop)
		res.FilteredBy = append(res.FilteredBy, filteredBy)
	}
	return nil
}

// record adds what became of one event of type typ (res, as run left it)
// to c, the counts of the event's source.
func (p *Processor) record(c *flowCounts, typ segment.EventType, res *Result) {
	c.received++
	c.types[typ]++
	switch res.update {
	case updateApplied:
		c.consentUpdates++
	case updateRejected:
		c.consentRejected++
	}
	if res.Dropped {
		addDrop(&c.dropped, res.DropFunction, res.DropReason, 1)
		return
	}
	for i := range res.Outputs {
		switch name := p.dests[i].Name; {
		case res.Outputs[i] != nil:
		case res.Outcomes[i] == routing.FilteredByConsent:
			c.dest(name).filteredConsent++
		case res.Outcomes[i] == routing.FilteredByIntegrations:
			c.dest(name).filteredIntegrations++
		case res.FilteredBy[i] != "":
			addFiltered(&c.dest(name).filtered, res.FilteredBy[i], 1)
		case res.DestinationDrops[i].Count > 0:
			addDrop(&c.dest(name).dropped, res.DestinationDrops[i].Function, res.DestinationDrops[i].Reason, 1)
		}
	}
}

// trace returns the live debugger's record of what became of one event
// (res, as run left it) at now, for the takers of ticket k.
func (p *Processor) trace(now time.Time, source string, event []byte, typ segment.EventType, res *Result, k tap.Ticket) *tap.Record {
	r := &tap.Record{Time: now, Stage: tap.StagePipeline, Source: source, Type: typ.String(), Ticket: k}
	r.ReadEvent(event, k.Full())
	switch res.update {
	case updateApplied:
		// Not how many values it changed: the update was applied on
		// arrival already (Pipeline.Accept), so here it changes nothing.
		r.ConsentUpdate = tap.ConsentApplied
	case updateRejected:
		r.ConsentUpdate = tap.ConsentRejected
	}
	if res.Dropped {
		r.Fate, r.Function, r.Reason = tap.Dropped, res.DropFunction, res.DropReason
		return r
	}
	r.Fate = tap.Filtered
	r.Destinations = make([]tap.DestinationFate, len(res.Outputs))
	for i := range res.Outputs {
		d := &r.Destinations[i]
		d.Name = p.dests[i].Name
		switch {
		case res.Outputs[i] != nil:
			d.Fate, r.Fate = tap.Queued, tap.Routed
		case res.Outcomes[i] == routing.FilteredByConsent:
			d.Fate, d.Categories = tap.FilteredConsent, p.router.Withheld(res.routed, i)
		case res.Outcomes[i] == routing.FilteredByIntegrations:
			d.Fate = tap.FilteredIntegrations
		case res.FilteredBy[i] != "":
			d.Fate, d.Filter = tap.FilteredFilter, res.FilteredBy[i]
		default:
			d.Fate, d.Function, d.Reason = tap.Dropped, res.DestinationDrops[i].Function, res.DestinationDrops[i].Reason
		}
	}
	return r
}

// count adds the events recorded in b to the processor's Counters and
// Observer. It does not keep b.
func (p *Processor) count(b flowBatch) {
	p.counters.add(b)
	if p.observer == nil {
		return
	}
	for source, c := range b {
		for t, n := range c.types {
			if n > 0 {
				p.observer.ObserveEvents(source, segment.EventType(t).String(), n)
			}
		}
	}
}

// chain runs ev through the named functions in order. It returns the event
// as the last function left it, or nil, the function and the reason when a
// function dropped it: its DropEvent reason, or its error kind when it
// failed.
func (p *Processor) chain(ctx context.Context, names []string, ev []byte, res *Result) ([]byte, string, string, error) {
	for _, name := range names {
		out := &res.run
		if err := p.reg.Run(ctx, name, ev, out); err != nil {
			return nil, "", "", fmt.Errorf("pipeline: function %s: %w", name, err)
		}
		p.counters.function(name, out)
		p.logs.record(name, ev, out.Logs)
		if p.observer != nil {
			p.observer.ObserveFunction(name, out)
		}
		if !out.Deliver {
			reason := out.Reason
			if out.Verdict != runtime.Drop {
				reason = string(out.Kind)
			}
			return nil, name, reason, nil
		}
		ev = out.Event
		if ev == nil {
			ev = []byte{} // never nil: nil means dropped
		}
	}
	return ev, "", "", nil
}

// consentUpdate returns the update event makes to the consent store, and
// whether it makes one: false for other events, for a malformed one (the
// pipeline counts it as rejected) and when there is no store.
func (p *Processor) consentUpdate(event []byte) (consentstore.Update, bool) {
	if p.store == nil {
		return consentstore.Update{}, false
	}
	u, ok, err := consentstore.UpdateFromSegment(event)
	return u, ok && err == nil
}

// updateConsent applies a consent-preference event to the store.
func (p *Processor) updateConsent(ctx context.Context, event []byte, res *Result) error {
	if p.store == nil {
		return nil
	}
	u, ok, err := consentstore.UpdateFromSegment(event)
	if !ok {
		return nil
	}
	if err != nil {
		res.update = updateRejected
		return nil // a malformed update changes nothing; the event still flows
	}
	changes, err := p.store.Update(ctx, u)
	if err != nil {
		return fmt.Errorf("pipeline: consent update from %s: %w", u.Source, err)
	}
	res.update = updateApplied
	res.ConsentChanges = len(changes)
	return nil
}

// eventType returns the event's type: read where the ingest writes it
// (first, see segment.LeadingMembers) when it is there, else looked up.
func eventType(event []byte) segment.EventType {
	if t, ok := segment.LeadingType(event); ok {
		return t
	}
	t := gjson.Get(unsafe.String(unsafe.SliceData(event), len(event)), segment.MemberType)
	if t.Type != gjson.String {
		return segment.Other
	}
	return segment.ParseType(t.Str)
}
