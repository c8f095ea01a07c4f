// Command peers runs the consent-match check on the same events and the same
// stored consent as native Go, insertfn's sandbox (one call per event and in
// batches; Go, C, AssemblyScript and JavaScript functions), an Extism
// plug-in and a JavaScript function in Node.js, and prints one table:
// ns/event (median of the rounds) and the ratio to native.
//
// Run it from bench/peers:
//
//	go run ./cmd/peers [-rounds 5] [-round 500ms] [-mixed=false] [-node node]
//
// It builds examples/consent-match and the Extism guest (extism-guest/) to
// wasm with the Go toolchain first. The C and AssemblyScript versions of
// consent-match are taken as make examples builds them
// (bin/examples/consent-match-c.wasm and consent-match-as.wasm; make
// bench-peers builds them first): each present one adds a row, one call
// per event, beside the Go guest's. The JavaScript versions add two more
// rows, one call per event too: examples/consent-match-js (the fast path,
// the host's consent store through insertfn.consent.compare) and
// examples/consent-match-js-fetch (the fetch path: the function fetches
// the stored consent from a consent service, here a local HTTP server in
// this process that serves the same records); for these two the program
// also times every call of one pass per round and prints the per-event
// p50. A binary built without the JavaScript engine (make js-engine) leaves
// them out. The rounds are interleaved (every implementation once per
// round, in a rotating order) so that the machine's drift hits all alike.
// Every pass over the events checks the verdict counts; the program fails
// when an implementation disagrees.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	stdruntime "runtime"
	"slices"
	"strings"
	"time"

	"github.com/insertfn/insertfn/internal/wasmbuild/recipe"
	"github.com/insertfn/insertfn/runtime"
)

func main() {
	dir := flag.String("dir", ".", "the bench/peers directory (examples/consent-match is at DIR/../../examples/consent-match)")
	rounds := flag.Int("rounds", 5, "rounds per implementation; the table shows the median")
	round := flag.Duration("round", 500*time.Millisecond, "the least time one round of one implementation runs")
	warmup := flag.Duration("node-warmup", 300*time.Millisecond, "time Node.js runs the function before each timed round")
	node := flag.String("node", "node", "the Node.js binary")
	batch := flag.Int("batch", 64, "events per InvokeBatch call")
	mixed := flag.Bool("mixed", true, "drop 10% of the events (stored consent disagrees) and leave 1% without stored consent; false: bench/'s workload, every event delivered")
	others := flag.String("guests", "../../bin/examples", "the directory of the C and AssemblyScript guests (consent-match-c.wasm, consent-match-as.wasm); a relative one is under -dir")
	flag.Parse()
	if *rounds < 1 || *batch < 1 {
		fmt.Fprintln(os.Stderr, "peers: -rounds and -batch must be at least 1")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Stdout, config{dir: *dir, rounds: *rounds, round: *round,
		warmup: *warmup, node: *node, batch: *batch, mixed: *mixed, guests: *others}); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

type config struct {
	dir           string
	rounds        int
	round, warmup time.Duration
	node          string
	batch         int
	mixed         bool
	guests        string
}

// otherGuests are consent-match in the languages other than Go, by the
// file make examples writes, in the order of their rows.
var otherGuests = []struct{ lang, file string }{
	{"C", "consent-match-c.wasm"},
	{"AssemblyScript", "consent-match-as.wasm"},
}

func run(ctx context.Context, out io.Writer, cfg config) error {
	began := time.Now()
	tmp, err := os.MkdirTemp("", "insertfn-peers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	fmt.Fprintln(os.Stderr, "building the guests ...")
	insertfnWasm, err := buildWasm(filepath.Join(cfg.dir, "..", "..", "examples", "consent-match"), filepath.Join(tmp, "consent-match.wasm"))
	if err != nil {
		return err
	}
	extismWasm, err := buildWasm(filepath.Join(cfg.dir, "extism-guest"), filepath.Join(tmp, "consent-match-extism.wasm"))
	if err != nil {
		return err
	}
	nodeVersion, err := exec.Command(cfg.node, "--version").Output()
	if err != nil {
		return fmt.Errorf("node: %v (install Node.js or pass -node PATH)", err)
	}

	w, err := newWorkload(cfg.mixed)
	if err != nil {
		return err
	}
	want := expected(cfg.mixed)
	native := newNative(w)
	single, batched, err := newInsertfn(ctx, w, insertfnWasm, cfg.batch, "")
	if err != nil {
		return err
	}
	defer batched.close()
	ext, err := newExtism(ctx, w, extismWasm)
	if err != nil {
		return err
	}
	defer ext.close()
	js, err := newNode(w, cfg.node, tmp, cfg.warmup)
	if err != nil {
		return err
	}
	impls := []*impl{native, single, batched, ext, js}
	// The guests in other languages come last, so that the rows above keep
	// their places; one call per event, as the Go guest's row.
	var langs []string
	guests := cfg.guests
	if !filepath.IsAbs(guests) {
		guests = filepath.Join(cfg.dir, guests)
	}
	for _, g := range otherGuests {
		wasm, err := os.ReadFile(filepath.Join(guests, g.file))
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "no %s in %s: the %s row is left out (make examples builds it)\n", g.file, guests, g.lang)
			continue
		}
		if err != nil {
			return err
		}
		one, both, err := newInsertfn(ctx, w, wasm, cfg.batch, g.lang)
		if err != nil {
			return err
		}
		defer both.close()
		impls = append(impls, one)
		langs = append(langs, g.lang)
	}
	// The JavaScript versions, after them.
	jsFast, jsFetch := -1, -1
	svc, err := newConsentService(w)
	if err != nil {
		return err
	}
	defer svc.close()
	fast, fetch, closeJS, err := newJavaScript(ctx, w, cfg.dir, svc)
	switch {
	case errors.Is(err, runtime.ErrNoJSEngine):
		fmt.Fprintf(os.Stderr, "the JavaScript rows are left out: %v\n", err)
	case err != nil:
		return err
	default:
		defer closeJS()
		jsFast, jsFetch = len(impls), len(impls)+1
		impls = append(impls, fast, fetch)
	}

	// One untimed pass each: the verdicts must agree before any clock runs.
	for _, im := range impls {
		if im.pass == nil {
			continue
		}
		c, err := im.pass(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", im.name, err)
		}
		if c != want {
			return fmt.Errorf("%s: verdicts %+v, want %+v: the implementations disagree", im.name, c, want)
		}
	}

	figures := make([][]float64, len(impls))
	latencies := make([][]time.Duration, len(impls)) // of the implementations that sample
	for r := range cfg.rounds {
		fmt.Fprintf(os.Stderr, "round %d/%d ...\n", r+1, cfg.rounds)
		for k := range impls {
			i := (k + r) % len(impls) // rotate the order
			stdruntime.GC()           // no garbage of the one before is collected on this one's clock
			ns, err := measure(ctx, impls[i], cfg.round, want)
			if err != nil {
				return err
			}
			figures[i] = append(figures[i], ns)
			if im := impls[i]; im.sample != nil {
				lat := make([]time.Duration, users)
				c, err := im.sample(ctx, lat)
				if err != nil {
					return fmt.Errorf("%s: %w", im.name, err)
				}
				if c != want {
					return fmt.Errorf("%s: verdicts %+v, want %+v", im.name, c, want)
				}
				latencies[i] = append(latencies[i], lat...)
			}
		}
	}

	medians := make([]float64, len(impls))
	for i := range impls {
		medians[i] = median(figures[i])
	}
	fmt.Fprintf(out, "consent-match, %d events (%d delivered, %d dropped per pass), median of %d rounds of >= %v each\n",
		users, want.delivered, want.dropped, cfg.rounds, cfg.round)
	fmt.Fprintf(out, "machine: %s, %d CPUs, %s/%s, %s, node %s\n\n", cpuModel(), stdruntime.NumCPU(),
		stdruntime.GOOS, stdruntime.GOARCH, stdruntime.Version(), strings.TrimSpace(string(nodeVersion)))
	fmt.Fprintln(out, "| implementation | ns/event (median) | range | ratio to native | delivered | dropped |")
	fmt.Fprintln(out, "| --- | ---: | ---: | ---: | ---: | ---: |")
	for i, im := range impls {
		fmt.Fprintf(out, "| %s | %.0f | %.0f-%.0f | %.2f | %d | %d |\n", im.name, medians[i],
			slices.Min(figures[i]), slices.Max(figures[i]), medians[i]/medians[0], want.delivered, want.dropped)
	}
	fmt.Fprintln(out)
	nat, one, bat, ex := medians[0], medians[1], medians[2], medians[3]
	fmt.Fprintf(out, "Extism / insertfn: %.1fx (Invoke per event), %.1fx (InvokeBatch); target >= 20x: %s\n",
		ex/one, ex/bat, verdict(ex/one >= 20, ex/bat >= 20))
	fmt.Fprintf(out, "insertfn / native: %.2fx (Invoke per event), %.2fx (InvokeBatch); target <= 2x: %s\n",
		one/nat, bat/nat, verdict(one/nat <= 2, bat/nat <= 2))
	for i, lang := range langs {
		m := medians[5+i]
		fmt.Fprintf(out, "insertfn %s guest / Go guest: %.2fx (Invoke per event); target <= 1.2x: %s\n",
			lang, m/one, map[bool]string{true: "met", false: "NOT met"}[m/one <= 1.2])
	}
	if jsFast >= 0 {
		p50 := median(microseconds(latencies[jsFast]))
		fmt.Fprintf(out, "insertfn JavaScript (fast path): p50 %.1f µs (the table's mean %.1f µs); target <= 25 µs: %s\n",
			p50, medians[jsFast]/1000, map[bool]string{true: "met", false: "NOT met"}[p50 <= 25])
		fmt.Fprintf(out, "insertfn JavaScript (fetch path): p50 %.1f µs (the table's mean %.1f µs); no target\n",
			median(microseconds(latencies[jsFetch])), medians[jsFetch]/1000)
	} else {
		fmt.Fprintln(out, "insertfn JavaScript: not run (this binary was built without the JavaScript engine: make js-engine)")
	}
	fmt.Fprintf(out, "total time: %v\n", time.Since(began).Round(time.Second))
	return nil
}

// verdict says which of the two insertfn ways meets a target.
func verdict(single, batch bool) string {
	switch {
	case single && batch:
		return "met"
	case batch:
		return "met in batches, not per single call"
	case single:
		return "met per single call, not in batches"
	}
	return "NOT met"
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// microseconds returns ds in µs.
func microseconds(ds []time.Duration) []float64 {
	us := make([]float64, len(ds))
	for i, d := range ds {
		us[i] = float64(d.Nanoseconds()) / 1000
	}
	return us
}

// buildWasm compiles the Go package in dir into out with the recipe of
// `insertfn build` (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared -trimpath)
// and returns the module's bytes.
func buildWasm(dir, out string) ([]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(abs, "main.go")); err != nil {
		return nil, fmt.Errorf("no guest at %s (run from bench/peers or pass -dir): %w", abs, err)
	}
	cmd := recipe.Command("go", abs, out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s: %v\n%s", abs, err, msg)
	}
	return os.ReadFile(out)
}

// cpuModel returns the CPU's model name from /proc/cpuinfo, or GOARCH.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return stdruntime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return stdruntime.GOARCH
}
