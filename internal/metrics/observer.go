package metrics

import (
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/runtime"
	"github.com/prometheus/client_golang/prometheus"
)

// Observer records what the server's counters do not count: each function
// run's duration, error kind and retries, and events received by source
// and type. Get one from [Metrics.Observer]. It is safe for concurrent
// use, and a nil *Observer records nothing (so a caller may hold one
// unconditionally).
//
// The first call for a function name, error kind or source creates its
// series (and allocates); every later call allocates nothing.
type Observer struct {
	duration *prometheus.HistogramVec // function
	errors   *prometheus.CounterVec   // function, kind
	retries  *prometheus.CounterVec   // function
	received *prometheus.CounterVec   // source, type

	mu      sync.Mutex // serialises adding to fns and sources
	fns     atomic.Pointer[map[string]*functionSeries]
	sources atomic.Pointer[map[string]*[len(eventTypes)]prometheus.Counter]
}

// functionSeries are one function's series, resolved once.
type functionSeries struct {
	label    string // the function label's value (owned)
	duration prometheus.Observer
	retries  prometheus.Counter
	kinds    atomic.Pointer[map[runtime.ErrorKind]prometheus.Counter]
}

// eventTypes are the values of the type label of events_received_total;
// any other type counts as "other".
var eventTypes = [...]string{"track", "identify", "page", "screen", "group", "alias", "other"}

func newObserver(buckets []float64) *Observer {
	o := &Observer{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "insertfn_function_duration_seconds",
			Help:    "Time a function's guest call took on one event (the last attempt's), sampled: one call in sixteen is timed.",
			Buckets: buckets,
		}, []string{"function"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "insertfn_function_errors_total",
			Help: "Function runs that ended in an error, by kind: an error the function returned (EventNotSupported, InvalidEventPayload, ValidationError, RetryError, FunctionError) or a sandbox failure (Timeout, Trap, MemoryLimit, GuestExit, ABIViolation, EventTooLarge, LogLimit).",
		}, []string{"function", "kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "insertfn_function_retries_total",
			Help: "Extra attempts of function runs after a RetryError.",
		}, []string{"function"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "insertfn_events_received_total",
			Help: "Events received, by source and type (track, identify, page, screen, group, alias, other).",
		}, []string{"source", "type"}),
	}
	o.fns.Store(&map[string]*functionSeries{})
	o.sources.Store(&map[string]*[len(eventTypes)]prometheus.Counter{})
	return o
}

// Describe sends the descriptors of the observer's metrics.
func (o *Observer) Describe(ch chan<- *prometheus.Desc) {
	o.duration.Describe(ch)
	o.errors.Describe(ch)
	o.retries.Describe(ch)
	o.received.Describe(ch)
}

// Collect sends the observer's metrics.
func (o *Observer) Collect(ch chan<- prometheus.Metric) {
	o.duration.Collect(ch)
	o.errors.Collect(ch)
	o.retries.Collect(ch)
	o.received.Collect(ch)
}

// ObserveFunction records one run of a function: its duration (when the
// guest was called), its retries, and its error kind when it failed
// (out.Verdict is runtime.Fail, whatever its failure policy then decided).
// It keeps neither name nor out.
//
// # Parameters
//   - name: the function's name, as configured.
//   - out: the outcome [functions.Registry.Run] filled.
func (o *Observer) ObserveFunction(name string, out *functions.Outcome) {
	if o == nil || out == nil {
		return
	}
	f := (*o.fns.Load())[name]
	if f == nil {
		f = o.addFunction(name)
	}
	if out.Duration > 0 {
		f.duration.Observe(out.Duration.Seconds())
	}
	if out.Attempts > 1 {
		f.retries.Add(float64(out.Attempts - 1))
	}
	if out.Verdict == runtime.Fail {
		c := (*f.kinds.Load())[out.Kind]
		if c == nil {
			c = o.addKind(f, out.Kind)
		}
		c.Inc()
	}
}

func (o *Observer) addFunction(name string) *functionSeries {
	o.mu.Lock()
	defer o.mu.Unlock()
	old := *o.fns.Load()
	if f := old[name]; f != nil {
		return f
	}
	name = strings.Clone(name) // the caller may reuse its bytes; series keep theirs
	label := labelValue(name)
	f := &functionSeries{label: label, duration: o.duration.WithLabelValues(label), retries: o.retries.WithLabelValues(label)}
	f.kinds.Store(&map[runtime.ErrorKind]prometheus.Counter{})
	m := maps.Clone(old)
	m[name] = f
	o.fns.Store(&m)
	return f
}

func (o *Observer) addKind(f *functionSeries, kind runtime.ErrorKind) prometheus.Counter {
	o.mu.Lock()
	defer o.mu.Unlock()
	old := *f.kinds.Load()
	if c := old[kind]; c != nil {
		return c
	}
	kind = runtime.ErrorKind(strings.Clone(string(kind)))
	label := labelValue(string(kind))
	if label == "" {
		label = "unknown"
	}
	c := o.errors.WithLabelValues(f.label, label)
	m := maps.Clone(old)
	m[kind] = c
	f.kinds.Store(&m)
	return c
}

// ObserveEvents counts n events received through source, of type
// eventType (the event's "type" field: track, identify, page, screen,
// group or alias; anything else counts as "other"). It keeps neither
// string.
func (o *Observer) ObserveEvents(source, eventType string, n uint64) {
	if o == nil || n == 0 {
		return
	}
	s := (*o.sources.Load())[source]
	if s == nil {
		s = o.addSource(source)
	}
	s[typeIndex(eventType)].Add(float64(n))
}

func typeIndex(t string) int {
	for i, name := range eventTypes[:len(eventTypes)-1] {
		if t == name {
			return i
		}
	}
	return len(eventTypes) - 1
}

func (o *Observer) addSource(source string) *[len(eventTypes)]prometheus.Counter {
	o.mu.Lock()
	defer o.mu.Unlock()
	old := *o.sources.Load()
	if s := old[source]; s != nil {
		return s
	}
	source = strings.Clone(source)
	label := labelValue(source)
	s := new([len(eventTypes)]prometheus.Counter)
	for i, t := range eventTypes {
		s[i] = o.received.WithLabelValues(label, t)
	}
	m := maps.Clone(old)
	m[source] = s
	o.sources.Store(&m)
	return s
}
