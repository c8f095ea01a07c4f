package overview

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The series a recorder keeps, by kind: what the overview charts besides
// the per-source flows ([pipeline.Overview] counts those itself).
const (
	// kindRuns: function runs, A the function, B the result (delivered,
	// dropped, failed), from insertfn_function_events_total.
	kindRuns = "runs"
	// kindErrors: function errors, A the function, B the error kind, from
	// insertfn_function_errors_total.
	kindErrors = "errors"
	// kindDuration: function durations, A the function, B a bucket's upper
	// bound, from the insertfn_function_duration_seconds histogram.
	kindDuration = "duration"
	// kindLookups: consent lookups, A the backend, B the result (found,
	// not_found, error), from insertfn_consent_lookups_total.
	kindLookups = "lookups"
	// kindDead: dead letters, A the destination, a gauge (the last value
	// read in the minute), from insertfn_destination_queue_items{state="dead"}.
	kindDead = "dead"
)

// seriesKey names one series a recorder keeps.
type seriesKey struct {
	Kind string `json:"kind"`
	A    string `json:"a"`
	B    string `json:"b,omitempty"`
}

// recorder reads cumulative totals from Prometheus metrics every few
// seconds and keeps per-minute amounts: for a counter, how much it grew
// in the minute; for a gauge, its last value. A counter that went down
// started again from zero (a restart, a new function version), so all of
// its value is new. It is safe for concurrent use.
type recorder struct {
	gather prometheus.Gatherer
	window time.Duration

	mu      sync.Mutex
	prev    map[seriesKey]float64           // the last total read, per counter
	minutes map[int64]map[seriesKey]float64 // unix minute -> series -> amount
}

func newRecorder(g prometheus.Gatherer, window time.Duration) *recorder {
	return &recorder{gather: g, window: window, prev: make(map[seriesKey]float64), minutes: make(map[int64]map[seriesKey]float64)}
}

// reading is one value read from the metrics.
type reading struct {
	key   seriesKey
	value float64
	gauge bool
}

// read gathers the metrics and returns the values the recorder keeps.
func (r *recorder) read() ([]reading, error) {
	families, err := r.gather.Gather()
	var out []reading
	for _, mf := range families {
		switch mf.GetName() {
		case "insertfn_function_events_total":
			for _, m := range mf.GetMetric() {
				out = append(out, reading{key: seriesKey{kindRuns, label(m, "function"), label(m, "result")}, value: m.GetCounter().GetValue()})
			}
		case "insertfn_function_errors_total":
			for _, m := range mf.GetMetric() {
				out = append(out, reading{key: seriesKey{kindErrors, label(m, "function"), label(m, "kind")}, value: m.GetCounter().GetValue()})
			}
		case "insertfn_function_duration_seconds":
			for _, m := range mf.GetMetric() {
				fn, h := label(m, "function"), m.GetHistogram()
				for _, b := range h.GetBucket() {
					le := strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)
					out = append(out, reading{key: seriesKey{kindDuration, fn, le}, value: float64(b.GetCumulativeCount())})
				}
				out = append(out, reading{key: seriesKey{kindDuration, fn, "+Inf"}, value: float64(h.GetSampleCount())})
			}
		case "insertfn_consent_lookups_total":
			for _, m := range mf.GetMetric() {
				out = append(out, reading{key: seriesKey{kindLookups, label(m, "backend"), label(m, "result")}, value: m.GetCounter().GetValue()})
			}
		case "insertfn_destination_queue_items":
			for _, m := range mf.GetMetric() {
				if label(m, "state") == "dead" {
					out = append(out, reading{key: seriesKey{Kind: kindDead, A: label(m, "destination")}, value: m.GetGauge().GetValue(), gauge: true})
				}
			}
		}
	}
	return out, err
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sample reads the metrics and adds what grew since the last sample to
// the minute now falls in. Gathering may fail for one collector and still
// answer for the others: what was read is kept, and the error returned.
func (r *recorder) sample(now time.Time) error {
	readings, err := r.read()
	m := now.Unix() / 60
	r.mu.Lock()
	defer r.mu.Unlock()
	counts := r.minutes[m]
	if counts == nil {
		counts = make(map[seriesKey]float64)
		r.minutes[m] = counts
		oldest := m - int64(r.window/time.Minute)
		for k := range r.minutes {
			if k < oldest {
				delete(r.minutes, k)
			}
		}
	}
	// A histogram's buckets are kept together: in a minute in which a
	// function was timed, all of its buckets, those that did not grow
	// too (the lowest ones), which the percentiles' interpolation needs.
	type change struct {
		key   seriesKey
		delta float64
	}
	changes := make([]change, 0, len(readings))
	timed := make(map[string]bool)
	for _, rd := range readings {
		if rd.gauge {
			counts[rd.key] = rd.value
			continue
		}
		prev, seen := r.prev[rd.key]
		delta := rd.value - prev
		if !seen || rd.value < prev {
			delta = rd.value // new since the process started, or started again from zero
		}
		r.prev[rd.key] = rd.value
		changes = append(changes, change{rd.key, delta})
		if rd.key.Kind == kindDuration && rd.key.B == "+Inf" && delta > 0 {
			timed[rd.key.A] = true
		}
	}
	for _, c := range changes {
		if c.delta > 0 || (c.key.Kind == kindDuration && timed[c.key.A]) {
			counts[c.key] += c.delta
		}
	}
	return err
}

// minuteValues are one minute's amounts, as a recorder keeps them across
// a restart.
type minuteValues struct {
	Minute int64         `json:"minute"` // unix minute
	Values []seriesValue `json:"values"`
}

type seriesValue struct {
	seriesKey
	V float64 `json:"v"`
}

// history returns every minute the recorder remembers, oldest first.
func (r *recorder) history() []minuteValues {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]minuteValues, 0, len(r.minutes))
	for m, counts := range r.minutes {
		mv := minuteValues{Minute: m, Values: make([]seriesValue, 0, len(counts))}
		for k, v := range counts {
			mv.Values = append(mv.Values, seriesValue{k, v})
		}
		slices.SortFunc(mv.Values, func(a, b seriesValue) int {
			return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.A, b.A), cmp.Compare(a.B, b.B))
		})
		out = append(out, mv)
	}
	slices.SortFunc(out, func(a, b minuteValues) int { return cmp.Compare(a.Minute, b.Minute) })
	return out
}

// restore adds the minutes of h within the window ending at now: counters
// add up, a gauge keeps the value this process read, if any.
//
// # Results
//   - how many minutes were kept.
func (r *recorder) restore(h []minuteValues, now time.Time) int {
	cur := now.Unix() / 60
	oldest := cur - int64(r.window/time.Minute)
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, mv := range h {
		if mv.Minute < oldest || mv.Minute > cur {
			continue
		}
		counts := r.minutes[mv.Minute]
		if counts == nil {
			counts = make(map[seriesKey]float64)
			r.minutes[mv.Minute] = counts
		}
		for _, v := range mv.Values {
			if v.Kind == kindDead {
				if _, ok := counts[v.seriesKey]; ok {
					continue
				}
				counts[v.seriesKey] = v.V
				continue
			}
			if v.V >= 0 && !math.IsInf(v.V, 0) {
				counts[v.seriesKey] += v.V
			}
		}
		n++
	}
	return n
}

// series returns, for minutes lo to hi (unix minutes, both included), the
// amount of every series of kind with an amount in one of them: series
// key -> one value per minute, fill for a minute without one.
func (r *recorder) series(kind string, lo, hi int64, fill float64) map[seriesKey][]float64 {
	out := make(map[seriesKey][]float64)
	r.mu.Lock()
	defer r.mu.Unlock()
	for m := lo; m <= hi; m++ {
		for k, v := range r.minutes[m] {
			if k.Kind != kind {
				continue
			}
			s := out[k]
			if s == nil {
				s = make([]float64, hi-lo+1)
				if fill != 0 {
					for i := range s {
						s[i] = fill
					}
				}
				out[k] = s
			}
			s[m-lo] = v
		}
	}
	return out
}

// bucket is a histogram bucket: how many observations were at most le.
type bucket struct {
	le    float64
	count float64
}

// quantile estimates the q-quantile (0 < q < 1) of a histogram's
// observations from its cumulative buckets, by linear interpolation within
// the bucket the rank falls in, as Prometheus' histogram_quantile does.
// It returns NaN without observations; a rank in the +Inf bucket answers
// the highest finite bound.
func quantile(q float64, buckets []bucket) float64 {
	slices.SortFunc(buckets, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	if len(buckets) == 0 || buckets[len(buckets)-1].count == 0 {
		return math.NaN()
	}
	rank := q * buckets[len(buckets)-1].count
	lower, below := 0.0, 0.0
	for i, b := range buckets {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				if i == 0 {
					return math.NaN()
				}
				return buckets[i-1].le
			}
			if b.count == below {
				return b.le
			}
			return lower + (b.le-lower)*(rank-below)/(b.count-below)
		}
		lower, below = b.le, b.count
	}
	return buckets[len(buckets)-1].le
}
