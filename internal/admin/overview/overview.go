// Package overview is the delivery overview: for a source and a time
// window, how many events were received, dropped by each function (by
// reason), filtered at each destination (by end user consent, by the
// integrations object), dropped by a destination's functions, delivered
// and failed; the functions with their live version, runs, errors by
// kind and duration percentiles; each destination's dead letters; consent
// lookups by result. Minute by minute over the last hour or day, as JSON
// and as a page a person reads at a glance, refreshed live, with the
// charts drawn as inline SVG and a table of live events (no framework, no
// build step: the page is embedded whole).
//
// The per-source flows are counted by [pipeline.Overview]; the rest is
// read from the server's Prometheus metrics by a recorder that, every few
// seconds, turns their running totals into per-minute amounts (a total
// that went down started again from zero: all of it is new). Both are
// kept in a file of the data directory every minute and at shutdown, and
// read again at start, so a restart does not empty the charts.
//
// The handler is meant for the admin listener, behind its authentication.
package overview

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/insertfn/insertfn/internal/atomicfile"
	"github.com/insertfn/insertfn/internal/pipeline"
)

//go:embed page.html
var page []byte

// pageCSP allows the page's own inline script and style (by hash) and
// calls to its own origin; nothing else.
var pageCSP = func() string {
	hash := func(open, close string) string {
		_, rest, _ := bytes.Cut(page, []byte(open))
		body, _, _ := bytes.Cut(rest, []byte(close))
		sum := sha256.Sum256(body)
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return "default-src 'none'; script-src " + hash("<script>", "</script>") + "; style-src " + hash("<style>", "</style>") +
		"; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}()

// Defaults of [Config].
const (
	// DefaultEvery is how often the recorder reads the metrics.
	DefaultEvery = 5 * time.Second
	// HistoryFile is the name of the file, in [Config.Dir], that keeps the
	// history across restarts.
	HistoryFile = "history.json"
	// MaxMinutes is the longest window the overview answers: a day.
	MaxMinutes = 24 * 60
)

// Config configures [New]. Flows is required.
type Config struct {
	// Flows are the pipeline's per-source, per-minute counts.
	Flows *pipeline.Overview
	// Metrics are read for function runs, errors and durations, consent
	// lookups and dead letters (the server's Prometheus registry); nil:
	// those charts stay empty.
	Metrics prometheus.Gatherer
	// Live returns each function's live version (name -> version hash);
	// nil: versions are not shown.
	Live func() map[string]string
	// Destinations are the configured destinations, shown even before
	// their first event.
	Destinations []string
	// Dir is where the history is kept (HistoryFile in it); "": it is not
	// kept.
	Dir string
	// Every is how often the metrics are read (0: DefaultEvery).
	Every time.Duration
	// Logger receives a line when the history cannot be read or written;
	// nil: slog.Default().
	Logger *slog.Logger
}

// Overview is the delivery overview of one server: its recorder, its
// history file and its handler. It is safe for concurrent use.
type Overview struct {
	cfg   Config
	log   *slog.Logger
	rec   *recorder
	saveM sync.Mutex // one writer of the history file at a time
	now   func() time.Time
}

// New returns the overview of cfg, with the history kept in cfg.Dir read
// back into it and into cfg.Flows. A history that cannot be read is
// logged and ignored: the overview then starts empty.
func New(cfg Config) (*Overview, error) {
	if cfg.Flows == nil {
		return nil, errors.New("overview: Config.Flows is required")
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultEvery
	}
	o := &Overview{cfg: cfg, log: cmp.Or(cfg.Logger, slog.Default()), now: time.Now}
	gather := cfg.Metrics
	if gather == nil {
		gather = prometheus.NewRegistry()
	}
	o.rec = newRecorder(gather, time.Duration(MaxMinutes)*time.Minute)
	if cfg.Dir != "" {
		o.load()
	}
	return o, nil
}

// history is the content of the history file.
type history struct {
	Version int             `json:"version"`
	Flows   []pipeline.Flow `json:"flows"`
	Series  []minuteValues  `json:"series"`
}

const historyVersion = 1

func (o *Overview) path() string { return filepath.Join(o.cfg.Dir, HistoryFile) }

// load reads the history file, if any, into the recorder and the flows.
func (o *Overview) load() {
	b, err := os.ReadFile(o.path())
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var h history
	if err == nil {
		err = json.Unmarshal(b, &h)
		if err == nil && h.Version != historyVersion {
			err = fmt.Errorf("version %d, this insertfn writes version %d", h.Version, historyVersion)
		}
	}
	if err != nil {
		o.log.Warn("overview: the history of the delivery overview cannot be read and is ignored: the charts start empty (the file is replaced at the next save)",
			"path", o.path(), "err", err)
		return
	}
	flows := o.cfg.Flows.Restore(h.Flows)
	minutes := o.rec.restore(h.Series, o.now())
	o.log.Debug("overview: history read", "path", o.path(), "flows", flows, "minutes", minutes)
}

// Sample reads the metrics once and adds what grew since the last read to
// the current minute. [Overview.Run] calls it every Config.Every.
func (o *Overview) Sample() error {
	if err := o.rec.sample(o.now()); err != nil {
		return fmt.Errorf("overview: reading the metrics: %w", err)
	}
	return nil
}

// Save writes the history to Config.Dir, atomically (a temporary file
// renamed over the old one): a crash leaves the old history or the new,
// never half of one. Without a Dir it does nothing.
func (o *Overview) Save() error {
	if o.cfg.Dir == "" {
		return nil
	}
	b, err := json.Marshal(history{Version: historyVersion, Flows: o.cfg.Flows.History(), Series: o.rec.history()})
	if err != nil {
		return fmt.Errorf("overview: encoding the history: %w", err)
	}
	o.saveM.Lock()
	defer o.saveM.Unlock()
	err = os.MkdirAll(filepath.Dir(o.path()), 0o700)
	if err == nil {
		err = atomicfile.Write(o.path(), b)
	}
	if err != nil {
		return fmt.Errorf("overview: saving the history (check that %s is writable and the disk not full): %w", o.cfg.Dir, err)
	}
	return nil
}

// Run reads the metrics every Config.Every and saves the history whenever
// a minute has passed, until ctx is done; then it reads and saves a last
// time. Run it once the pipeline runs, and stop it after the pipeline has
// stopped, so that the last counts are in the saved history.
func (o *Overview) Run(ctx context.Context) {
	t := time.NewTicker(o.cfg.Every)
	defer t.Stop()
	saved := o.now().Unix() / 60
	var lastErr string
	report := func(err error) {
		switch {
		case err == nil:
			lastErr = ""
		case err.Error() != lastErr: // once per distinct failure, not every few seconds
			lastErr = err.Error()
			o.log.Warn(lastErr)
		}
	}
	for {
		select {
		case <-ctx.Done():
			report(o.Sample())
			report(o.Save())
			return
		case <-t.C:
		}
		report(o.Sample())
		if m := o.now().Unix() / 60; m != saved {
			saved = m
			report(o.Save())
		}
	}
}

// Handler serves, under its mount point:
//
//	GET /             the page
//	GET /flow.json    ?source=NAME&minutes=N (default: the first source, 60)
//	                  {"sources": [...], "flow": pipeline.Flow}
//	GET /data.json    ?source=NAME&minutes=N (1 to 1440, default 60): [Data]
func (o *Overview) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Content-Security-Policy", pageCSP)
		w.Write(page)
	})
	mux.HandleFunc("GET /flow.json", func(w http.ResponseWriter, r *http.Request) {
		source, minutes, ok := o.query(w, r, 7*24*60)
		if !ok {
			return
		}
		now := o.now()
		writeJSON(w, http.StatusOK, struct {
			Sources []string      `json:"sources"`
			Flow    pipeline.Flow `json:"flow"`
		}{o.cfg.Flows.Sources(), o.cfg.Flows.Flow(source, now.Add(-time.Duration(minutes-1)*time.Minute), now)})
	})
	mux.HandleFunc("GET /data.json", func(w http.ResponseWriter, r *http.Request) {
		source, minutes, ok := o.query(w, r, MaxMinutes)
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, o.Data(source, minutes))
	})
	return mux
}

// query reads ?source and ?minutes (at most max), or answers 400.
func (o *Overview) query(w http.ResponseWriter, r *http.Request, max int) (string, int, bool) {
	minutes := 60
	if m := r.URL.Query().Get("minutes"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 || n > max {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("minutes %q: want a whole number from 1 to %d", m, max)})
			return "", 0, false
		}
		minutes = n
	}
	source := r.URL.Query().Get("source")
	if source == "" {
		if sources := o.cfg.Flows.Sources(); len(sources) > 0 {
			source = sources[0]
		}
	}
	return source, minutes, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Data is what the page charts: for one source, minute by minute over a
// window that ends with the current minute. Every Values has one entry
// per minute, oldest first.
type Data struct {
	Sources []string `json:"sources"`
	Source  string   `json:"source"`
	// From is the start of the first minute.
	From    time.Time `json:"from"`
	Minutes int       `json:"minutes"`
	// Flow is the source's totals over the window.
	Flow     pipeline.Flow `json:"flow"`
	Received []uint64      `json:"received"`
	// Dropped are the source functions' drops, one series per function
	// and reason.
	Dropped      []Series            `json:"dropped"`
	Destinations []DestinationSeries `json:"destinations"`
	Functions    []FunctionSeries    `json:"functions"`
	// ConsentLookups are the functions' consent lookups, one series per
	// result (found, not_found, error) and store backend; of all sources.
	ConsentLookups []Series `json:"consent_lookups"`
}

// Series is one named count per minute.
type Series struct {
	Name   string    `json:"name"`
	Total  float64   `json:"total"`
	Values []float64 `json:"values"`
}

// DestinationSeries is one destination's counts per minute, for the
// source (delivered, failed, filtered) and of all sources (dead letters).
type DestinationSeries struct {
	Name                 string   `json:"name"`
	Delivered            []uint64 `json:"delivered"`
	Failed               []uint64 `json:"failed"`
	FilteredConsent      []uint64 `json:"filtered_consent"`
	FilteredIntegrations []uint64 `json:"filtered_integrations"`
	FilteredByFilter     []uint64 `json:"filtered_filter"` // by any of its filters
	Dropped              []uint64 `json:"dropped"`         // by the destination's functions
	// Dead is the number of dead letters at the end of each minute (null
	// before the first reading), DeadNow the last one read.
	Dead    []Number `json:"dead"`
	DeadNow float64  `json:"dead_now"`
}

// FunctionSeries is one function's runs per minute, of all sources.
type FunctionSeries struct {
	Name string `json:"name"`
	// Version is the live version's hash ("" if unknown).
	Version string `json:"version"`
	// Runs, per minute, and their results over the window (delivered,
	// dropped, failed: the function failed and its policy decided).
	Runs    []float64          `json:"runs"`
	Results map[string]float64 `json:"results"`
	// Errors are the runs that ended in an error, one series per kind.
	Errors []Series `json:"errors"`
	// P50 and P99 are the duration percentiles, in milliseconds, per
	// minute (null in a minute without a timed run: one run in sixteen is
	// timed) and over the window.
	P50       []Number `json:"p50_ms"`
	P99       []Number `json:"p99_ms"`
	P50Window Number   `json:"p50_ms_window"`
	P99Window Number   `json:"p99_ms_window"`
}

// Number is a float that is null in JSON when it is not a number (no
// data).
type Number float64

// MarshalJSON writes the number, or null for NaN and infinities.
func (n Number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 6, 64), nil
}

// UnmarshalJSON reads a number, or null as NaN.
func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Number(math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	*n = Number(f)
	return err
}

// Data returns the charts' data of source over the last minutes minutes,
// the current one included.
func (o *Overview) Data(source string, minutes int) Data {
	now := o.now()
	hi := now.Unix() / 60
	lo := hi - int64(minutes) + 1
	from := time.Unix(lo*60, 0).UTC()
	d := Data{Sources: o.cfg.Flows.Sources(), Source: source, From: from, Minutes: minutes,
		Flow: o.cfg.Flows.Flow(source, from, now), Received: make([]uint64, minutes)}
	if d.Sources == nil {
		d.Sources = []string{}
	}
	d.Dropped, d.ConsentLookups = []Series{}, []Series{} // arrays in JSON, never null

	// The source's flows, minute by minute.
	drops := make(map[[2]string][]float64)
	dests := make(map[string]*DestinationSeries)
	dest := func(name string) *DestinationSeries {
		ds := dests[name]
		if ds == nil {
			ds = &DestinationSeries{Name: name, Delivered: make([]uint64, minutes), Failed: make([]uint64, minutes),
				FilteredConsent: make([]uint64, minutes), FilteredIntegrations: make([]uint64, minutes), FilteredByFilter: make([]uint64, minutes),
				Dropped: make([]uint64, minutes), Dead: nans(minutes)}
			dests[name] = ds
		}
		return ds
	}
	for _, name := range o.cfg.Destinations {
		dest(name)
	}
	for i, f := range o.cfg.Flows.Minutes(source, from, now) {
		d.Received[i] = f.Received
		for _, x := range f.Dropped {
			k := [2]string{x.Function, x.Reason}
			if drops[k] == nil {
				drops[k] = make([]float64, minutes)
			}
			drops[k][i] = float64(x.Count)
		}
		for _, df := range f.Destinations {
			ds := dest(df.Name)
			ds.Delivered[i], ds.Failed[i] = df.Delivered, df.Failed
			ds.FilteredConsent[i], ds.FilteredIntegrations[i] = df.FilteredConsent, df.FilteredIntegrations
			for _, x := range df.FilteredByFilter {
				ds.FilteredByFilter[i] += x.Count
			}
			for _, x := range df.Dropped {
				ds.Dropped[i] += x.Count
			}
		}
	}
	for k, v := range drops {
		d.Dropped = append(d.Dropped, series(k[0]+": "+k[1], v))
	}
	sortSeries(d.Dropped)

	// Dead letters: a gauge; a minute without a reading is unknown.
	for k, v := range o.rec.series(kindDead, lo, hi, math.NaN()) {
		ds := dest(k.A)
		for i, n := range v {
			ds.Dead[i] = Number(n)
			if !math.IsNaN(n) {
				ds.DeadNow = n
			}
		}
	}
	d.Destinations = make([]DestinationSeries, 0, len(dests))
	for _, ds := range dests {
		d.Destinations = append(d.Destinations, *ds)
	}
	slices.SortFunc(d.Destinations, func(a, b DestinationSeries) int { return cmp.Compare(a.Name, b.Name) })

	d.Functions = o.functions(minutes, lo, hi)

	for k, v := range o.rec.series(kindLookups, lo, hi, 0) {
		d.ConsentLookups = append(d.ConsentLookups, series(k.B+" ("+k.A+")", v))
	}
	sortSeries(d.ConsentLookups)
	return d
}

// functions returns the functions' series: every function live or with
// runs in the window.
func (o *Overview) functions(minutes int, lo, hi int64) []FunctionSeries {
	fns := make(map[string]*FunctionSeries)
	fn := func(name string) *FunctionSeries {
		f := fns[name]
		if f == nil {
			f = &FunctionSeries{Name: name, Runs: make([]float64, minutes), Results: make(map[string]float64), Errors: []Series{},
				P50: nans(minutes), P99: nans(minutes), P50Window: Number(math.NaN()), P99Window: Number(math.NaN())}
			fns[name] = f
		}
		return f
	}
	var live map[string]string
	if o.cfg.Live != nil {
		live = o.cfg.Live()
	}
	for name, version := range live {
		fn(name).Version = version
	}
	for k, v := range o.rec.series(kindRuns, lo, hi, 0) {
		f := fn(k.A)
		for i, n := range v {
			f.Runs[i] += n
			f.Results[k.B] += n
		}
	}
	for k, v := range o.rec.series(kindErrors, lo, hi, 0) {
		f := fn(k.A)
		f.Errors = append(f.Errors, series(k.B, v))
	}
	// Durations: per function, the bucket counts of each minute and of
	// the window, then their percentiles.
	perFn := make(map[string][]struct {
		le float64
		v  []float64
	})
	for k, v := range o.rec.series(kindDuration, lo, hi, 0) {
		le, err := strconv.ParseFloat(k.B, 64)
		if err != nil {
			continue
		}
		perFn[k.A] = append(perFn[k.A], struct {
			le float64
			v  []float64
		}{le, v})
	}
	for name, bs := range perFn {
		f := fn(name)
		window := make([]bucket, len(bs))
		for j, b := range bs {
			window[j].le = b.le
			for _, n := range b.v {
				window[j].count += n
			}
		}
		f.P50Window, f.P99Window = ms(quantile(0.5, window)), ms(quantile(0.99, window))
		minute := make([]bucket, len(bs))
		for i := range minutes {
			for j, b := range bs {
				minute[j] = bucket{b.le, b.v[i]}
			}
			f.P50[i], f.P99[i] = ms(quantile(0.5, minute)), ms(quantile(0.99, minute))
		}
	}
	out := make([]FunctionSeries, 0, len(fns))
	for _, f := range fns {
		sortSeries(f.Errors)
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b FunctionSeries) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func ms(seconds float64) Number { return Number(seconds * 1000) }

func nans(n int) []Number {
	out := make([]Number, n)
	for i := range out {
		out[i] = Number(math.NaN())
	}
	return out
}

func series(name string, v []float64) Series {
	s := Series{Name: name, Values: v}
	for _, n := range v {
		s.Total += n
	}
	return s
}

func sortSeries(s []Series) {
	slices.SortFunc(s, func(a, b Series) int { return cmp.Compare(a.Name, b.Name) })
}
