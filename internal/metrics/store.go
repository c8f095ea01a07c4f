package metrics

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/prometheus/client_golang/prometheus"
)

// InstrumentStore returns a [consent.Store] that looks records up in s and
// counts each lookup in insertfn_consent_lookups_total{backend,result}
// (result: found, not_found, or error) and its latency in
// insertfn_consent_lookup_duration_seconds{backend}. It keeps the
// contract of consent.Store: it does not keep the id, and returns s's
// record and error unchanged. A lookup costs two clock readings and two
// atomic updates, and allocates nothing.
//
// # Parameters
//   - s: the store to measure; nil gives nil (no store).
//   - backend: the label naming it ("memory", "bolt", "redis", "http").
//
// A nil *Metrics returns s as it is.
func (m *Metrics) InstrumentStore(s consent.Store, backend string) consent.Store {
	if s == nil {
		return nil
	}
	if m == nil {
		return s
	}
	b := labelValue(strings.Clone(backend))
	st := &instrumentedStore{
		s:        s,
		found:    m.lookups.WithLabelValues(b, "found"),
		notFound: m.lookups.WithLabelValues(b, "not_found"),
		failed:   m.lookups.WithLabelValues(b, "error"),
		latency:  m.lookupLatency.WithLabelValues(b),
	}
	if as, ok := s.(consent.AsOfStore); ok {
		return &instrumentedAsOfStore{instrumentedStore: st, as: as}
	}
	return st
}

// instrumentedAsOfStore measures the lookups of a store that also answers
// as of a time, keeping that ability for the host.
type instrumentedAsOfStore struct {
	*instrumentedStore
	as consent.AsOfStore
}

// GetAsOf looks id up as of at in the wrapped store and records the
// lookup.
func (st *instrumentedAsOfStore) GetAsOf(ctx context.Context, id string, at int64) (*consent.Record, error) {
	start := time.Now()
	rec, err := st.as.GetAsOf(ctx, id, at)
	st.record(start, err)
	return rec, err
}

// instrumentedStore measures the lookups of the store it wraps.
type instrumentedStore struct {
	s                       consent.Store
	found, notFound, failed prometheus.Counter
	latency                 prometheus.Observer
}

// Get looks id up in the wrapped store and records the lookup.
func (st *instrumentedStore) Get(ctx context.Context, id string) (*consent.Record, error) {
	start := time.Now()
	rec, err := st.s.Get(ctx, id)
	st.record(start, err)
	return rec, err
}

// record counts one lookup that began at start and ended with err.
func (st *instrumentedStore) record(start time.Time, err error) {
	st.latency.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		st.found.Inc()
	case errors.Is(err, consent.ErrNotFound):
		st.notFound.Inc()
	default:
		st.failed.Inc()
	}
}
