package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

// ConsentChange is the answer of PUT and PATCH /admin/consent/{id}: the
// changes the update made to stored values and the record after it.
type ConsentChange struct {
	ID      string           `json:"id"`
	Changes []consent.Change `json:"changes"`
	Record  *consent.Record  `json:"record"`
}

// ConsentDeleted is the answer of DELETE /admin/consent/{id}.
type ConsentDeleted struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

// ConsentHistory is the answer of GET /admin/consent/{id}/history.
type ConsentHistory struct {
	ID      string                      `json:"id"`
	History []consentstore.HistoryEntry `json:"history"`
}

// ConsentAsOf is the answer of GET /admin/consent/{id}/history?at=TIME.
type ConsentAsOf struct {
	ID     string          `json:"id"`
	At     time.Time       `json:"at"`
	Record *consent.Record `json:"record"`
}

// ImportResult is the answer of POST /admin/consent/import.
type ImportResult struct {
	consentstore.ImportStats
	// Errors are the bad lines, at most MaxImportErrors of them.
	Errors []ImportError `json:"errors"`
	// ErrorsTruncated says more lines were bad than Errors holds.
	ErrorsTruncated bool `json:"errors_truncated,omitempty"`
	// Error is why the import stopped before the end, if it did.
	Error string `json:"error,omitempty"`
}

// ImportError is one bad line of an import.
type ImportError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// MaxImportErrors bounds the bad lines an import answer lists.
const MaxImportErrors = 1000

// storeStatus maps a consent store error to a status.
func storeStatus(err error) int {
	switch {
	case errors.Is(err, consent.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, consentstore.ErrNoID), errors.Is(err, consentstore.ErrFutureTime),
		errors.Is(err, consent.ErrInexactID):
		return http.StatusBadRequest
	case errors.Is(err, consentstore.ErrReadOnly):
		return http.StatusConflict
	case errors.Is(err, consentstore.ErrUnavailable), errors.Is(err, consentstore.ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// store returns the consent store, or answers 501.
func (a *Admin) store(w http.ResponseWriter) (*consentstore.Store, bool) {
	if a.deps.Store == nil {
		writeError(w, http.StatusNotImplemented, "no consent store is configured")
		return nil, false
	}
	return a.deps.Store, true
}

// GET /admin/consent/{id}: the record, in the wire format of the consent
// record.
func (a *Admin) getConsent(w http.ResponseWriter, r *http.Request) {
	s, ok := a.store(w)
	if !ok {
		return
	}
	id := r.PathValue("id")
	rec, err := s.Get(r.Context(), id)
	if err != nil {
		a.consentError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// consentError answers a store error.
func (a *Admin) consentError(w http.ResponseWriter, r *http.Request, id string, err error) {
	if errors.Is(err, consent.ErrNotFound) {
		writeError(w, http.StatusNotFound, notFound(id))
		return
	}
	a.fail(w, r, storeStatus(err), err)
}

// notFound is the message of a 404 for id: for an id written as a
// non-canonical number, where such a number is stored.
func notFound(id string) string {
	msg := fmt.Sprintf("no consent record for %q", id)
	if hint := consentstore.NumericIDHint(id); hint != "" {
		msg += " " + hint
	}
	return msg
}

// PUT /admin/consent/{id}: a record (its entries) merged into the stored
// one. See putOrPatch.
func (a *Admin) putConsent(w http.ResponseWriter, r *http.Request) { a.putOrPatch(w, r, true) }

// PATCH /admin/consent/{id}: an update merged into the stored record.
func (a *Admin) patchConsent(w http.ResponseWriter, r *http.Request) { a.putOrPatch(w, r, false) }

// putOrPatch merges the body into the record of {id}: each category and
// purpose last-writer-wins by its timestamp (an entry without one gets
// the current time), as every consent update is. Entries the body does
// not name stay: a consent decision is only superseded by a newer one, or
// erased with the whole record and its history by DELETE. PUT is the
// upsert of a record and must name at least one category or purpose;
// PATCH may also only link aliases. The body's "source", if any, is kept
// in the history as "admin:SOURCE".
//
// A timestamp more than consentstore.MaxFutureSkew past this server's
// clock is refused with 400 and an error naming the field (see
// consentstore.FutureTimeError). The body's "id" and "aliases" may be
// JSON numbers, taken as a numeric userId is (123.0 is "123"); the path's
// {id} is text, looked up as written.
func (a *Admin) putOrPatch(w http.ResponseWriter, r *http.Request, put bool) {
	s, ok := a.store(w)
	if !ok {
		return
	}
	id := r.PathValue("id")
	body, status, err := readBody(w, r, consentstore.MaxImportLine)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	u, err := consentstore.ParseUpdate(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "consent record: "+err.Error())
		return
	}
	rec := &u.Record
	switch {
	case rec.ID != "" && rec.ID != id:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the body is about %q, the path about %q: drop its \"id\" or make them match", rec.ID, id))
		return
	case put && len(rec.Categories) == 0 && len(rec.Purposes) == 0:
		writeError(w, http.StatusBadRequest, "the record names no category or purpose (categoryPreferences, consent_state): nothing to store")
		return
	case len(rec.Categories) == 0 && len(rec.Purposes) == 0 && len(rec.Aliases) == 0:
		writeError(w, http.StatusBadRequest, "the update names no category, purpose or alias: nothing to change")
		return
	}
	rec.ID = id
	if u.Source != "" {
		u.Source = "admin:" + u.Source
	} else {
		u.Source = "admin"
	}
	changes, err := s.Update(r.Context(), u)
	if err != nil {
		status := storeStatus(err)
		if status == http.StatusInternalServerError {
			status = http.StatusBadRequest // the store's validation of the update
		}
		a.fail(w, r, status, err)
		return
	}
	stored, err := s.Get(r.Context(), id)
	if err != nil {
		a.consentError(w, r, id, err)
		return
	}
	if changes == nil {
		changes = []consent.Change{}
	}
	writeJSON(w, http.StatusOK, ConsentChange{ID: id, Changes: changes, Record: stored})
}

// DELETE /admin/consent/{id}: erases the record, its aliases and its
// history (a person's erasure request). 404 when there is none.
func (a *Admin) deleteConsent(w http.ResponseWriter, r *http.Request) {
	s, ok := a.store(w)
	if !ok {
		return
	}
	id := r.PathValue("id")
	deleted, err := s.Delete(r.Context(), id)
	if err != nil {
		a.consentError(w, r, id, err)
		return
	}
	if !deleted {
		writeError(w, http.StatusNotFound, notFound(id))
		return
	}
	a.log.Info("admin: consent record erased")
	writeJSON(w, http.StatusOK, ConsentDeleted{ID: id, Deleted: true})
}

// GET /admin/consent/{id}/history[?at=RFC3339]: the decisions, oldest
// first; with at, the record as it stood then.
func (a *Admin) consentHistory(w http.ResponseWriter, r *http.Request) {
	s, ok := a.store(w)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if at := r.URL.Query().Get("at"); at != "" {
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("at %q: want an RFC 3339 time such as 2024-01-02T15:04:05Z", at))
			return
		}
		rec, err := s.AsOf(r.Context(), id, t)
		if err != nil {
			a.consentError(w, r, id, err)
			return
		}
		writeJSON(w, http.StatusOK, ConsentAsOf{ID: id, At: t, Record: rec})
		return
	}
	_, hist, err := s.History(r.Context(), id)
	if err != nil {
		a.consentError(w, r, id, err)
		return
	}
	if hist == nil {
		hist = []consentstore.HistoryEntry{}
	}
	writeJSON(w, http.StatusOK, ConsentHistory{ID: id, History: hist})
}

// POST /admin/consent/import[?replace=true]: NDJSON, one record or
// update per line, merged (see consentstore.Import) or, with
// replace=true, replacing the records of the people it names (see
// consentstore.ImportReplace). Bad lines are listed and skipped; 200 with
// the counts, or 503 with them and the error when the import had to stop.
func (a *Admin) importConsent(w http.ResponseWriter, r *http.Request) {
	s, ok := a.store(w)
	if !ok {
		return
	}
	importFn := consentstore.Import
	switch v := r.URL.Query().Get("replace"); v {
	case "", "false":
	case "true":
		importFn = consentstore.ImportReplace
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("replace=%q: want true (replace the records of the people the body names) or false (merge, the default)", v))
		return
	}
	body, status, err := readBody(w, r, MaxBodyBytes)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	res := ImportResult{Errors: []ImportError{}}
	report := func(line int, err error) {
		if len(res.Errors) >= MaxImportErrors {
			res.ErrorsTruncated = true
			return
		}
		res.Errors = append(res.Errors, ImportError{Line: line, Error: err.Error()})
	}
	st, err := importFn(r.Context(), s, bytes.NewReader(body), "admin", report)
	res.ImportStats = st
	status = http.StatusOK
	if err != nil {
		res.Error = err.Error()
		status = storeStatus(err)
		a.log.Error("admin: consent import stopped", "applied", st.Applied, "err", err)
	} else {
		a.log.Info("admin: consent imported", "lines", st.Lines, "applied", st.Applied, "failed", st.Failed)
	}
	writeJSON(w, status, res)
}
