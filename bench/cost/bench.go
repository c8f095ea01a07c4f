package cost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	stdruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insertfn/insertfn/runtime"
)

// Target is one function to measure.
type Target struct {
	// Name identifies the function in the report; it must be unique.
	Name string
	// Path is where the wasm came from, for the report (may be empty).
	Path string
	// Wasm is the module's bytes, or the JavaScript file's (Language).
	Wasm []byte
	// Language says what Wasm is (the zero value: a WebAssembly module).
	Language runtime.Language
	// Settings is the function's settings, a JSON object (empty: {}).
	Settings []byte
	// Fetch is where a JavaScript function's fetch may go.
	Fetch runtime.FetchPolicy
}

// Config shapes a run. The zero value is ready to use.
type Config struct {
	// Duration is the time each function's per-event time is measured,
	// split evenly over the rounds (default 10s). Each concurrency level
	// then runs Duration/Rounds per function.
	Duration time.Duration
	// Rounds is the number of interleaved rounds (default 5).
	Rounds int
	// Concurrency lists the numbers of goroutines calling Invoke at once
	// for the throughput runs (default 1, 2, 4).
	Concurrency []int
	// Prices price the projection (nil: [DefaultPrices]).
	Prices *Prices
	// Limits bound each function; PoolSize is set to the highest
	// concurrency.
	Limits runtime.Limits
	// Progress, when set, receives a progress line that rewrites itself
	// ("\r") while the run goes on, cleared when it ends.
	Progress io.Writer
}

// Defaults of Config.
const (
	DefaultDuration = 10 * time.Second
	DefaultRounds   = 5
)

// DefaultConcurrency is the concurrency levels measured by default.
var DefaultConcurrency = []int{1, 2, 4}

func (c Config) withDefaults() (Config, error) {
	if c.Duration < 0 || c.Rounds < 0 {
		return c, fmt.Errorf("bench: duration %s and rounds %d must not be negative", c.Duration, c.Rounds)
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Rounds == 0 {
		c.Rounds = DefaultRounds
	}
	if len(c.Concurrency) == 0 {
		c.Concurrency = DefaultConcurrency
	}
	for _, n := range c.Concurrency {
		if n < 1 || n > 1024 {
			return c, fmt.Errorf("bench: concurrency %d: want 1 to 1024 goroutines", n)
		}
	}
	if c.Prices == nil {
		p := DefaultPrices()
		c.Prices = &p
	}
	if c.Prices.GBSecond < 0 || c.Prices.PerMillionRequests < 0 {
		return c, fmt.Errorf("bench: prices must not be negative: %+v", *c.Prices)
	}
	return c, nil
}

// Report is the result of a run: JSON-ready.
type Report struct {
	Machine   Machine     `json:"machine"`
	Settings  RunSettings `json:"settings"`
	Functions []*Result   `json:"functions"`
}

// Machine describes where the run happened.
type Machine struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model,omitempty"`
	GoVersion  string `json:"go_version"`
}

// RunSettings are the settings the run used, defaults filled in.
type RunSettings struct {
	Start       time.Time `json:"start"`
	Workload    string    `json:"workload"`
	Events      int       `json:"distinct_events"`
	DurationNS  int64     `json:"duration_ns"`
	Rounds      int       `json:"rounds"`
	Concurrency []int     `json:"concurrency"`
	Prices      Prices    `json:"prices"`
}

// Result is what one function costs.
type Result struct {
	Name      string `json:"name"`
	Path      string `json:"path,omitempty"`
	Hash      string `json:"hash"`
	WasmBytes int    `json:"wasm_bytes"`
	// Events is the events of the measured rounds, the sum of Verdicts.
	Events int64 `json:"events"`
	// Latency is the per-event time of the measured rounds.
	Latency Latency `json:"latency"`
	// AllocsPerEvent is host heap allocations per event in the rounds.
	AllocsPerEvent float64  `json:"allocs_per_event"`
	Verdicts       Verdicts `json:"verdicts"`
	// Throughput has one entry per concurrency level, in the order given.
	Throughput []Throughput `json:"throughput"`
	ColdStart  ColdStart    `json:"cold_start"`
	Memory     Memory       `json:"memory"`
	Cost       Cost         `json:"cost_per_million_events"`

	hist histogram
}

// Latency summarises per-event times, in nanoseconds.
type Latency struct {
	MeanNS float64 `json:"mean_ns"`
	MinNS  uint64  `json:"min_ns"`
	P50NS  uint64  `json:"p50_ns"`
	P90NS  uint64  `json:"p90_ns"`
	P99NS  uint64  `json:"p99_ns"`
	MaxNS  uint64  `json:"max_ns"`
	// RoundMeansNS is each round's mean, to see drift.
	RoundMeansNS []float64 `json:"round_means_ns"`
	// Histogram is the distribution: the non-empty buckets in order.
	Histogram []Bucket `json:"histogram"`
}

// Verdicts count what became of the events.
type Verdicts struct {
	Delivered int64 `json:"delivered"`
	// Dropped counts drops by reason.
	Dropped map[string]int64 `json:"dropped"`
	// Errors counts errors by kind (runtime.ErrorKind).
	Errors map[string]int64 `json:"errors"`
	// FirstError is the first failed event's error kind and message, so
	// that a function that fails says why ("" when none failed).
	FirstError string `json:"first_error,omitempty"`
}

// FailedAll reports whether every event failed: the figures then measure
// an error path, not the function.
func (v Verdicts) FailedAll() bool {
	e := v.ErrorsTotal()
	return e > 0 && v.Delivered == 0 && v.DroppedTotal() == 0
}

// DroppedTotal returns the dropped events, all reasons together.
func (v Verdicts) DroppedTotal() int64 { return sumValues(v.Dropped) }

// ErrorsTotal returns the failed events, all kinds together.
func (v Verdicts) ErrorsTotal() int64 { return sumValues(v.Errors) }

func sumValues(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

// Throughput is the events per second at one concurrency.
type Throughput struct {
	Concurrency     int     `json:"concurrency"`
	Events          int64   `json:"events"`
	ElapsedNS       int64   `json:"elapsed_ns"`
	EventsPerSecond float64 `json:"events_per_second"`
}

// ColdStart is the time to load the function, three ways (see the package
// documentation).
type ColdStart struct {
	NoCacheNS   int64 `json:"no_cache_ns"`
	DiskCacheNS int64 `json:"disk_cache_ns"`
	InMemoryNS  int64 `json:"in_memory_ns"`
}

// Memory is the host memory the function holds.
type Memory struct {
	// InstanceBytes is the memory per pooled instance, used by the cost.
	InstanceBytes int64 `json:"instance_bytes"`
	// Method says how InstanceBytes was measured: "pool-growth" (the heap
	// and linear memory the pool gained per instance it started) or
	// "loaded-function" (the heap and linear memory a loaded function
	// holds with one warm instance, when the pool never grew).
	Method string `json:"method"`
	// LoadedBytes is the Go heap a loaded function holds with one warm
	// instance, plus that instance's linear memory (outside the heap).
	LoadedBytes int64 `json:"loaded_bytes"`
	// Instances is the most instances the pool held.
	Instances int `json:"instances"`
}

// Run measures every target on the workload; see the package documentation
// for the method.
//
// # Parameters
//   - ctx: ends the run early (its error is returned).
//   - targets: the functions, at least one, with distinct names.
//   - w: the events (at least one) and the stored consent.
//   - cfg: durations, rounds, concurrency, prices.
//
// # Results
//   - the report, functions in the order of targets;
//   - an error when a function does not load or fails outside the
//     sandbox (a sandbox failure on an event is counted, not returned),
//     or when the configuration is invalid.
func Run(ctx context.Context, targets []Target, w *Workload, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, errors.New("bench: no function to measure")
	}
	if w == nil || len(w.Events) == 0 {
		return nil, errors.New("bench: no event to run the functions on")
	}
	seen := map[string]bool{}
	for _, t := range targets {
		if seen[t.Name] {
			return nil, fmt.Errorf("bench: two functions named %q: give them distinct names", t.Name)
		}
		seen[t.Name] = true
	}
	rep := &Report{
		Machine: machine(),
		Settings: RunSettings{Start: time.Now().UTC(), Workload: w.Source, Events: len(w.Events),
			DurationNS: int64(cfg.Duration), Rounds: cfg.Rounds, Concurrency: slices.Clone(cfg.Concurrency), Prices: *cfg.Prices},
	}
	prog := &progress{w: cfg.Progress, total: len(targets) * (1 + cfg.Rounds + len(cfg.Concurrency))}
	defer prog.finish()

	limits := cfg.Limits
	limits.PoolSize = slices.Max(cfg.Concurrency)
	subjects := make([]*subject, len(targets))
	defer func() {
		for _, s := range subjects {
			if s != nil {
				s.close()
			}
		}
	}()
	for i, t := range targets {
		prog.step(t.Name, "cold start")
		s, err := load(ctx, t, w, limits)
		if err != nil {
			return nil, err
		}
		subjects[i] = s
		rep.Functions = append(rep.Functions, s.res)
	}

	per := cfg.Duration / time.Duration(cfg.Rounds)
	for round := range cfg.Rounds {
		for _, s := range subjects {
			prog.step(s.res.Name, fmt.Sprintf("round %d/%d", round+1, cfg.Rounds))
			if err := s.latencyRound(ctx, w.Events, per); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range cfg.Concurrency {
		for _, s := range subjects {
			prog.step(s.res.Name, fmt.Sprintf("throughput ×%d", n))
			if err := s.throughput(ctx, w.Events, n, per); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range subjects {
		s.summarise(*cfg.Prices)
	}
	return rep, nil
}

// subject is one target being measured.
type subject struct {
	res    *Result
	engine *runtime.Engine
	fn     *runtime.Function
	next   int // the next event of the latency rounds

	mallocs                    uint64
	grownBytes, grownInstances int64
}

func (s *subject) close() {
	ctx := context.Background()
	if s.fn != nil {
		s.fn.Close(ctx)
	}
	if s.engine != nil {
		s.engine.Close(ctx)
	}
}

// load measures the cold start and keeps the last load for the rounds.
func load(ctx context.Context, t Target, w *Workload, limits runtime.Limits) (*subject, error) {
	opts := runtime.Options{Name: t.Name, Settings: t.Settings, Store: w.Store, Limits: limits, Language: t.Language, File: filepath.Base(t.Path), Fetch: t.Fetch}
	s := &subject{res: &Result{Name: t.Name, Path: t.Path, Hash: runtime.Hash(t.Wasm), WasmBytes: len(t.Wasm),
		Verdicts: Verdicts{Dropped: map[string]int64{}, Errors: map[string]int64{}}}}
	dir, err := os.MkdirTemp("", "insertfn-bench-cache-")
	if err != nil {
		return nil, fmt.Errorf("bench: cache directory: %w", err)
	}
	defer os.RemoveAll(dir)
	// timedLoad loads on a new engine over dir and closes it unless keep.
	timedLoad := func(eng *runtime.Engine) (*runtime.Function, time.Duration, error) {
		start := time.Now()
		fn, err := eng.Load(ctx, t.Wasm, opts)
		if err != nil {
			return nil, 0, fmt.Errorf("bench: %w", err)
		}
		return fn, time.Since(start), nil
	}
	cold, err := runtime.NewEngine(runtime.Config{CacheDir: dir})
	if err != nil {
		return nil, err
	}
	fn, d, err := timedLoad(cold)
	if err != nil {
		cold.Close(ctx)
		return nil, err
	}
	s.res.ColdStart.NoCacheNS = int64(d)
	fn.Close(ctx)
	cold.Close(ctx)

	if s.engine, err = runtime.NewEngine(runtime.Config{CacheDir: dir}); err != nil {
		return nil, err
	}
	fn, d, err = timedLoad(s.engine)
	if err != nil {
		s.close()
		return nil, err
	}
	s.res.ColdStart.DiskCacheNS = int64(d)
	fn.Close(ctx)

	before := liveHeap()
	if s.fn, d, err = timedLoad(s.engine); err != nil {
		s.close()
		return nil, err
	}
	s.res.ColdStart.InMemoryNS = int64(d)
	// Warm up: every event once (at most 2000), not measured.
	var res runtime.Result
	for i := range min(len(w.Events), 2000) {
		if err := s.fn.Invoke(ctx, w.Events[i], &res); err != nil && !isSandbox(err) {
			s.close()
			return nil, fmt.Errorf("bench: %s: warm-up: %w", t.Name, err)
		}
	}
	st := s.fn.Stats()
	s.res.Memory.LoadedBytes = liveHeap() - before + int64(st.IdleMemory)
	s.res.Memory.Instances = st.Idle
	return s, nil
}

func isSandbox(err error) bool {
	var e *runtime.Error
	return errors.As(err, &e)
}

// liveHeap returns the live heap after a garbage collection.
func liveHeap() int64 {
	stdruntime.GC()
	var ms stdruntime.MemStats
	stdruntime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// latencyRound runs events one at a time for d, timing each call.
func (s *subject) latencyRound(ctx context.Context, events [][]byte, d time.Duration) error {
	var h histogram
	var res runtime.Result
	var ms stdruntime.MemStats
	stdruntime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	v := &s.res.Verdicts
	start := time.Now()
	deadline := start.Add(d)
	t0 := start
	for {
		err := s.fn.Invoke(ctx, events[s.next], &res)
		t1 := time.Now()
		if err != nil && !isSandbox(err) {
			return fmt.Errorf("bench: %s: %w", s.res.Name, err)
		}
		h.record(uint64(t1.Sub(t0)))
		switch res.Verdict {
		case runtime.Deliver:
			v.Delivered++
		case runtime.Drop:
			v.Dropped[res.Reason]++
		default:
			v.Errors[string(res.Kind)]++
			if v.FirstError == "" {
				v.FirstError = string(res.Kind) + ": " + res.Reason
			}
		}
		if s.next++; s.next == len(events) {
			s.next = 0
		}
		if t1.After(deadline) {
			break
		}
		t0 = t1
	}
	stdruntime.ReadMemStats(&ms)
	s.mallocs += ms.Mallocs - mallocs
	s.res.Latency.RoundMeansNS = append(s.res.Latency.RoundMeansNS, h.mean())
	s.res.hist.merge(&h)
	return nil
}

// throughput runs n goroutines calling Invoke for d.
func (s *subject) throughput(ctx context.Context, events [][]byte, n int, d time.Duration) error {
	st := s.fn.Stats()
	before, instances, linear := liveHeap(), st.Idle, int64(st.IdleMemory)
	var (
		stop  atomic.Bool
		total atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	start := time.Now()
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var res runtime.Result
			i, count := g*len(events)/n, int64(0)
			for !stop.Load() {
				if err := s.fn.Invoke(ctx, events[i], &res); err != nil && !isSandbox(err) {
					errMu.Lock()
					first = cmpOr(first, err)
					errMu.Unlock()
					stop.Store(true)
					break
				}
				count++
				if i++; i == len(events) {
					i = 0
				}
			}
			total.Add(count)
		}()
	}
	timer := time.NewTimer(d)
	select {
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
	}
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return fmt.Errorf("bench: %s: %w", s.res.Name, first)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.res.Throughput = append(s.res.Throughput, Throughput{Concurrency: n, Events: total.Load(), ElapsedNS: int64(elapsed),
		EventsPerSecond: float64(total.Load()) / elapsed.Seconds()})
	if now := s.fn.Stats(); now.Idle > instances {
		s.grownBytes += liveHeap() - before + int64(now.IdleMemory) - linear
		s.grownInstances += int64(now.Idle - instances)
	}
	s.res.Memory.Instances = max(s.res.Memory.Instances, s.fn.Stats().Idle)
	return nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// summarise fills the latency summary, memory and cost.
func (s *subject) summarise(p Prices) {
	r, h := s.res, &s.res.hist
	r.Events = int64(h.n)
	r.Latency.MeanNS, r.Latency.MinNS, r.Latency.MaxNS = h.mean(), h.min, h.max
	r.Latency.P50NS, r.Latency.P90NS, r.Latency.P99NS = h.quantile(0.50), h.quantile(0.90), h.quantile(0.99)
	r.Latency.Histogram = h.buckets()
	if h.n > 0 {
		r.AllocsPerEvent = float64(s.mallocs) / float64(h.n)
	}
	if s.grownInstances > 0 && s.grownBytes > 0 {
		r.Memory.InstanceBytes, r.Memory.Method = s.grownBytes/s.grownInstances, "pool-growth"
	} else {
		r.Memory.InstanceBytes, r.Memory.Method = max(r.Memory.LoadedBytes, 0), "loaded-function"
	}
	r.Cost = p.Project(r.Latency.MeanNS, r.Memory.InstanceBytes)
}

// machine describes this machine.
func machine() Machine {
	m := Machine{GOOS: stdruntime.GOOS, GOARCH: stdruntime.GOARCH, CPUs: stdruntime.NumCPU(),
		GOMAXPROCS: stdruntime.GOMAXPROCS(0), GoVersion: stdruntime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// progress writes a one-line progress bar.
type progress struct {
	w           io.Writer
	done, total int
	width       int
}

func (p *progress) step(name, what string) {
	if p.w == nil {
		return
	}
	const bar = 24
	filled := p.done * bar / max(p.total, 1)
	line := fmt.Sprintf("\r[%s%s] %3d%% %s: %s", strings.Repeat("#", filled), strings.Repeat(".", bar-filled),
		p.done*100/max(p.total, 1), name, what)
	pad := max(p.width-len(line), 0)
	p.width = len(line)
	fmt.Fprint(p.w, line+strings.Repeat(" ", pad))
	p.done++
}

func (p *progress) finish() {
	if p.w == nil || p.done == 0 {
		return
	}
	fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
}
