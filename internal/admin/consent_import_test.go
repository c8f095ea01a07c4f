package admin_test

import (
	"net/http"
	"testing"
)

// TestConsentImportReplace: POST /admin/consent/import?replace=true
// replaces the records of the people the body names (a newer stored
// decision included); without it the import merges; another value is a
// 400.
func TestConsentImportReplace(t *testing.T) {
	e := newEnv(t)
	e.want(http.StatusOK, http.MethodPut, "/admin/consent/u1", []byte(`{"aliases":["a1"],"categoryPreferences":{"Analytics":{"consented":true,"timestamp_unixtime_ms":2000}}}`))
	line := []byte(`{"id":"u1","categoryPreferences":{"Analytics":{"consented":false,"timestamp_unixtime_ms":1000}}}`)

	e.want(http.StatusOK, http.MethodPost, "/admin/consent/import", line)
	if r := e.want(http.StatusOK, http.MethodGet, "/admin/consent/u1", nil); !r.Get("categoryPreferences.Analytics.consented").Bool() {
		t.Fatalf("after a merging import: %s; want the newer stored decision", r.Raw)
	}
	e.want(http.StatusBadRequest, http.MethodPost, "/admin/consent/import?replace=yes", line)

	imp := e.want(http.StatusOK, http.MethodPost, "/admin/consent/import?replace=true", line)
	if imp.Get("applied").Int() != 1 {
		t.Fatalf("import?replace=true: %s", imp.Raw)
	}
	r := e.want(http.StatusOK, http.MethodGet, "/admin/consent/u1", nil)
	if r.Get("categoryPreferences.Analytics.consented").Bool() || r.Get("aliases").Exists() {
		t.Fatalf("after import?replace=true: %s; want the imported record alone", r.Raw)
	}
	e.want(http.StatusNotFound, http.MethodGet, "/admin/consent/a1", nil)
	if h := e.want(http.StatusOK, http.MethodGet, "/admin/consent/u1/history", nil); h.Get("history.#").Int() != 1 {
		t.Fatalf("history after import?replace=true: %s; want the import's one decision", h.Raw)
	}
}
