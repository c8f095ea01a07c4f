// Package metrics shows what an insertfn server does: it exposes the
// counters the server, the pipeline, the queue and the function runtime
// already keep to Prometheus, adds what they do not count (function
// durations and errors by kind, consent lookups with their latency), and
// answers the /healthz and /readyz probes.
//
// # Cost on the hot path
//
// Existing counters are read at scrape time by a collector, so counting
// them costs the hot path nothing more than it paid already. What the
// package measures itself ([Observer.ObserveFunction], the store returned by
// [Metrics.InstrumentStore]) allocates nothing per call once a function or
// backend has been seen: label values are resolved to their series once and
// kept.
//
// # State
//
// Every [Metrics] has its own private prometheus.Registry; nothing is
// registered with Prometheus' global default registry, so several servers
// (tests) can live in one process.
//
// # Metrics
//
// All names start with insertfn_. Monotonic counts are counters (suffix
// _total); levels are gauges. Labels: source, type, destination, function,
// reason, kind, result, state, backend. See [New] for the full list.
package metrics
