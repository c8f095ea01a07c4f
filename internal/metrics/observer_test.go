package metrics_test

import (
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/metrics"
	"github.com/insertfn/insertfn/runtime"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newMetrics(t testing.TB, opts metrics.Options) *metrics.Metrics {
	t.Helper()
	opts.OmitRuntime = true
	m, err := metrics.New(metrics.Sources{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func outcome(v runtime.Verdict, kind runtime.ErrorKind, d time.Duration, attempts int) *functions.Outcome {
	return &functions.Outcome{Result: runtime.Result{Verdict: v, Kind: kind, Duration: d}, Attempts: attempts}
}

func TestObserveFunction(t *testing.T) {
	m := newMetrics(t, metrics.Options{FunctionBuckets: []float64{0.3, 1}})
	o := m.Observer()
	// Durations in binary fractions of a second, so the sums are exact.
	o.ObserveFunction("f", outcome(runtime.Deliver, "", 250*time.Millisecond, 1))
	o.ObserveFunction("f", outcome(runtime.Drop, "", 500*time.Millisecond, 1))
	o.ObserveFunction("f", outcome(runtime.Fail, runtime.KindTimeout, 2*time.Second, 1))
	o.ObserveFunction("f", outcome(runtime.Fail, runtime.KindRetry, 125*time.Millisecond, 3)) // gave up after 2 retries
	o.ObserveFunction("f", outcome(runtime.Deliver, runtime.KindRetry, 250*time.Millisecond, 2))
	o.ObserveFunction("g", outcome(runtime.Fail, runtime.KindFunctionError, 0, 1)) // no instance: no duration
	o.ObserveFunction("g", outcome(runtime.Fail, "", 500*time.Millisecond, 1))
	o.ObserveFunction("g", nil)
	(*metrics.Observer)(nil).ObserveFunction("g", outcome(runtime.Fail, runtime.KindTrap, 1, 1))

	const want = `
# HELP insertfn_function_duration_seconds Time a function's guest call took on one event (the last attempt's), sampled: one call in sixteen is timed.
# TYPE insertfn_function_duration_seconds histogram
insertfn_function_duration_seconds_bucket{function="f",le="0.3"} 3
insertfn_function_duration_seconds_bucket{function="f",le="1"} 4
insertfn_function_duration_seconds_bucket{function="f",le="+Inf"} 5
insertfn_function_duration_seconds_sum{function="f"} 3.125
insertfn_function_duration_seconds_count{function="f"} 5
insertfn_function_duration_seconds_bucket{function="g",le="0.3"} 0
insertfn_function_duration_seconds_bucket{function="g",le="1"} 1
insertfn_function_duration_seconds_bucket{function="g",le="+Inf"} 1
insertfn_function_duration_seconds_sum{function="g"} 0.5
insertfn_function_duration_seconds_count{function="g"} 1
# HELP insertfn_function_retries_total Extra attempts of function runs after a RetryError.
# TYPE insertfn_function_retries_total counter
insertfn_function_retries_total{function="f"} 3
insertfn_function_retries_total{function="g"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"insertfn_function_duration_seconds", "insertfn_function_retries_total"); err != nil {
		t.Error(err)
	}
	for _, w := range []struct {
		fn, kind string
		want     float64
	}{
		{"f", "Timeout", 1}, {"f", "RetryError", 1}, {"g", "FunctionError", 1}, {"g", "unknown", 1},
	} {
		if got := value(t, m.Registry(), "insertfn_function_errors_total", "function", w.fn, "kind", w.kind); got != w.want {
			t.Errorf("errors{%s,%s} = %v, want %v", w.fn, w.kind, got, w.want)
		}
	}
	if n := series(t, m.Registry(), "insertfn_function_errors_total"); n != 4 {
		t.Errorf("%d error series, want 4 (a delivered event after a retry is no error)", n)
	}
}

func TestObserveEvents(t *testing.T) {
	m := newMetrics(t, metrics.Options{})
	o := m.Observer()
	for _, typ := range []string{"track", "track", "identify", "page", "screen", "group", "alias", "Track", ""} {
		o.ObserveEvents("web", typ, 1)
	}
	o.ObserveEvents("app", "track", 3)
	o.ObserveEvents("app", "page", 0)
	for _, w := range []struct {
		source, typ string
		want        float64
	}{
		{"web", "track", 2}, {"web", "identify", 1}, {"web", "page", 1}, {"web", "screen", 1},
		{"web", "group", 1}, {"web", "alias", 1}, {"web", "other", 2}, {"app", "track", 3}, {"app", "page", 0},
	} {
		if got := value(t, m.Registry(), "insertfn_events_received_total", "source", w.source, "type", w.typ); got != w.want {
			t.Errorf("received{%s,%s} = %v, want %v", w.source, w.typ, got, w.want)
		}
	}
}

// TestObserverAllocatesNothing guards the hot path: once a function, kind
// and source are known, recording allocates nothing.
func TestObserverAllocatesNothing(t *testing.T) {
	o := newMetrics(t, metrics.Options{}).Observer()
	name := "consent-match"
	ok := outcome(runtime.Deliver, "", 80*time.Microsecond, 1)
	failed := outcome(runtime.Fail, runtime.KindTrap, time.Millisecond, 2)
	if n := testing.AllocsPerRun(1000, func() {
		o.ObserveFunction(name, ok)
		o.ObserveFunction(name, failed)
	}); n != 0 {
		t.Errorf("ObserveFunction: %v allocations per call, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { o.ObserveEvents("web", "track", 1) }); n != 0 {
		t.Errorf("ObserveEvents: %v allocations per call, want 0", n)
	}
}

// TestObserverKeepsNoName: the observer copies the name it keys by, so a
// caller may reuse the bytes.
func TestObserverKeepsNoName(t *testing.T) {
	m := newMetrics(t, metrics.Options{})
	o := m.Observer()
	buf := []byte("alpha")
	o.ObserveFunction(unsafe.String(&buf[0], len(buf)), outcome(runtime.Fail, runtime.KindTrap, time.Millisecond, 1))
	o.ObserveEvents(unsafe.String(&buf[0], len(buf)), "track", 1)
	copy(buf, "omega")
	o.ObserveFunction("alpha", outcome(runtime.Fail, runtime.KindTrap, time.Millisecond, 1))
	o.ObserveEvents("alpha", "track", 1)
	if got := value(t, m.Registry(), "insertfn_function_duration_seconds", "function", "alpha"); got != 2 {
		t.Errorf("alpha: %v observations, want 2", got)
	}
	if got := value(t, m.Registry(), "insertfn_function_errors_total", "function", "alpha", "kind", "Trap"); got != 2 {
		t.Errorf("alpha: %v errors, want 2", got)
	}
	if got := value(t, m.Registry(), "insertfn_events_received_total", "source", "alpha", "type", "track"); got != 2 {
		t.Errorf("alpha: %v events, want 2", got)
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetValue() == "omega" {
					t.Errorf("%s: a series labelled with reused bytes", mf.GetName())
				}
			}
		}
	}
}

func TestObserverConcurrent(t *testing.T) {
	m := newMetrics(t, metrics.Options{})
	o := m.Observer()
	done := make(chan struct{})
	names := []string{"a", "b", "c", "d"}
	for i := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := range 200 {
				o.ObserveFunction(names[(i+j)%len(names)], outcome(runtime.Fail, runtime.KindTimeout, time.Millisecond, 1))
				o.ObserveEvents(names[j%len(names)], "track", 1)
			}
		}()
	}
	for range 8 {
		<-done
	}
	var total float64
	for _, n := range names {
		total += value(t, m.Registry(), "insertfn_function_errors_total", "function", n, "kind", "Timeout")
	}
	if total != 1600 {
		t.Errorf("%v errors counted, want 1600", total)
	}
}

func BenchmarkObserveFunction(b *testing.B) {
	o := newMetrics(b, metrics.Options{}).Observer()
	ok := outcome(runtime.Deliver, "", 80*time.Microsecond, 1)
	failed := outcome(runtime.Fail, runtime.KindTrap, time.Millisecond, 1)
	o.ObserveFunction("consent-match", failed)
	b.Run("deliver", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			o.ObserveFunction("consent-match", ok)
		}
	})
	b.Run("error", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			o.ObserveFunction("consent-match", failed)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				o.ObserveFunction("consent-match", ok)
			}
		})
	})
}
