//go:build !wasip1

// Package sdktest runs a function's handlers natively, for plain `go test`:
// no WebAssembly, no runtime. The event, the consent lookups and comparisons
// and the settings go through the same host code the sandbox uses (package
// hostcall), so a handler that passes here behaves the same in insertfn.
//
//	res := sdktest.Run(t, handlers, `{"type":"track","userId":"u1",...}`,
//		sdktest.WithConsent(`{"id":"u1","categoryPreferences":{"Advertising":true}}`),
//		sdktest.WithSettings(`{"missingRecord":"drop"}`))
//	if res.Verdict != abi.ResultDrop { ... }
package sdktest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/insertfn/insertfn/sdk"
	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/insertfn/insertfn/sdk/hostcall"
)

// Result is what a handler did with one event.
type Result struct {
	Verdict  abi.Result         // ResultDeliver, ResultDrop, or an error kind
	Reason   string             // the drop reason or the error message
	Event    []byte             // the event after the handler's changes
	Modified bool               // whether the handler changed the event
	Logs     []hostcall.LogLine // what the handler logged
	LimitErr error              // a limit the handler broke (hostcall.ErrLogLimit, hostcall.ErrTooLarge)
}

// Field reads a field of the resulting event by gjson path, as JSON text ("" when missing).
func (r *Result) Field(path string) string {
	var d hostcall.Doc
	d.Reset(r.Event, 0)
	return d.Get(path).Raw
}

type config struct {
	store    Store
	settings []byte
	limits   hostcall.Limits
}

// Option configures a Run.
type Option func(tb testing.TB, c *config)

// WithConsent stores consent records, given in the wire format of the
// consent-record contract (one JSON object per string).
func WithConsent(records ...string) Option {
	return func(tb testing.TB, c *config) {
		for _, r := range records {
			var rec consent.Record
			if err := json.Unmarshal([]byte(r), &rec); err != nil {
				tb.Fatalf("sdktest: consent record %s: %v", r, err)
			}
			c.store.Put(&rec)
		}
	}
}

// WithStoreError makes every consent lookup fail with err, as an unavailable
// store would.
func WithStoreError(err error) Option {
	return func(_ testing.TB, c *config) { c.store.err = err }
}

// WithSettings gives the function its settings (a JSON object).
func WithSettings(settings string) Option {
	return func(tb testing.TB, c *config) {
		if !json.Valid([]byte(settings)) {
			tb.Fatalf("sdktest: settings are not valid JSON: %s", settings)
		}
		c.settings = []byte(settings)
	}
}

// WithLimits sets the event size and log limits (default: none).
func WithLimits(maxEventBytes, maxLogBytes int) Option {
	return func(_ testing.TB, c *config) {
		c.limits = hostcall.Limits{MaxEventBytes: maxEventBytes, MaxLogBytes: maxLogBytes}
	}
}

// Run runs the handlers on one event and returns what they did. It fails tb
// when the event is not valid JSON.
func Run(tb testing.TB, h sdk.Handlers, event string, opts ...Option) Result {
	tb.Helper()
	if !json.Valid([]byte(event)) {
		tb.Fatalf("sdktest: event is not valid JSON: %s", event)
	}
	var c config
	for _, o := range opts {
		o(tb, &c)
	}
	var call hostcall.Call
	call.Reset(context.Background(), []byte(event), &c.store, c.settings, c.limits)
	verdict, reason := h.Serve(&call, call.Doc.Type())
	res := Result{Verdict: verdict, Reason: reason, Event: call.Doc.Bytes(), Modified: call.Doc.Modified(),
		Logs: append([]hostcall.LogLine(nil), call.Logs()...), LimitErr: call.Err()}
	if res.LimitErr != nil {
		res.Verdict, res.Reason = abi.ResultFunctionError, res.LimitErr.Error()
	}
	return res
}

// Store is an in-memory consent store for tests, keyed by id and aliases.
type Store struct {
	byID map[string]*consent.Record
	err  error
}

// Put adds or merges a record.
func (s *Store) Put(rec *consent.Record) {
	if s.byID == nil {
		s.byID = make(map[string]*consent.Record)
	}
	if old := s.byID[rec.ID]; old != nil {
		merged := old.Clone()
		merged.Merge(rec)
		rec = merged
	}
	for _, id := range rec.IDs() {
		s.byID[id] = rec
	}
}

// Get implements consent.Store.
func (s *Store) Get(_ context.Context, id string) (*consent.Record, error) {
	if s.err != nil {
		return nil, s.err
	}
	if r, ok := s.byID[id]; ok {
		return r, nil
	}
	return nil, consent.ErrNotFound
}

var _ consent.Store = (*Store)(nil)
