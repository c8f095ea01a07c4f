package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// A stage of an event's path through the server, and the functions whose
// samples are its own. A sample belongs to the stage of the frame nearest
// its leaf that a rule names: a gjson scan under ingest is ingest's, a
// wazero frame under the pipeline is the functions', an allocation (and
// the garbage collection it assists) is the stage's that made it; the
// background garbage collector is a stage of its own. fasthttp's request
// and response code serves both the server (ingest) and the client
// (delivery): its frames go by the server's or client's frame below them.
type stage struct {
	name  string
	funcs []string // prefixes of function names
}

var stages = []stage{
	{"consent store", []string{"github.com/insertfn/insertfn/internal/consentstore", "go.etcd.io/bbolt"}},
	{"functions (sandbox)", []string{"github.com/insertfn/insertfn/runtime", "github.com/insertfn/insertfn/functions", "github.com/tetratelabs/wazero"}},
	{"queue", []string{"github.com/insertfn/insertfn/internal/queue", "github.com/cockroachdb/pebble"}},
	{"routing, filters", []string{"github.com/insertfn/insertfn/internal/pipeline/routing", "github.com/insertfn/insertfn/internal/pipeline/destfilter", "github.com/insertfn/insertfn/internal/pipeline/fql"}},
	{"delivery (batching, encoding, HTTP)", []string{"github.com/insertfn/insertfn/internal/delivery", "github.com/valyala/fasthttp.(*HostClient)", "github.com/valyala/fasthttp.(*Client)"}},
	{"pipeline (decode, process, hand-off)", []string{"github.com/insertfn/insertfn/internal/pipeline"}},
	{"ingest (HTTP, parsing, dedupe)", []string{"github.com/insertfn/insertfn/internal/ingest", "github.com/valyala/fasthttp.(*Server)", "github.com/valyala/fasthttp.(*workerPool)"}},
	{"metrics, admin, debugger", []string{"github.com/insertfn/insertfn/internal/metrics", "github.com/insertfn/insertfn/internal/admin", "github.com/insertfn/insertfn/internal/pipeline/tap", "github.com/prometheus"}},
	{"garbage collector (background)", []string{"runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge"}},
	{"scheduler, network poller", []string{"runtime.schedule", "runtime.findRunnable", "runtime.netpoll", "runtime.mcall", "runtime.park_m"}},
}

const otherStage = "other"

// stageOf returns the stage of a sample's stack (leaf first).
func stageOf(stack []string) string {
	for _, fn := range stack {
		for _, s := range stages {
			for _, p := range s.funcs {
				if strings.HasPrefix(fn, p) {
					return s.name
				}
			}
		}
	}
	return otherStage
}

// share is a stage's part of the samples.
type share struct {
	name    string
	samples time.Duration
}

// classify sorts a CPU profile's samples into stages, with `go tool
// pprof -traces` (one stack per sample, leaf first), largest first.
func classify(profile []byte) ([]share, error) {
	f, err := os.CreateTemp("", "stages-*.pb.gz")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(profile); err != nil {
		return nil, err
	}
	f.Close()
	out, err := exec.Command("go", "tool", "pprof", "-traces", f.Name()).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof -traces: %w", err)
	}
	by := map[string]time.Duration{}
	var value time.Duration
	var stack []string
	flush := func() {
		if len(stack) > 0 {
			by[stageOf(stack)] += value
		}
		stack, value = stack[:0], 0
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			flush()
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		// A sample's first line: its value, then the leaf's function.
		if len(stack) == 0 && len(fields) >= 2 {
			if d, err := time.ParseDuration(fields[0]); err == nil {
				value = d
				stack = append(stack, fields[1])
				continue
			}
		}
		if len(stack) > 0 {
			stack = append(stack, fields[0])
		}
	}
	flush()
	var shares []share
	for name, d := range by {
		shares = append(shares, share{name, d})
	}
	slices.SortFunc(shares, func(a, b share) int { return int(b.samples - a.samples) })
	return shares, nil
}

// printStages prints each stage's share of the server's CPU and its CPU
// time per delivered event.
func printStages(shares []share, m measurement) {
	var total time.Duration
	for _, s := range shares {
		total += s.samples
	}
	if total == 0 || m.delivered == 0 {
		fmt.Println("  (no samples or no event delivered)")
		return
	}
	perEvent := float64(m.cpu.Nanoseconds()) / float64(m.delivered) / 1000
	fmt.Printf("\n  %-40s %7s %14s\n", "stage", "share", "µs per event")
	for _, s := range shares {
		part := float64(s.samples) / float64(total)
		fmt.Printf("  %-40s %6.1f%% %14.2f\n", s.name, 100*part, part*perEvent)
	}
	fmt.Printf("  %-40s %6.1f%% %14.2f\n\n", "total", 100.0, perEvent)
}
