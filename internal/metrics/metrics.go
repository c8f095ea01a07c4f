package metrics

import (
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/ingest"
	"github.com/insertfn/insertfn/internal/pipeline"
	"github.com/insertfn/insertfn/internal/queue"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources are the parts of a running server whose counters [New] exposes.
// Any of them may be nil: its metrics are then absent (tests pass a
// subset). The parts are only read, at scrape time.
type Sources struct {
	// Counters are the pipeline's counts: events processed, dropped,
	// filtered and delivered, per destination and per function.
	Counters *pipeline.Counters
	// Server is the ingest; its [ingest.Stats] count requests and events.
	Server *ingest.Server
	// Queue is the durable queue: the inbox's and each destination's
	// backlog, dead letters, and the bytes stored.
	Queue queue.Queue
	// Functions is the function registry: each active version's pool of
	// instances.
	Functions *functions.Registry
	// Destinations are the configured destinations' names. Their queue
	// depth is exposed (zero before their first event); the backlog of a
	// destination no longer configured is exposed as long as its queue
	// topic holds items.
	Destinations []string
}

// Options tune [New]. The zero value is usable.
type Options struct {
	// FunctionBuckets are the upper bounds, in seconds, of the buckets of
	// insertfn_function_duration_seconds, increasing; nil:
	// DefaultFunctionBuckets.
	FunctionBuckets []float64
	// LookupBuckets are the upper bounds, in seconds, of the buckets of
	// insertfn_consent_lookup_duration_seconds, increasing; nil:
	// DefaultLookupBuckets.
	LookupBuckets []float64
	// MaxReasons bounds the distinct drop reasons exported for the
	// source-side drops and for each destination (a reason is free text a
	// function chose). The first MaxReasons reasons seen keep their own
	// series; later ones are summed under reason="(other)". 0: 100.
	MaxReasons int
	// OmitRuntime leaves out the Go runtime and process metrics (go_* and
	// process_*), which are otherwise exposed too.
	OmitRuntime bool
}

// DefaultFunctionBuckets are the buckets of the function duration
// histogram: 50µs to 5s (a function's time limit is 1s unless raised).
var DefaultFunctionBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
}

// DefaultLookupBuckets are the buckets of the consent lookup latency
// histogram: 1µs (a cache hit) to 1s (a slow network backend).
var DefaultLookupBuckets = []float64{
	0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025,
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
}

// OtherReason is the reason label under which drop reasons beyond
// [Options.MaxReasons] are summed.
const OtherReason = "(other)"

// Metrics is the Prometheus side of one server: a private registry holding
// the scrape-time collector of the server's counters, the [Observer] of
// function runs and the consent lookup metrics. It is safe for concurrent
// use.
type Metrics struct {
	reg       *prometheus.Registry
	handler   http.Handler
	observer  *Observer
	collector *collector

	lookups       *prometheus.CounterVec   // backend, result
	lookupLatency *prometheus.HistogramVec // backend
}

// New returns the metrics of the server parts in src, registered in a
// registry of their own.
//
// The metrics, all prefixed insertfn_ (counters end in _total):
//
//   - ingest_requests_total, ingest_requests_rejected_total{reason},
//     ingest_events_total, ingest_events_accepted_total,
//     ingest_events_duplicates_total, ingest_events_invalid_total:
//     from [ingest.Server.Stats].
//   - events_received_total{source,type}: from [Observer.ObserveEvents].
//   - pipeline_events_processed_total, pipeline_events_dropped_total{reason}
//     (by source functions), consent_updates_total,
//     consent_updates_rejected_total: from [pipeline.Counters].
//   - destination_events_delivered_total, destination_events_failed_total,
//     destination_events_filtered_total{reason="consent"|"integrations"},
//     destination_events_dropped_total{reason} (by destination functions),
//     all by destination: from [pipeline.Counters].
//   - destination_queue_items and destination_queue_bytes
//     {destination,state="ready"|"in_flight"|"retrying"|"dead"},
//     inbox_queue_items{state}, inbox_queue_bytes{state},
//     queue_used_bytes, queue_limit_bytes: from [queue.Queue] (gauges).
//   - function_events_total{function,result="delivered"|"dropped"|"failed"}:
//     from [pipeline.Counters] ("failed": the failure policy decided).
//   - function_invocations_total, function_instances_started_total,
//     function_instances_discarded_total,
//     function_instances_recycled_total, function_instances_idle (gauge),
//     by function: from the active version's runtime pool; they start
//     again from zero when a new version goes live (Prometheus reads that
//     as a counter reset).
//   - function_duration_seconds{function} (histogram),
//     function_errors_total{function,kind}, function_retries_total{function}:
//     from [Observer.ObserveFunction].
//   - consent_lookups_total{backend,result="found"|"not_found"|"error"},
//     consent_lookup_duration_seconds{backend} (histogram): from the store
//     [Metrics.InstrumentStore] returns.
//
// # Results
//
// An error when opts has buckets that are not increasing.
func New(src Sources, opts Options) (*Metrics, error) {
	if opts.FunctionBuckets == nil {
		opts.FunctionBuckets = DefaultFunctionBuckets
	}
	if opts.LookupBuckets == nil {
		opts.LookupBuckets = DefaultLookupBuckets
	}
	if opts.MaxReasons <= 0 {
		opts.MaxReasons = 100
	}
	if err := checkBuckets(opts.FunctionBuckets); err != nil {
		return nil, fmt.Errorf("metrics: function duration buckets: %w", err)
	}
	if err := checkBuckets(opts.LookupBuckets); err != nil {
		return nil, fmt.Errorf("metrics: consent lookup buckets: %w", err)
	}

	m := &Metrics{reg: prometheus.NewRegistry()}
	m.observer = newObserver(opts.FunctionBuckets)
	m.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "insertfn_consent_lookups_total",
		Help: "Consent record lookups by functions, by store backend and result (found, not_found, error).",
	}, []string{"backend", "result"})
	m.lookupLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "insertfn_consent_lookup_duration_seconds",
		Help:    "Time a consent record lookup took, by store backend.",
		Buckets: opts.LookupBuckets,
	}, []string{"backend"})

	m.collector = newCollector(src, opts.MaxReasons)
	m.reg.MustRegister(m.collector, m.observer, m.lookups, m.lookupLatency)
	if !opts.OmitRuntime {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m.handler = promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A collector that fails must not hide the others.
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
	}))
	return m, nil
}

// Attach replaces what the metrics read at scrape time. The host creates
// the Metrics first (their store wrapper and observer go into the parts it
// builds) and attaches the parts once they exist.
func (m *Metrics) Attach(src Sources) { m.collector.attach(src) }

// Handler returns the handler that serves the metrics in Prometheus'
// exposition formats (mount it at /metrics).
func (m *Metrics) Handler() http.Handler { return m.handler }

// Registry returns the private registry, to register more collectors in or
// to gather from in tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Observer returns the observer of function runs and received events,
// whose series are in m.
func (m *Metrics) Observer() *Observer { return m.observer }

func checkBuckets(b []float64) error {
	if len(b) == 0 {
		return errors.New("none given")
	}
	for i, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("bucket %d is %v; want a finite number of seconds", i, v)
		}
		if i > 0 && v <= b[i-1] {
			return fmt.Errorf("bucket %d (%v) is not above bucket %d (%v); want increasing bounds", i, v, i-1, b[i-1])
		}
	}
	return nil
}
