package metrics

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/ingest"
	"github.com/insertfn/insertfn/internal/pipeline"
	"github.com/insertfn/insertfn/internal/queue"
	"github.com/prometheus/client_golang/prometheus"
)

// collector reads the counters the server's parts keep, at scrape time.
type collector struct {
	src atomic.Pointer[sourceSet] // what to read; replaced by Metrics.Attach

	mu         sync.Mutex // guards the reason sets during a scrape
	maxReasons int
	srcReasons *reasonSet
	dstReasons map[string]*reasonSet
}

// sourceSet is what one scrape reads.
type sourceSet struct {
	counters     *pipeline.Counters
	server       *ingest.Server
	queue        queue.Queue
	functions    *functions.Registry
	destinations []string
}

func newCollector(src Sources, maxReasons int) *collector {
	c := &collector{
		maxReasons: maxReasons,
		srcReasons: newReasonSet(maxReasons),
		dstReasons: make(map[string]*reasonSet),
	}
	c.attach(src)
	return c
}

func (c *collector) attach(src Sources) {
	c.src.Store(&sourceSet{counters: src.Counters, server: src.Server, queue: src.Queue,
		functions: src.Functions, destinations: slices.Clone(src.Destinations)})
}

func counterDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("insertfn_"+name, help, labels, nil)
}

var (
	// Ingest (ingest.Stats).
	descRequests = counterDesc("ingest_requests_total",
		"HTTP requests the ingest answered, refused ones included.")
	descRequestsRejected = counterDesc("ingest_requests_rejected_total",
		"HTTP requests the ingest refused, by reason.", "reason")
	descEvents = counterDesc("ingest_events_total",
		"Events received in authenticated, parsable requests: valid or not, accepted or not.")
	descEventsAccepted = counterDesc("ingest_events_accepted_total",
		"Events handed to the pipeline (stored in the queue's inbox).")
	descEventsDuplicates = counterDesc("ingest_events_duplicates_total",
		"Events answered 200 but not stored because their messageId was seen recently.")
	descEventsInvalid = counterDesc("ingest_events_invalid_total",
		"Events refused by validation.")
	descRequestsCleaned = counterDesc("ingest_requests_cleaned_total",
		"Requests whose body repeated a member name or held invalid UTF-8: stored with the first member of each name and U+FFFD.")

	// Pipeline (pipeline.Counters).
	descProcessed = counterDesc("pipeline_events_processed_total",
		"Events run through the pipeline, counted once each when their request has been handed to the destinations' backlogs.")
	descSourceDropped = counterDesc("pipeline_events_dropped_total",
		"Events a source function dropped (or that failed under a drop policy), by reason: the function's drop reason or its error kind.", "reason")
	descThrottled = counterDesc("ingest_requests_throttled_total",
		"Requests whose events waited for the pipeline to catch up before they were queued (delivery.throttle_bytes).")
	descConsentUpdates = counterDesc("consent_updates_total",
		"Consent preference events applied to the consent store.")
	descConsentRejected = counterDesc("consent_updates_rejected_total",
		"Consent preference events too malformed to apply (the event still flows).")
	descDelivered = counterDesc("destination_events_delivered_total",
		"Events a destination took.", "destination")
	descFailed = counterDesc("destination_events_failed_total",
		"Events a destination failed to take for good (moved to its dead letters).", "destination")
	descRetried = counterDesc("destination_events_retried_total",
		"Delivery attempts of events that failed and were scheduled again (with backoff).", "destination")
	descFiltered = counterDesc("destination_events_filtered_total",
		"Events not sent to a destination by routing, by reason: consent (end user consent) or integrations (the event's integrations object).", "destination", "reason")
	descFilteredByFilter = counterDesc("destination_events_filtered_by_filter_total",
		"Events one of a destination's filters (Segment's Destination Filters, in FQL) dropped, by filter.", "destination", "filter")
	descDestDropped = counterDesc("destination_events_dropped_total",
		"Events a destination's function dropped (or that failed under a drop policy), by reason.", "destination", "reason")
	descFunctionEvents = counterDesc("function_events_total",
		"Events run through a function, by result: delivered, dropped, or failed (the function failed and its failure policy decided).", "function", "result")

	// Queue.
	descDestQueueItems = prometheus.NewDesc("insertfn_destination_queue_items",
		"Items in a destination's queue, by state: ready, in_flight, retrying, dead (dead letters).", []string{"destination", "state"}, nil)
	descDestQueueBytes = prometheus.NewDesc("insertfn_destination_queue_bytes",
		"Data bytes of the items in a destination's queue, by state.", []string{"destination", "state"}, nil)
	descInboxItems = prometheus.NewDesc("insertfn_inbox_queue_items",
		"Items in the inbox (accepted requests not yet processed: the events of one request are one item), by state.", []string{"state"}, nil)
	descInboxBytes = prometheus.NewDesc("insertfn_inbox_queue_bytes",
		"Data bytes of the items in the inbox, by state.", []string{"state"}, nil)
	descQueueUsed = prometheus.NewDesc("insertfn_queue_used_bytes",
		"Bytes stored in the durable queue, counted against its bound (data plus a per-item overhead, dead letters included).", nil, nil)
	descQueueLimit = prometheus.NewDesc("insertfn_queue_limit_bytes",
		"The durable queue's bound; absent when it has none. Ingest answers 429 once used reaches it.", nil, nil)

	// Function runtime pools.
	descInvocations = counterDesc("function_invocations_total",
		"Guest calls of a function's active version (retries included); restarts from zero when a new version goes live.", "function")
	descStarted = counterDesc("function_instances_started_total",
		"Instances of a function's active version started.", "function")
	descDiscarded = counterDesc("function_instances_discarded_total",
		"Instances of a function's active version thrown away after a sandbox failure.", "function")
	descRecycled = counterDesc("function_instances_recycled_total",
		"Instances of a function's active version replaced for growing past their memory high-water mark.", "function")
	descIdle = prometheus.NewDesc("insertfn_function_instances_idle",
		"Instances of a function's active version waiting for an event.", []string{"function"}, nil)
)

var allDescs = []*prometheus.Desc{
	descRequests, descRequestsRejected, descEvents, descEventsAccepted, descEventsDuplicates, descEventsInvalid, descRequestsCleaned,
	descProcessed, descSourceDropped, descThrottled, descConsentUpdates, descConsentRejected,
	descDelivered, descFailed, descRetried, descFiltered, descDestDropped, descFunctionEvents,
	descDestQueueItems, descDestQueueBytes, descInboxItems, descInboxBytes, descQueueUsed, descQueueLimit,
	descInvocations, descStarted, descDiscarded, descRecycled, descIdle,
}

// Describe sends the descriptors of every metric the collector may send.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect reads the counters now.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	src := c.src.Load()
	if src.server != nil {
		c.collectServer(ch, src.server.Stats())
	}
	if src.counters != nil {
		c.collectPipeline(ch, src, src.counters.Snapshot())
	}
	if src.queue != nil {
		c.collectQueue(ch, src)
	}
	if src.functions != nil {
		c.collectFunctions(ch, src)
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge[N int | int64](ch chan<- prometheus.Metric, d *prometheus.Desc, v N, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
}

func (c *collector) collectServer(ch chan<- prometheus.Metric, s ingest.Stats) {
	counter(ch, descRequests, s.Requests)
	counter(ch, descEvents, s.Events)
	counter(ch, descEventsAccepted, s.Accepted)
	counter(ch, descEventsDuplicates, s.Duplicates)
	counter(ch, descEventsInvalid, s.Rejected.InvalidEvents)
	counter(ch, descRequestsCleaned, s.Cleaned)
	r := s.Rejected
	for _, x := range []struct {
		reason string
		n      uint64
	}{
		{"not_found", r.NotFound}, {"method_not_allowed", r.MethodNotAllowed}, {"unauthorized", r.Unauthorized},
		{"malformed", r.Malformed}, {"too_large", r.TooLarge}, {"backpressure", r.Backpressure},
		{"store_failed", r.StoreFailed},
	} {
		counter(ch, descRequestsRejected, x.n, x.reason)
	}
}

func (c *collector) collectPipeline(ch chan<- prometheus.Metric, src *sourceSet, s pipeline.Snapshot) {
	counter(ch, descProcessed, s.Processed)
	counter(ch, descThrottled, s.Throttled)
	counter(ch, descConsentUpdates, s.ConsentUpdates)
	counter(ch, descConsentRejected, s.ConsentRejected)

	c.mu.Lock()
	srcDrops := c.srcReasons.fold(s.Dropped)
	dstDrops := make(map[string]map[string]uint64, len(s.Destinations))
	for name, d := range s.Destinations {
		rs := c.dstReasons[name]
		if rs == nil {
			rs = newReasonSet(c.maxReasons)
			c.dstReasons[name] = rs
		}
		dstDrops[name] = rs.fold(d.Dropped)
	}
	c.mu.Unlock()

	for reason, n := range srcDrops {
		counter(ch, descSourceDropped, n, reason)
	}
	for name, d := range s.Destinations {
		dest := labelValue(name)
		counter(ch, descDelivered, d.Delivered, dest)
		counter(ch, descFailed, d.Failed, dest)
		counter(ch, descRetried, d.Retried, dest)
		counter(ch, descFiltered, d.FilteredConsent, dest, "consent")
		counter(ch, descFiltered, d.FilteredIntegrations, dest, "integrations")
		for filter, n := range d.FilteredByFilter {
			counter(ch, descFilteredByFilter, n, dest, labelValue(filter))
		}
		for reason, n := range dstDrops[name] {
			counter(ch, descDestDropped, n, dest, reason)
		}
	}
	// A configured destination shows zeros before its first event, so
	// that its series exist from the start.
	for _, name := range src.destinations {
		if _, ok := s.Destinations[name]; ok {
			continue
		}
		dest := labelValue(name)
		counter(ch, descDelivered, 0, dest)
		counter(ch, descFailed, 0, dest)
		counter(ch, descRetried, 0, dest)
		counter(ch, descFiltered, 0, dest, "consent")
		counter(ch, descFiltered, 0, dest, "integrations")
	}
	for name, f := range s.Functions {
		fn := labelValue(name)
		counter(ch, descFunctionEvents, f.Delivered, fn, "delivered")
		counter(ch, descFunctionEvents, f.Dropped, fn, "dropped")
		counter(ch, descFunctionEvents, f.Failed, fn, "failed")
	}
}

func (c *collector) collectQueue(ch chan<- prometheus.Metric, src *sourceSet) {
	q := src.queue
	inbox, err := q.Stats(queue.InboxTopic)
	if errors.Is(err, queue.ErrClosed) {
		return // shutting down: no queue metrics rather than zeros
	}
	queueStats(ch, descInboxItems, descInboxBytes, inbox)

	names := slices.Clone(src.destinations)
	for _, name := range q.Destinations() {
		if !slices.Contains(src.destinations, name) {
			names = append(names, name)
		}
	}
	for i, name := range names {
		st, err := q.Stats(queue.DestinationTopic(name))
		if err != nil && !errors.Is(err, queue.ErrNotFound) {
			continue
		}
		configured := i < len(src.destinations)
		if !configured && st == (queue.Stats{}) {
			continue // a destination removed from the configuration, its queue empty
		}
		queueStats(ch, descDestQueueItems, descDestQueueBytes, st, labelValue(name))
	}

	used, limit := q.Usage()
	gauge(ch, descQueueUsed, used)
	if limit >= 0 {
		gauge(ch, descQueueLimit, limit)
	}
}

// queueStats sends a topic's items and bytes by state; labels precede the
// state label.
func queueStats(ch chan<- prometheus.Metric, items, bytes *prometheus.Desc, s queue.Stats, labels ...string) {
	for _, x := range []struct {
		state string
		n     int
		b     int64
	}{
		{"ready", s.Ready, s.ReadyBytes}, {"in_flight", s.InFlight, s.InFlightBytes},
		{"retrying", s.Retrying, s.RetryingBytes}, {"dead", s.Dead, s.DeadBytes},
	} {
		l := append(labels[:len(labels):len(labels)], x.state)
		gauge(ch, items, x.n, l...)
		gauge(ch, bytes, x.b, l...)
	}
}

func (c *collector) collectFunctions(ch chan<- prometheus.Metric, src *sourceSet) {
	for _, name := range src.functions.Names() {
		v, err := src.functions.Active(name)
		if err != nil || v.Function() == nil {
			continue // removed since Names
		}
		st := v.Function().Stats()
		fn := labelValue(name)
		counter(ch, descInvocations, st.Invocations, fn)
		counter(ch, descStarted, st.Started, fn)
		counter(ch, descDiscarded, st.Discarded, fn)
		counter(ch, descRecycled, st.Recycled, fn)
		gauge(ch, descIdle, st.Idle, fn)
	}
}

// reasonSet bounds the distinct reason label values of one scope: the
// first max reasons seen are admitted for good; later ones are summed
// under OtherReason. Not safe for concurrent use.
type reasonSet struct {
	max      int
	admitted map[string]struct{}
}

func newReasonSet(max int) *reasonSet {
	return &reasonSet{max: max, admitted: make(map[string]struct{})}
}

// fold returns counts by label value: in's reasons made valid label
// values, those not admitted summed under OtherReason. Reasons new to the
// set are admitted in sorted order, so which are admitted does not depend
// on map order.
func (r *reasonSet) fold(in map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(in))
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := labelValue(k)
		if v == "" {
			v = "(none)"
		}
		if _, ok := r.admitted[v]; !ok {
			if len(r.admitted) < r.max {
				r.admitted[v] = struct{}{}
			} else {
				v = OtherReason
			}
		}
		out[v] += in[k]
	}
	return out
}

// maxLabelLen bounds a label value taken from configuration or from a
// function (a drop reason), in bytes.
const maxLabelLen = 128

// labelValue makes s a label value Prometheus accepts: valid UTF-8, at
// most maxLabelLen bytes (cut at a character boundary).
func labelValue(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= maxLabelLen {
		return s
	}
	n := maxLabelLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
