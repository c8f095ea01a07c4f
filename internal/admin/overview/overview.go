// Package overview serves the delivery overview: for a source and a
// time window, how many events were received, dropped by each function
// (by reason), filtered at each destination (by end user consent, by the
// integrations object), dropped by a destination's functions, delivered
// and failed. As JSON, and as a small page a person reads at a glance,
// refreshed live (the page polls the JSON; no framework, no build step).
//
// The handler is meant for the admin listener, behind its token.
package overview

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/insertfn/insertfn/internal/pipeline"
)

//go:embed page.html
var page []byte

// Handler serves, under its mount point:
//
//	GET /             the page
//	GET /flow.json    ?source=NAME&minutes=N (default: the first source, 60)
//	                  {"sources": [...], "flow": pipeline.Flow}
func Handler(o *pipeline.Overview) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
		w.Write(page)
	})
	mux.HandleFunc("GET /flow.json", func(w http.ResponseWriter, r *http.Request) {
		minutes := 60
		if m := r.URL.Query().Get("minutes"); m != "" {
			n, err := strconv.Atoi(m)
			if err != nil || n < 1 || n > 7*24*60 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]string{"error": "minutes: want a whole number from 1 to 10080"})
				return
			}
			minutes = n
		}
		sources := o.Sources()
		source := r.URL.Query().Get("source")
		if source == "" && len(sources) > 0 {
			source = sources[0]
		}
		now := time.Now()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(struct {
			Sources []string      `json:"sources"`
			Flow    pipeline.Flow `json:"flow"`
		}{sources, o.Flow(source, now.Add(-time.Duration(minutes-1)*time.Minute), now)})
	})
	return mux
}
