package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/insertfn/insertfn/bench/cost"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/runtime"
)

var benchCmd = &command{
	name:  "bench",
	short: "measure what functions cost per event, side by side",
	usage: `Usage: insertfn bench FN.wasm [FN2.wasm ...] [flags]

Runs each function on the same events against the same stored consent and
reports, side by side: per-event time (mean, p50, p90, p99), host
allocations per event, verdicts (delivered, dropped by reason, errors by
kind), throughput at each concurrency, cold start (load without a cache,
from the on-disk cache, with the code in memory), memory per pooled
instance, wasm size, and a cost projection per million events. Functions
are measured in interleaved rounds (A, B, A, B, ...) so that the machine's
drift hits them alike. A progress line goes to stderr while it runs.

Flags (before or after the functions):
  --events EVENTS.ndjson  the events, one JSON object per line (default:
                          generated analytics.js track, identify and page
                          events with consent, and their users' stored
                          consent)
  --consent RECORDS       the stored consent (JSON array, one record or
                          NDJSON, as 'insertfn test' reads); with generated
                          events it replaces the generated records
  --settings S.json       the functions' settings, a JSON object (default {})
  --fetch-allow PREFIX    a URL prefix the JavaScript functions may fetch
                          (repeatable), as a manifest's fetch.allow
  --mismatch SHARE        generated events whose consent differs from the
                          stored record (default 0.1)
  --duration D            time measuring each function's per-event time,
                          split over the rounds (default 10s); each
                          concurrency level runs D/rounds per function
  --rounds N              interleaved rounds (default 5)
  --concurrency LIST      goroutines calling the function at once, e.g.
                          1,2,4 (default 1,2,4)
  --price-gb-second P     dollars per GB-second (default 0.0000166667)
  --price-request P       dollars per million requests (default 0.20)
  --json                  print one JSON object instead of the table
  --html REPORT.html      also write a self-contained HTML report with charts

The default prices are AWS Lambda's public list prices for x86, the
infrastructure Segment's functions run on. The projection per million
events is:

  GB-seconds = 1e6 × mean seconds per event × memory per instance (GB)
  total $    = GB-seconds × price per GB-second + price per million requests

Exit status: 0 done, 1 a function failed to run, 2 bad usage or input.
`,
	run: runBench,
}

func runBench(c *command, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench")
	var fetchAllow stringList
	fs.Var(&fetchAllow, "fetch-allow", "")
	eventsArg := fs.String("events", "", "")
	consentArg := fs.String("consent", "", "")
	settingsArg := fs.String("settings", "", "")
	mismatch := fs.Float64("mismatch", cost.DefaultMismatch, "")
	duration := fs.Duration("duration", cost.DefaultDuration, "")
	rounds := fs.Int("rounds", cost.DefaultRounds, "")
	concurrency := fs.String("concurrency", "1,2,4", "")
	priceGBs := fs.Float64("price-gb-second", cost.LambdaGBSecond, "")
	priceReq := fs.Float64("price-request", cost.LambdaPerMillionRequests, "")
	asJSON := fs.Bool("json", false, "")
	htmlPath := fs.String("html", "", "")
	pos, code, ok := parseArgs(c, fs, args, stdout, stderr)
	if !ok {
		return code
	}
	levels, err := parseLevels(*concurrency)
	switch {
	case len(pos) == 0:
		return usageError(c, stderr, "missing FN.wasm, a function to measure")
	case err != nil:
		return usageError(c, stderr, err.Error())
	case *duration <= 0:
		return usageError(c, stderr, fmt.Sprintf("--duration %s: want a positive duration", *duration))
	case *rounds < 1:
		return usageError(c, stderr, fmt.Sprintf("--rounds %d: want at least 1", *rounds))
	case *mismatch < 0 || *mismatch > 1:
		return usageError(c, stderr, fmt.Sprintf("--mismatch %g: want a share from 0 to 1", *mismatch))
	case *priceGBs < 0 || *priceReq < 0:
		return usageError(c, stderr, "prices must not be negative")
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "insertfn bench: "+format+"\n", a...)
		return exitUsage
	}

	var settings []byte
	if *settingsArg != "" {
		if settings, err = readObject("settings", *settingsArg); err != nil {
			return fail("%v", err)
		}
	}
	targets := make([]cost.Target, 0, len(pos))
	names := map[string]int{}
	for _, p := range pos {
		wasm, err := os.ReadFile(p)
		if err != nil {
			return fail("function %s: %v", p, unwrapPath(err))
		}
		lang := runtime.WebAssembly
		switch {
		case strings.HasSuffix(strings.ToLower(p), ".js"):
			lang = runtime.JavaScript // a Segment function file, as it is
		case !bytes.HasPrefix(wasm, []byte("\x00asm")):
			return fail("function %s: not a WebAssembly module (build one with 'insertfn build') nor a .js file", p)
		}
		name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(p), ".wasm"), ".js")
		if names[name]++; names[name] > 1 {
			name = fmt.Sprintf("%s#%d", name, names[name])
		}
		targets = append(targets, cost.Target{Name: name, Path: p, Wasm: wasm, Settings: settings, Language: lang,
			Fetch: runtime.FetchPolicy{Allow: fetchAllow}})
	}

	var w *cost.Workload
	if *eventsArg != "" {
		events, err := cost.LoadEvents(*eventsArg)
		if err != nil {
			return fail("%v", err)
		}
		w = &cost.Workload{Events: events, Source: fmt.Sprintf("%d events from %s", len(events), *eventsArg)}
	} else {
		m := *mismatch
		if m == 0 {
			m = -1 // none
		}
		if w, err = cost.Generate(cost.GenerateConfig{Mismatch: m}); err != nil {
			return fail("%v", err)
		}
	}
	if *consentArg != "" {
		store, err := consentstore.LoadFile(*consentArg)
		if err != nil {
			return fail("stored consent: %v", err)
		}
		w.Store = store
		w.Source += fmt.Sprintf("; %d stored records from %s", store.Len(), *consentArg)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := cost.Run(ctx, targets, w, cost.Config{
		Duration: *duration, Rounds: *rounds, Concurrency: levels,
		Prices:   &cost.Prices{GBSecond: *priceGBs, PerMillionRequests: *priceReq},
		Progress: stderr,
	})
	if err != nil {
		fmt.Fprintf(stderr, "insertfn bench: %v\n", err)
		return exitFail
	}
	if *htmlPath != "" {
		if err := writeHTMLReport(rep, *htmlPath); err != nil {
			return fail("%v", err)
		}
	}
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "insertfn bench: %v\n", err)
		return exitFail
	}
	// A function that failed every event measured its error path: the
	// figures say nothing of it, so the run fails, with the reason.
	status := exitOK
	for _, f := range rep.Functions {
		if f.Verdicts.FailedAll() {
			fmt.Fprintf(stderr, "insertfn bench: %s failed every event (%s); the figures measure its error path\n", f.Name, f.Verdicts.FirstError)
			status = exitFail
		}
	}
	return status
}

// writeHTMLReport writes the HTML report to path.
func writeHTMLReport(rep *cost.Report, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--html: %v", unwrapPath(err))
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		return fmt.Errorf("--html %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--html %s: %w", path, err)
	}
	return nil
}

// parseLevels parses --concurrency: a comma-separated list of positive
// integers.
func parseLevels(s string) ([]int, error) {
	var levels []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("--concurrency %q: want a comma-separated list of goroutine counts from 1 to 1024, e.g. 1,2,4", s)
		}
		levels = append(levels, n)
	}
	return levels, nil
}
