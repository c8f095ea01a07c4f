package pipeline

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/insertfn/insertfn/sdk/segment"
)

// DefaultOverviewWindow is how far back an [Overview] remembers.
const DefaultOverviewWindow = 24 * time.Hour

// Overview counts, per source and per minute, what became of events: how
// many were received, dropped by each function (by reason), filtered at
// each destination (by consent, by the integrations object), dropped by a
// destination's functions, delivered and failed. It answers "what happened
// to this source's events in this time window", like Segment's delivery
// overview. It is safe for concurrent use; the pipeline adds to it once per
// batch, not per event.
type Overview struct {
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	minutes map[int64]map[string]*flowCounts // unix minute -> source -> counts
}

// flowCounts are one source's counts in one minute.
type flowCounts struct {
	received uint64
	dropped  map[[2]string]uint64 // {function, reason}
	dests    map[string]*destCounts

	// For Counters and the Observer only (the overview does not show them).
	types           [segment.Delete + 1]uint64 // received, by segment.EventType
	consentUpdates  uint64                     // consent-preference events applied to the store
	consentRejected uint64                     // consent-preference events too malformed to apply
}

type destCounts struct {
	delivered, failed, filteredConsent, filteredIntegrations uint64
	filtered                                                 map[string]uint64 // by destination filter
	dropped                                                  map[[2]string]uint64
}

// NewOverview returns an overview that remembers window (0:
// DefaultOverviewWindow).
func NewOverview(window time.Duration) *Overview {
	if window <= 0 {
		window = DefaultOverviewWindow
	}
	return &Overview{window: window, now: time.Now, minutes: make(map[int64]map[string]*flowCounts)}
}

// Flow is what became of one source's events in a time window.
type Flow struct {
	Source       string            `json:"source"`
	From         time.Time         `json:"from"`
	To           time.Time         `json:"to"`
	Received     uint64            `json:"received"`
	Dropped      []Drop            `json:"dropped"` // by the source's functions
	Destinations []DestinationFlow `json:"destinations"`
}

// Drop counts events a function dropped for one reason.
type Drop struct {
	Function string `json:"function"`
	Reason   string `json:"reason"`
	Count    uint64 `json:"count"`
}

// DestinationFlow is what became of a source's events at one destination.
type DestinationFlow struct {
	Name                 string `json:"name"`
	Delivered            uint64 `json:"delivered"`
	Failed               uint64 `json:"failed"`
	FilteredConsent      uint64 `json:"filtered_consent"`
	FilteredIntegrations uint64 `json:"filtered_integrations"`
	// FilteredByFilter counts the events each of the destination's
	// filters dropped, by filter.
	FilteredByFilter []FilterCount `json:"filtered_filter,omitempty"`
	Dropped          []Drop        `json:"dropped"` // by the destination's functions
}

// FilterCount counts the events one destination filter dropped.
type FilterCount struct {
	Filter string `json:"filter"`
	Count  uint64 `json:"count"`
}

// filterList returns m's counts, sorted by filter.
func filterList(m map[string]uint64) []FilterCount {
	if len(m) == 0 {
		return nil
	}
	out := make([]FilterCount, 0, len(m))
	for name, n := range m {
		out = append(out, FilterCount{Filter: name, Count: n})
	}
	slices.SortFunc(out, func(a, b FilterCount) int { return cmp.Compare(a.Filter, b.Filter) })
	return out
}

// addFiltered adds n to the count of filter in *m.
func addFiltered(m *map[string]uint64, filter string, n uint64) {
	if *m == nil {
		*m = make(map[string]uint64)
	}
	(*m)[filter] += n
}

// Flow sums the counts of source for the minutes from from to to
// (inclusive of the minutes they fall in).
func (o *Overview) Flow(source string, from, to time.Time) Flow {
	o.mu.Lock()
	f := o.sum(source, from.Unix()/60, to.Unix()/60)
	o.mu.Unlock()
	f.From, f.To = from, to
	return f
}

// Minutes returns the counts of source minute by minute, from the minute
// from falls in to the minute to falls in: one Flow per minute, oldest
// first, its From the minute's start and its To the minute's end, with
// zero counts for a minute in which nothing happened. Charts read it.
func (o *Overview) Minutes(source string, from, to time.Time) []Flow {
	lo, hi := from.Unix()/60, to.Unix()/60
	if hi < lo {
		return nil
	}
	out := make([]Flow, 0, hi-lo+1)
	o.mu.Lock()
	defer o.mu.Unlock()
	for m := lo; m <= hi; m++ {
		f := o.sum(source, m, m)
		f.From, f.To = minuteStart(m), minuteStart(m+1).Add(-time.Nanosecond)
		out = append(out, f)
	}
	return out
}

// minuteStart returns the start of unix minute m.
func minuteStart(m int64) time.Time { return time.Unix(m*60, 0).UTC() }

// sum adds up the counts of source from unix minute lo to hi, both
// included. o.mu must be held.
func (o *Overview) sum(source string, lo, hi int64) Flow {
	f := Flow{Source: source}
	drops := make(map[[2]string]uint64)
	dests := make(map[string]*destCounts)
	for m := lo; m <= hi; m++ {
		c := o.minutes[m][source]
		if c == nil {
			continue
		}
		f.Received += c.received
		for k, n := range c.dropped {
			drops[k] += n
		}
		for name, d := range c.dests {
			sum := dests[name]
			if sum == nil {
				sum = &destCounts{dropped: make(map[[2]string]uint64)}
				dests[name] = sum
			}
			sum.delivered += d.delivered
			sum.failed += d.failed
			sum.filteredConsent += d.filteredConsent
			sum.filteredIntegrations += d.filteredIntegrations
			for k, n := range d.dropped {
				sum.dropped[k] += n
			}
			for k, n := range d.filtered {
				addFiltered(&sum.filtered, k, n)
			}
		}
	}
	f.Dropped = dropList(drops)
	for name, d := range dests {
		f.Destinations = append(f.Destinations, DestinationFlow{Name: name, Delivered: d.delivered, Failed: d.failed,
			FilteredConsent: d.filteredConsent, FilteredIntegrations: d.filteredIntegrations,
			FilteredByFilter: filterList(d.filtered), Dropped: dropList(d.dropped)})
	}
	slices.SortFunc(f.Destinations, func(a, b DestinationFlow) int { return cmp.Compare(a.Name, b.Name) })
	return f
}

// Sources returns the sources with counts in the window, sorted.
func (o *Overview) Sources() []string {
	seen := make(map[string]bool)
	o.mu.Lock()
	for _, m := range o.minutes {
		for s := range m {
			seen[s] = true
		}
	}
	o.mu.Unlock()
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func dropList(m map[[2]string]uint64) []Drop {
	out := make([]Drop, 0, len(m))
	for k, n := range m {
		out = append(out, Drop{Function: k[0], Reason: k[1], Count: n})
	}
	slices.SortFunc(out, func(a, b Drop) int {
		if c := cmp.Compare(a.Function, b.Function); c != 0 {
			return c
		}
		return cmp.Compare(a.Reason, b.Reason)
	})
	return out
}

// flowBatch collects a batch's counts before they go into the overview in
// one step.
type flowBatch map[string]*flowCounts

func (b flowBatch) source(s string) *flowCounts {
	c := b[s]
	if c == nil {
		c = &flowCounts{}
		b[s] = c
	}
	return c
}

func (c *flowCounts) dest(name string) *destCounts {
	if c.dests == nil {
		c.dests = make(map[string]*destCounts)
	}
	d := c.dests[name]
	if d == nil {
		d = &destCounts{}
		c.dests[name] = d
	}
	return d
}

func addDrop(m *map[[2]string]uint64, function, reason string, n uint64) {
	if *m == nil {
		*m = make(map[[2]string]uint64)
	}
	k := [2]string{function, reason}
	if _, ok := (*m)[k]; !ok && len(*m) >= MaxReasons {
		k[1] = OtherReason // reasons are a function's text: bounded
	}
	(*m)[k] += n
}

// add merges a batch into the current minute.
func (o *Overview) add(b flowBatch) {
	if len(b) == 0 {
		return
	}
	o.addAt(o.now().Unix()/60, b)
}

// addAt merges a batch into unix minute m and, when m is a minute not
// counted in yet, forgets minutes older than the window.
func (o *Overview) addAt(m int64, b flowBatch) {
	o.mu.Lock()
	defer o.mu.Unlock()
	counts := o.minutes[m]
	if counts == nil {
		counts = make(map[string]*flowCounts)
		o.minutes[m] = counts
		oldest := o.now().Unix()/60 - int64(o.window/time.Minute)
		for k := range o.minutes {
			if k < oldest {
				delete(o.minutes, k)
			}
		}
	}
	flowBatch(counts).merge(b)
}

// merge adds o's counts to b's. It may take o's flowCounts as they are:
// o is not used again.
func (b flowBatch) merge(o flowBatch) {
	for s, c := range o {
		into := b[s]
		if into == nil {
			b[s] = c // o's own counts: nobody else holds them
			continue
		}
		into.received += c.received
		for t, n := range c.types {
			into.types[t] += n
		}
		into.consentUpdates += c.consentUpdates
		into.consentRejected += c.consentRejected
		for k, n := range c.dropped {
			addDrop(&into.dropped, k[0], k[1], n)
		}
		for name, d := range c.dests {
			id := into.dest(name)
			id.delivered += d.delivered
			id.failed += d.failed
			id.filteredConsent += d.filteredConsent
			id.filteredIntegrations += d.filteredIntegrations
			for k, n := range d.filtered {
				addFiltered(&id.filtered, k, n)
			}
			for k, n := range d.dropped {
				addDrop(&id.dropped, k[0], k[1], n)
			}
		}
	}
}

// Add adds the counts of f to the current minute of f.Source, as if the
// pipeline had counted them (From and To are ignored). Tests of what reads
// an overview use it.
func (o *Overview) Add(f Flow) {
	o.add(f.batch())
}

// batch returns the counts of f as a batch of its source.
func (f Flow) batch() flowBatch {
	b := make(flowBatch)
	c := b.source(f.Source)
	c.received = f.Received
	for _, d := range f.Dropped {
		addDrop(&c.dropped, d.Function, d.Reason, d.Count)
	}
	for _, d := range f.Destinations {
		dc := c.dest(d.Name)
		dc.delivered, dc.failed, dc.filteredConsent, dc.filteredIntegrations = d.Delivered, d.Failed, d.FilteredConsent, d.FilteredIntegrations
		for _, x := range d.FilteredByFilter {
			addFiltered(&dc.filtered, x.Filter, x.Count)
		}
		for _, x := range d.Dropped {
			addDrop(&dc.dropped, x.Function, x.Reason, x.Count)
		}
	}
	return b
}
