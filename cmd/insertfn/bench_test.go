package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/internal/testkit/chromiumtest"
)

// benchReport is the part of the --json output the tests check.
type benchReport struct {
	Machine struct {
		GOOS      string `json:"goos"`
		GOARCH    string `json:"goarch"`
		CPUs      int    `json:"cpus"`
		GoVersion string `json:"go_version"`
	} `json:"machine"`
	Functions []struct {
		Name      string `json:"name"`
		WasmBytes int    `json:"wasm_bytes"`
		Events    int64  `json:"events"`
		Latency   struct {
			MeanNS float64 `json:"mean_ns"`
			P50NS  uint64  `json:"p50_ns"`
			P90NS  uint64  `json:"p90_ns"`
			P99NS  uint64  `json:"p99_ns"`
		} `json:"latency"`
		AllocsPerEvent float64 `json:"allocs_per_event"`
		Verdicts       struct {
			Delivered int64            `json:"delivered"`
			Dropped   map[string]int64 `json:"dropped"`
			Errors    map[string]int64 `json:"errors"`
		} `json:"verdicts"`
		Throughput []struct {
			Concurrency     int     `json:"concurrency"`
			EventsPerSecond float64 `json:"events_per_second"`
		} `json:"throughput"`
		ColdStart struct {
			NoCacheNS   int64 `json:"no_cache_ns"`
			DiskCacheNS int64 `json:"disk_cache_ns"`
			InMemoryNS  int64 `json:"in_memory_ns"`
		} `json:"cold_start"`
		Memory struct {
			InstanceBytes int64 `json:"instance_bytes"`
		} `json:"memory"`
		Cost struct {
			Total float64 `json:"total"`
		} `json:"cost_per_million_events"`
	} `json:"functions"`
}

// TestBench runs insertfn bench on consent-match and ccpa-optout once,
// and checks the table, the JSON and the HTML report of that run.
func TestBench(t *testing.T) {
	ccpa := filepath.Join(t.TempDir(), "ccpa-optout.wasm")
	if code, stdout, stderr := runCLI(t, "build", filepath.Join("..", "..", "examples", "ccpa-optout"), "-o", ccpa); code != 0 {
		t.Fatalf("build ccpa-optout: exit %d\n%s%s", code, stdout, stderr)
	}
	report := filepath.Join(t.TempDir(), "report.html")
	code, stdout, stderr := runCLI(t, "bench", consentMatchWasm, ccpa, "--duration", "100ms", "--rounds", "2",
		"--concurrency", "1,2", "--json", "--html", report)
	if code != 0 {
		t.Fatalf("insertfn bench: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "ccpa-optout: round 2/2") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
	var rep benchReport
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, stdout)
	}
	if rep.Machine.GOOS == "" || rep.Machine.GOARCH == "" || rep.Machine.CPUs < 1 || !strings.HasPrefix(rep.Machine.GoVersion, "go") {
		t.Errorf("machine %+v", rep.Machine)
	}
	if len(rep.Functions) != 2 || rep.Functions[0].Name != "consent-match" || rep.Functions[1].Name != "ccpa-optout" {
		t.Fatalf("functions: %+v", rep.Functions)
	}
	for _, f := range rep.Functions {
		l := f.Latency
		if f.Events <= 0 || l.MeanNS <= 0 || l.P50NS > l.P90NS || l.P90NS > l.P99NS || l.P50NS == 0 {
			t.Errorf("%s: events %d, latency %+v", f.Name, f.Events, l)
		}
		var dropped, errs int64
		for _, n := range f.Verdicts.Dropped {
			dropped += n
		}
		for _, n := range f.Verdicts.Errors {
			errs += n
		}
		if f.Verdicts.Delivered+dropped+errs != f.Events {
			t.Errorf("%s: verdicts %+v do not add up to %d events", f.Name, f.Verdicts, f.Events)
		}
		if errs != 0 {
			t.Errorf("%s: errors %v", f.Name, f.Verdicts.Errors)
		}
		if len(f.Throughput) != 2 || f.Throughput[0].Concurrency != 1 || f.Throughput[1].Concurrency != 2 ||
			f.Throughput[0].EventsPerSecond <= 0 || f.Throughput[1].EventsPerSecond <= 0 {
			t.Errorf("%s: throughput %+v", f.Name, f.Throughput)
		}
		if f.ColdStart.NoCacheNS <= 0 || f.ColdStart.DiskCacheNS <= 0 || f.ColdStart.InMemoryNS <= 0 ||
			f.WasmBytes <= 0 || f.Memory.InstanceBytes <= 0 || f.Cost.Total <= 0 || f.AllocsPerEvent <= 0 {
			t.Errorf("%s: cold start %+v, wasm %d, memory %+v, cost %+v, allocs %g", f.Name, f.ColdStart, f.WasmBytes, f.Memory, f.Cost, f.AllocsPerEvent)
		}
	}
	if rep.Functions[0].Verdicts.Dropped["Consent mismatch"] == 0 {
		t.Errorf("consent-match dropped no mismatch: %+v", rep.Functions[0].Verdicts)
	}
	if rep.Functions[1].Verdicts.Dropped["CCPA opt-out"] == 0 {
		t.Errorf("ccpa-optout dropped no opt-out: %+v", rep.Functions[1].Verdicts)
	}

	html, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "consent-match", "ccpa-optout", `id="latency"`, `id="throughput"`} {
		if !strings.Contains(string(html), want) {
			t.Errorf("the HTML report lacks %s", want)
		}
	}
	t.Run("chromium", func(t *testing.T) { checkInChromium(t, report) })

	// The table, from the same kind of run without --json (one round, one level).
	code, stdout, stderr = runCLI(t, "bench", consentMatchWasm, "--duration", "20ms", "--rounds", "1", "--concurrency", "1", "--mismatch", "0")
	if code != 0 {
		t.Fatalf("insertfn bench: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"function", "p99", "allocs/event", "throughput (events/s)", "no cache", "cost per million events",
		"consent-match", "0% consent mismatch", "$0.0000166667 per GB-second"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the table lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, `dropped "Consent mismatch"`) {
		t.Errorf("--mismatch 0 and yet mismatches:\n%s", stdout)
	}
}

// checkInChromium loads the report in headless Chromium and checks that
// the functions and the charts are in the DOM it renders.
func checkInChromium(t *testing.T, report string) {
	abs, err := filepath.Abs(report)
	if err != nil {
		t.Fatal(err)
	}
	dom := chromiumtest.DumpDOM(t, "file://"+abs)
	for _, want := range []string{"<svg", `id="latency"`, `id="throughput"`, `data-function="consent-match"`, `data-function="ccpa-optout"`,
		"What each function costs"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %s\n%.2000s", want, dom)
		}
	}
}

func TestBenchUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "missing FN.wasm"},
		{[]string{consentMatchWasm, "--concurrency", "1,x"}, "--concurrency"},
		{[]string{consentMatchWasm, "--duration", "0s"}, "--duration"},
		{[]string{consentMatchWasm, "--rounds", "0"}, "--rounds"},
		{[]string{consentMatchWasm, "--mismatch", "2"}, "--mismatch"},
		{[]string{consentMatchWasm, "--price-request", "-1"}, "negative"},
		{[]string{"/nonexistent.wasm"}, "function /nonexistent.wasm"},
		{[]string{testdata("event.json")}, "not a WebAssembly module"},
		{[]string{consentMatchWasm, "--events", testdata("event.json")}, "events"},
		{[]string{consentMatchWasm, "--consent", "/nonexistent.ndjson"}, "stored consent"},
	} {
		code, _, stderr := runCLI(t, append([]string{"bench"}, c.args...)...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("insertfn bench %v: exit %d, stderr %q; want exit 2 mentioning %q", c.args, code, stderr, c.want)
		}
	}
	code, stdout, _ := runCLI(t, "help", "bench")
	if code != 0 || !strings.Contains(stdout, "--price-gb-second") {
		t.Errorf("help bench: exit %d\n%s", code, stdout)
	}
}

// TestBenchFunctionFailingEveryEvent: a function that fails every event
// (gdpr-purpose without its required setting) makes bench exit 1 and say
// why, instead of a table of 100% FunctionError and exit 0.
func TestBenchFunctionFailingEveryEvent(t *testing.T) {
	gdpr := filepath.Join(t.TempDir(), "gdpr-purpose.wasm")
	if code, stdout, stderr := runCLI(t, "build", filepath.Join("..", "..", "examples", "gdpr-purpose"), "-o", gdpr); code != 0 {
		t.Fatalf("build gdpr-purpose: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr := runCLI(t, "bench", gdpr, "--duration", "20ms", "--rounds", "1", "--concurrency", "1")
	if code != 1 || !strings.Contains(stderr, "gdpr-purpose failed every event (") || !strings.Contains(stdout, "first error: ") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s\nwant exit 1, the first error in the table and on stderr", code, stdout, stderr)
	}
}

// TestBenchJavaScript: insertfn bench measures a Segment JavaScript
// function file beside a wasm one, with the same verdicts on the same
// events.
func TestBenchJavaScript(t *testing.T) {
	js := filepath.Join("..", "..", "examples", "consent-match-js", "index.js")
	code, stdout, stderr := runCLI(t, "bench", js, consentMatchWasm, "--duration", "200ms", "--rounds", "1",
		"--concurrency", "1", "--json", "--settings", `{"missingRecord":"pass"}`)
	if code != 0 && strings.Contains(stderr, "make js-engine") {
		if os.Getenv("INSERTFN_REQUIRE_NODE") == "1" {
			t.Fatal(stderr)
		}
		t.Skip(stderr)
	}
	if code != 0 {
		t.Fatalf("insertfn bench: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var rep benchReport
	if err := json.NewDecoder(strings.NewReader(stdout)).Decode(&rep); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, stdout)
	}
	if len(rep.Functions) != 2 || rep.Functions[0].Name != "index" {
		t.Fatalf("functions: %+v", rep.Functions)
	}
	for _, f := range rep.Functions {
		if f.Events <= 0 || len(f.Verdicts.Errors) > 0 || f.Verdicts.Dropped["Consent mismatch"] == 0 {
			t.Errorf("%s: %d events, verdicts %+v: want events, Consent mismatch drops and no errors", f.Name, f.Events, f.Verdicts)
		}
	}
}
