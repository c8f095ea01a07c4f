package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/insertfn/insertfn/internal/pipeline/destfilter"
	"github.com/insertfn/insertfn/internal/pipeline/fql"
)

// FilterStore holds the destinations' filters (Segment's Destination
// Filters, in FQL) for GET, PUT and DELETE
// /admin/destinations/{name}/filters. The host implements it over its
// pipeline; its methods must be safe for concurrent use.
type FilterStore interface {
	// Filters returns the filters of destination as they apply now, and
	// whether there is such a destination.
	Filters(destination string) ([]destfilter.Filter, bool)
	// SetFilters replaces the filters of destination for the events
	// processed from now on, and keeps them so that they outlive a
	// restart. On an error nothing changed; a *[destfilter.Error] says
	// which filter does not compile.
	SetFilters(ctx context.Context, destination string, filters []destfilter.Filter) error
	// ResetFilters forgets the filters set through SetFilters: the
	// destination's filters are the configuration's again.
	ResetFilters(ctx context.Context, destination string) error
}

// FilterProblem is one problem of a list of filters that does not
// compile.
type FilterProblem struct {
	// Index is the filter's place in the list, from 0.
	Index int `json:"index"`
	// Filter is the filter's name ("" when it has none).
	Filter string `json:"filter,omitempty"`
	// Key is the key, as the configuration file spells it under the
	// destination: "filters[2].if".
	Key string `json:"key"`
	// Message says what is wrong, as at start: for an "if" that does not
	// parse, "fql: at position 7: expected ...".
	Message string `json:"message"`
	// Pos is, for an "if" that does not parse, the byte offset in it
	// where the problem is.
	Pos *int `json:"pos,omitempty"`
}

// FilterError is the body of a 422 answer to a list of filters that does
// not compile: every problem, each on its own line in Error too.
type FilterError struct {
	Message  string          `json:"error"`
	Problems []FilterProblem `json:"problems"`
}

// Error returns the problems, one a line.
func (e *FilterError) Error() string { return e.Message }

// FilterTestRequest is the body of POST /admin/filters/test: an event and
// one of If (an FQL expression), Filters (a list, applied in order) or
// Destination (the filters that destination applies now).
type FilterTestRequest struct {
	If          string              `json:"if,omitempty"`
	Filters     []destfilter.Filter `json:"filters,omitempty"`
	Destination string              `json:"destination,omitempty"`
	// Event is the event, a JSON object.
	Event json.RawMessage `json:"event"`
}

// FilterTestResult is the answer of POST /admin/filters/test. For an If,
// Match, IR and Steps are set; for a list of filters, Filters, Delivered,
// DroppedBy and Event.
type FilterTestResult struct {
	// Match says whether the expression matches the event.
	Match *bool `json:"match,omitempty"`
	// IR is the expression in the IR of Segment's evaluator (@segment/tsub).
	IR json.RawMessage `json:"ir,omitempty"`
	// Steps are its comparisons and calls with the values they read: why
	// it matched or not (see [fql.Expr.Explain]).
	Steps []fql.Step `json:"steps,omitempty"`

	// Filters are what each filter of the list did, in order, up to the
	// one that dropped the event.
	Filters []FilterOutcome `json:"filters,omitempty"`
	// Delivered says whether the event gets through the list.
	Delivered *bool `json:"delivered,omitempty"`
	// DroppedBy names the filter that dropped the event.
	DroppedBy string `json:"dropped_by,omitempty"`
	// Event is the event the destination would get (null when dropped).
	Event json.RawMessage `json:"event,omitempty"`
}

// What a filter did to an event, in [FilterOutcome].
const (
	OutcomeDropped  = "dropped"  // the event stops here
	OutcomeChanged  = "changed"  // properties were removed
	OutcomePassed   = "passed"   // the event goes on unchanged
	OutcomeDisabled = "disabled" // the filter is off
)

// FilterOutcome is what one filter of a list did to the event.
type FilterOutcome struct {
	Name   string            `json:"name"`
	Action destfilter.Action `json:"action"`
	// Match says whether its if matched the event as the filters before
	// it left it (an empty if matches every event).
	Match bool `json:"match"`
	// Outcome is dropped, changed, passed or disabled.
	Outcome string `json:"outcome"`
	// Steps are its if's comparisons and calls with the values they read.
	Steps []fql.Step `json:"steps,omitempty"`
}

// CheckFilters compiles filters as the configuration's are compiled at
// start.
//
// # Results
//   - nil when they compile;
//   - the problems, each naming its filter and key, and for an "if" that
//     does not parse the position in it.
func CheckFilters(filters []destfilter.Filter) *FilterError {
	_, err := destfilter.Compile(filters)
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := &FilterError{}
	var lines []string
	for _, e := range errs {
		p := FilterProblem{Index: -1, Key: "filters", Message: e.Error()}
		var fe *destfilter.Error
		if errors.As(e, &fe) {
			p.Key, p.Message = fe.ConfigKey(), fe.ConfigProblem()
			var field string
			if _, err := fmt.Sscanf(strings.Replace(p.Key, "].", "] ", 1), "filters[%d] %s", &p.Index, &field); err != nil {
				p.Index = -1
			}
			if p.Index >= 0 && p.Index < len(filters) {
				p.Filter = filters[p.Index].Name
				if field == "if" {
					var se *fql.SyntaxError
					if _, err := fql.Parse(filters[p.Index].If); errors.As(err, &se) {
						p.Pos = &se.Pos
					}
				}
			}
		}
		line := p.Key + ": " + p.Message
		if p.Filter != "" {
			line += fmt.Sprintf(" (filter %q)", p.Filter)
		}
		lines = append(lines, line)
		out.Problems = append(out.Problems, p)
	}
	out.Message = strings.Join(lines, "\n")
	return out
}

// TestFilters evaluates req.If, or applies req.Filters in order, on
// req.Event (req.Destination is the caller's to resolve into Filters). It
// needs no server: `insertfn filter test` runs it offline.
//
// # Results
//   - the result;
//   - a *[fql.SyntaxError] when If does not parse, a *[FilterError] when
//     Filters do not compile, or an error saying what is wrong with the
//     request.
func TestFilters(req FilterTestRequest) (FilterTestResult, error) {
	var res FilterTestResult
	event := bytes.TrimSpace(req.Event)
	if len(event) == 0 || event[0] != '{' || !json.Valid(event) {
		return res, errors.New("event: want the event, a JSON object")
	}
	if (req.If != "") == (req.Filters != nil) {
		return res, errors.New("want one of if (an FQL expression) and filters (a list of filters)")
	}
	if req.If != "" {
		e, err := fql.Parse(req.If)
		if err != nil {
			return res, err
		}
		m := e.Match(event)
		res.Match, res.IR, res.Steps = &m, e.IR(), e.Explain(event)
		return res, nil
	}
	if fe := CheckFilters(req.Filters); fe != nil {
		return res, fe
	}
	res.Filters = []FilterOutcome{}
	var ev fql.Event
	for _, f := range req.Filters {
		o := FilterOutcome{Name: f.Name, Action: f.Action, Match: true}
		if strings.TrimSpace(f.If) != "" {
			e, _ := fql.Parse(f.If) // compiled above
			o.Match, o.Steps = e.Match(event), e.Explain(event)
		}
		if f.Disabled {
			o.Outcome = OutcomeDisabled
			res.Filters = append(res.Filters, o)
			continue
		}
		// One filter at a time, as the pipeline applies it.
		set, _ := destfilter.Compile([]destfilter.Filter{f})
		out, by := set.Apply(&ev, event)
		switch {
		case by != "":
			o.Outcome = OutcomeDropped
		case !bytes.Equal(out, event):
			o.Outcome = OutcomeChanged
		default:
			o.Outcome = OutcomePassed
		}
		res.Filters = append(res.Filters, o)
		if by != "" {
			delivered := false
			res.Delivered, res.DroppedBy, res.Event = &delivered, by, json.RawMessage("null")
			return res, nil
		}
		event = out
	}
	delivered := true
	res.Delivered, res.Event = &delivered, json.RawMessage(event)
	return res, nil
}

// filterStore returns the host's filters, or answers 501.
func (a *Admin) filterStore(w http.ResponseWriter) (FilterStore, bool) {
	if a.deps.Filters == nil {
		writeError(w, http.StatusNotImplemented, "destination filters are not available: the host gave the admin API no filter store")
		return nil, false
	}
	return a.deps.Filters, true
}

// destinationFilters returns the host's filters, the destination the path
// names and its filters now; or answers 501 (no filter store) or 404 (no
// such destination).
func (a *Admin) destinationFilters(w http.ResponseWriter, r *http.Request) (FilterStore, string, []destfilter.Filter, bool) {
	fs, ok := a.filterStore(w)
	if !ok {
		return nil, "", nil, false
	}
	name := r.PathValue("name")
	filters, ok := fs.Filters(name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no destination %q", name))
		return nil, "", nil, false
	}
	return fs, name, filters, true
}

// GET /admin/destinations/{name}/filters: the destination's filters as
// they apply now, a JSON list.
func (a *Admin) getFilters(w http.ResponseWriter, r *http.Request) {
	_, _, filters, ok := a.destinationFilters(w, r)
	if !ok {
		return
	}
	if filters == nil {
		filters = []destfilter.Filter{}
	}
	writeJSON(w, http.StatusOK, filters)
}

// PUT /admin/destinations/{name}/filters: replaces the destination's
// filters with the body, a JSON list, checked as at start; answers the
// list. A list that does not compile is refused with 422 and every
// problem, and the filters in place stay.
func (a *Admin) putFilters(w http.ResponseWriter, r *http.Request) {
	fs, name, _, ok := a.destinationFilters(w, r)
	if !ok {
		return
	}
	body, status, err := readBody(w, r, MaxBodyBytes)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	var filters []destfilter.Filter
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&filters); err != nil || dec.More() || filters == nil {
		msg := "the body is not one JSON list"
		if err != nil {
			msg = err.Error()
		}
		writeError(w, http.StatusBadRequest, fmt.Sprintf("body: %s: want a JSON list of filters, [{\"name\": ..., \"if\": ..., \"action\": ...}] ([] for none)", msg))
		return
	}
	if fe := CheckFilters(filters); fe != nil {
		a.log.Warn("admin: destination filters refused", "destination", name, "err", fe.Message)
		fe.Message = fmt.Sprintf("destination %q: the filters are refused (the ones in place stay):\n%s", name, fe.Message)
		writeJSON(w, http.StatusUnprocessableEntity, fe)
		return
	}
	if err := fs.SetFilters(r.Context(), name, filters); err != nil {
		var de *destfilter.Error
		if errors.As(err, &de) {
			writeError(w, http.StatusUnprocessableEntity, err.Error())
			return
		}
		a.fail(w, r, http.StatusInternalServerError, fmt.Errorf("destination %q: setting the filters: %w (the ones in place stay)", name, err))
		return
	}
	names := make([]string, len(filters))
	for i, f := range filters {
		names[i] = f.Name
	}
	a.log.Info("admin: destination filters set", "destination", name, "filters", names)
	writeJSON(w, http.StatusOK, filters)
}

// DELETE /admin/destinations/{name}/filters: forgets the filters set
// through the admin API; the configuration's apply again, and are
// answered.
func (a *Admin) resetFilters(w http.ResponseWriter, r *http.Request) {
	fs, name, _, ok := a.destinationFilters(w, r)
	if !ok {
		return
	}
	if err := fs.ResetFilters(r.Context(), name); err != nil {
		a.fail(w, r, http.StatusInternalServerError, fmt.Errorf("destination %q: going back to the configuration's filters: %w", name, err))
		return
	}
	filters, _ := fs.Filters(name)
	if filters == nil {
		filters = []destfilter.Filter{}
	}
	a.log.Info("admin: destination filters reset to the configuration's", "destination", name, "filters", len(filters))
	writeJSON(w, http.StatusOK, filters)
}

// POST /admin/filters/test: evaluates an FQL expression, or applies a
// list of filters (or a destination's), on an event (see
// [FilterTestRequest]).
func (a *Admin) testFilters(w http.ResponseWriter, r *http.Request) {
	body, status, err := readBody(w, r, MaxBodyBytes)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	var req FilterTestRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("body: %v (want {\"if\": \"FQL\", \"event\": {...}}, or filters or destination instead of if)", err))
		return
	}
	if req.Destination != "" {
		if req.If != "" || req.Filters != nil {
			writeError(w, http.StatusBadRequest, "want one of if, filters and destination")
			return
		}
		fs, ok := a.filterStore(w)
		if !ok {
			return
		}
		filters, ok := fs.Filters(req.Destination)
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no destination %q", req.Destination))
			return
		}
		req.Filters = filters
		if req.Filters == nil {
			req.Filters = []destfilter.Filter{}
		}
	}
	res, err := TestFilters(req)
	var se *fql.SyntaxError
	var fe *FilterError
	switch {
	case errors.As(err, &se):
		writeJSON(w, http.StatusUnprocessableEntity, FilterError{Message: "if: " + se.Error(),
			Problems: []FilterProblem{{Index: -1, Key: "if", Message: se.Error(), Pos: &se.Pos}}})
		return
	case errors.As(err, &fe):
		writeJSON(w, http.StatusUnprocessableEntity, fe)
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}
