package pipeline

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/insertfn/insertfn/functions"
)

// Counters count what the pipeline did with events, for metrics and tests.
// They are safe for concurrent use; [Counters.Snapshot] reads them.
//
// For each destination: every event processed (not dropped by a source
// function) is delivered, dropped by a destination function, filtered by
// consent, filtered by integrations, filtered by a destination filter, or
// failed in delivery.
//
// An event is counted once, when it is handled: the pipeline counts the
// events of an inbox item (one request) when the item has been handed to
// the destinations' backlogs, so an item that must wait and is processed
// again is not counted twice. Function counts are the exception: they
// count runs, and the functions of an event processed again run again.
type Counters struct {
	processed       atomic.Uint64
	consentUpdates  atomic.Uint64
	consentRejected atomic.Uint64
	throttled       atomic.Uint64 // Accepts that waited for the pipeline

	mu    sync.RWMutex
	drops map[string]*atomic.Uint64 // source-side drops by reason
	dests map[string]*DestinationCounters
	fns   map[string]*FunctionCounters
}

// DestinationCounters count one destination's events.
type DestinationCounters struct {
	filteredConsent      atomic.Uint64
	filteredIntegrations atomic.Uint64
	delivered            atomic.Uint64
	failed               atomic.Uint64
	retried              atomic.Uint64

	mu       sync.Mutex
	drops    map[string]uint64 // by a destination function, by reason
	filtered map[string]uint64 // by destination filter
}

// FunctionCounters count one function's runs.
type FunctionCounters struct {
	runs, delivered, dropped, policyApplied atomic.Uint64
}

// NewCounters returns zeroed counters.
func NewCounters() *Counters {
	return &Counters{
		drops: make(map[string]*atomic.Uint64),
		dests: make(map[string]*DestinationCounters),
		fns:   make(map[string]*FunctionCounters),
	}
}

// Delivered counts n events delivered to destination name.
func (c *Counters) Delivered(name string, n int) { c.destination(name).delivered.Add(uint64(n)) }

// Retried counts n events destination name failed to take that were
// scheduled again.
func (c *Counters) Retried(name string, n int) { c.destination(name).retried.Add(uint64(n)) }

// Failed counts n events destination name could not take (dead letters).
func (c *Counters) Failed(name string, n int) { c.destination(name).failed.Add(uint64(n)) }

// MaxReasons bounds the distinct drop reasons counted per place (source
// functions, each destination): reasons are text a function chooses, so
// past the bound they are counted together as OtherReason.
const MaxReasons = 100

// OtherReason is where reasons past MaxReasons are counted.
const OtherReason = "(other)"

func (c *Counters) drop(reason string, count uint64) {
	c.mu.RLock()
	n := c.drops[reason]
	c.mu.RUnlock()
	if n == nil {
		c.mu.Lock()
		if len(c.drops) >= MaxReasons {
			reason = OtherReason
		}
		if n = c.drops[reason]; n == nil {
			n = new(atomic.Uint64)
			c.drops[reason] = n
		}
		c.mu.Unlock()
	}
	n.Add(count)
}

func (c *Counters) destination(name string) *DestinationCounters {
	c.mu.RLock()
	d := c.dests[name]
	c.mu.RUnlock()
	if d == nil {
		c.mu.Lock()
		if d = c.dests[name]; d == nil {
			d = &DestinationCounters{drops: make(map[string]uint64)}
			c.dests[name] = d
		}
		c.mu.Unlock()
	}
	return d
}

func (d *DestinationCounters) dropped(reason string, n uint64) {
	d.mu.Lock()
	if _, ok := d.drops[reason]; !ok && len(d.drops) >= MaxReasons {
		reason = OtherReason
	}
	d.drops[reason] += n
	d.mu.Unlock()
}

// add counts the events recorded in b: each was processed, and what
// became of it at the source's functions and at each destination.
func (c *Counters) add(b flowBatch) {
	for _, f := range b {
		c.processed.Add(f.received)
		c.consentUpdates.Add(f.consentUpdates)
		c.consentRejected.Add(f.consentRejected)
		for k, n := range f.dropped {
			c.drop(k[1], n)
		}
		for name, d := range f.dests {
			dc := c.destination(name)
			dc.filteredConsent.Add(d.filteredConsent)
			dc.filteredIntegrations.Add(d.filteredIntegrations)
			for k, n := range d.dropped {
				dc.dropped(k[1], n)
			}
			if len(d.filtered) > 0 {
				dc.mu.Lock()
				for k, n := range d.filtered {
					addFiltered(&dc.filtered, k, n)
				}
				dc.mu.Unlock()
			}
		}
	}
}

func (c *Counters) function(name string, out *functions.Outcome) {
	c.mu.RLock()
	f := c.fns[name]
	c.mu.RUnlock()
	if f == nil {
		c.mu.Lock()
		if f = c.fns[name]; f == nil {
			f = new(FunctionCounters)
			c.fns[name] = f
		}
		c.mu.Unlock()
	}
	f.runs.Add(1)
	switch {
	case out.PolicyApplied:
		f.policyApplied.Add(1)
	case out.Deliver:
		f.delivered.Add(1)
	default:
		f.dropped.Add(1)
	}
}

// Snapshot is a copy of the counters at one moment.
type Snapshot struct {
	Processed       uint64 `json:"processed"`
	ConsentUpdates  uint64 `json:"consent_updates"`
	ConsentRejected uint64 `json:"consent_rejected"`
	// Throttled counts the requests whose events waited for the pipeline
	// to catch up before they were queued (Options.ThrottleBytes).
	Throttled    uint64                         `json:"throttled"`
	Dropped      map[string]uint64              `json:"dropped"` // by source functions, by reason
	Destinations map[string]DestinationSnapshot `json:"destinations"`
	Functions    map[string]FunctionSnapshot    `json:"functions"`
}

// DestinationSnapshot is one destination's counts.
type DestinationSnapshot struct {
	Delivered            uint64            `json:"delivered"`
	Failed               uint64            `json:"failed"`
	Retried              uint64            `json:"retried"`
	FilteredConsent      uint64            `json:"filtered_consent"`
	FilteredIntegrations uint64            `json:"filtered_integrations"`
	FilteredByFilter     map[string]uint64 `json:"filtered_filter"` // by destination filter
	Dropped              map[string]uint64 `json:"dropped"`         // by destination functions, by reason
}

// FunctionSnapshot is one function's counts.
type FunctionSnapshot struct {
	Runs      uint64 `json:"runs"`
	Delivered uint64 `json:"delivered"`
	Dropped   uint64 `json:"dropped"`
	Failed    uint64 `json:"failed"` // failure policy applied
}

// Snapshot returns the current counts.
func (c *Counters) Snapshot() Snapshot {
	s := Snapshot{
		Processed:       c.processed.Load(),
		ConsentUpdates:  c.consentUpdates.Load(),
		ConsentRejected: c.consentRejected.Load(),
		Throttled:       c.throttled.Load(),
		Dropped:         make(map[string]uint64),
		Destinations:    make(map[string]DestinationSnapshot),
		Functions:       make(map[string]FunctionSnapshot),
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for r, n := range c.drops {
		s.Dropped[r] = n.Load()
	}
	for name, d := range c.dests {
		d.mu.Lock()
		drops, filtered := maps.Clone(d.drops), maps.Clone(d.filtered)
		d.mu.Unlock()
		if filtered == nil {
			filtered = make(map[string]uint64)
		}
		s.Destinations[name] = DestinationSnapshot{Delivered: d.delivered.Load(), Failed: d.failed.Load(), Retried: d.retried.Load(),
			FilteredConsent: d.filteredConsent.Load(), FilteredIntegrations: d.filteredIntegrations.Load(), FilteredByFilter: filtered, Dropped: drops}
	}
	for name, f := range c.fns {
		s.Functions[name] = FunctionSnapshot{Runs: f.runs.Load(), Delivered: f.delivered.Load(), Dropped: f.dropped.Load(), Failed: f.policyApplied.Load()}
	}
	return s
}
