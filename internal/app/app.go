// Package app is insertfn's composition root: it runs a whole server from
// its configuration. It opens the consent store, compiles and deploys the
// functions, opens the durable queue and the destinations' sinks, and runs
// the ingest and the pipeline until it is shut down. `insertfn serve` is a
// thin wrapper around it, and tests start whole servers with it.
package app

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/admin/overview"
	"github.com/insertfn/insertfn/internal/cluster"
	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/delivery"
	"github.com/insertfn/insertfn/internal/ingest"
	"github.com/insertfn/insertfn/internal/metrics"
	"github.com/insertfn/insertfn/internal/pipeline"
	"github.com/insertfn/insertfn/internal/pipeline/tap"
	"github.com/insertfn/insertfn/internal/queue"
	"github.com/insertfn/insertfn/internal/queue/jetstream"
	"github.com/insertfn/insertfn/runtime"
	"github.com/nats-io/nats.go"
)

// pipelineAccepter adapts the pipeline to the ingest's [ingest.Accepter]:
// data flows ingest → pipeline, and neither imports the other. A full
// queue ([pipeline.ErrFull]) becomes [ingest.ErrBackpressure], which the
// ingest answers with 429 and Retry-After; every other error passes as it
// is (a 500).
func pipelineAccepter(p *pipeline.Pipeline) ingest.Accepter {
	return ingest.AccepterFunc(func(ctx context.Context, source string, events [][]byte) error {
		err := p.Accept(ctx, source, events)
		if err != nil && errors.Is(err, pipeline.ErrFull) {
			return fmt.Errorf("%w: %w", ingest.ErrBackpressure, err)
		}
		return err
	})
}

// Server is a running insertfn server. Its methods are safe for concurrent use.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	store    *consentstore.Store
	engine   *runtime.Engine
	registry *functions.Registry
	queue    queue.Queue
	// nc and peers are cluster mode's (queue.backend: jetstream): the
	// connection to NATS that tells the other hosts what this one's
	// consent writes changed.
	nc       *nats.Conn
	peers    *cluster.ConsentPeers
	dedupe   *cluster.DedupePeers
	shared   *cluster.Versions
	sinks    []delivery.Sink
	proc     *pipeline.Processor
	filters  *filterStore // the destinations' filters, as the admin API sets them
	pipe     *pipeline.Pipeline
	tap      *tap.Tap // the live event debugger's records
	srv      *ingest.Server
	ln       net.Listener
	metrics  *metrics.Metrics
	health   *metrics.Health
	versions *functions.VersionStore
	admin    *admin.Admin
	adminLn  net.Listener
	adminCtx context.CancelFunc
	adminErr chan error

	// sharedFilters is cluster mode's: the destination filters the hosts
	// share.
	sharedFilters *cluster.Filters

	overview     *overview.Overview
	stopOverview context.CancelFunc
	overviewDone chan struct{}

	stopPipeline context.CancelFunc
	pipelineDone chan struct{}
	serveErr     chan error
	shutdown     sync.Once
	shutdownErr  error
}

// Options tune [Start]. The zero value is usable.
type Options struct {
	// Logger receives the host's logs; nil: slog.Default().
	Logger *slog.Logger
	// Listener, when set, is served instead of listening on cfg.Listen
	// (tests pass a loopback listener on port 0).
	Listener net.Listener
	// AdminListener, when set, is where the admin API is served instead of
	// cfg.Admin.Listen.
	AdminListener net.Listener
	// SummaryEvery, when positive, logs a summary of the counts (events
	// processed, dropped by reason, delivered and filtered per
	// destination) at that interval whenever events flowed.
	SummaryEvery time.Duration
}

// Start opens everything cfg names and starts serving. On an error it
// closes what it opened and says which part failed and what to do.
//
// # Parameters
//   - ctx: bounds the start-up (compiling functions, opening stores).
//   - cfg: a validated configuration ([config.Load] or [config.Default]).
//   - opts: see [Options].
func Start(ctx context.Context, cfg *config.Config, opts Options) (_ *Server, err error) {
	h := &Server{cfg: cfg, log: opts.Logger, pipelineDone: make(chan struct{}), serveErr: make(chan error, 1)}
	if h.log == nil {
		h.log = slog.Default()
	}
	defer func() {
		if err != nil {
			h.closeAll(context.Background())
		}
	}()
	if err := os.MkdirAll(cfg.DataDir(), 0o700); err != nil {
		return nil, fmt.Errorf("insertfn: data directory: %w", err)
	}

	// The metrics come first: their store wrapper and observer go into the
	// parts built below, which are attached to them at the end.
	if h.metrics, err = metrics.New(metrics.Sources{}, metrics.Options{}); err != nil {
		return nil, fmt.Errorf("insertfn: metrics: %w", err)
	}
	sc := cfg.ConsentStore().WithDefaults() // the backend named, for the metrics label too
	if cfg.Cluster() {
		if h.nc, err = cfg.JetStream().Connect(ctx); err != nil {
			return nil, fmt.Errorf("insertfn: cluster: %w", err)
		}
		if h.peers, err = cluster.NewConsentPeers(h.nc, ""); err != nil {
			return nil, fmt.Errorf("insertfn: %w", err)
		}
	}
	var peers consentstore.Peers
	if h.peers != nil {
		peers = h.peers
	}
	if h.store, err = sc.OpenWithPeers(ctx, peers); err != nil {
		return nil, fmt.Errorf("insertfn: consent store (%s): %w", sc.Backend, err)
	}
	if h.peers != nil {
		h.peers.SetForget(h.store.Forget)
	}
	if h.engine, err = runtime.NewEngine(cfg.RuntimeConfig()); err != nil {
		return nil, fmt.Errorf("insertfn: runtime: %w", err)
	}
	h.registry = functions.NewRegistry(h.engine, h.metrics.InstrumentStore(h.store, sc.Backend))
	for _, f := range cfg.Functions { // each a functions.Manifest, deployed as it is
		path := cfg.Path(f.Wasm)
		wasm, err := os.ReadFile(path)
		if err != nil {
			hint := ""
			if f.Wasm == config.ExampleFunction {
				hint = " (run `make examples` to build it)"
			}
			return nil, fmt.Errorf("insertfn: function %s: %w%s", f.Name, err, hint)
		}
		if _, err := h.registry.Deploy(ctx, f, wasm); err != nil {
			return nil, fmt.Errorf("insertfn: function %s (%s): %w", f.Name, path, err)
		}
	}
	// Versions uploaded through the admin API outlive restarts and win
	// over the configuration's.
	if h.versions, err = functions.NewVersionStore(filepath.Join(cfg.DataDir(), "functions"), h.registry); err != nil {
		return nil, fmt.Errorf("insertfn: %w", err)
	}
	if err := h.versions.Load(ctx); err != nil {
		return nil, fmt.Errorf("insertfn: loading the functions deployed through the admin API: %w", err)
	}
	if h.nc != nil { // the cluster's versions win, and this host's deploys reach the others
		js := cfg.JetStream()
		if h.shared, err = cluster.NewVersions(ctx, h.nc, js.StreamPrefix(), js.StreamReplicas(h.nc), h.versions, h.log); err != nil {
			return nil, fmt.Errorf("insertfn: %w", err)
		}
	}

	if cfg.Cluster() {
		if h.queue, err = jetstream.Open(ctx, cfg.JetStream()); err != nil {
			return nil, fmt.Errorf("insertfn: queue: %w", err)
		}
	} else if h.queue, err = queue.Open(cfg.QueuePath(), cfg.Queue.Options); err != nil {
		return nil, fmt.Errorf("insertfn: queue: %w", err)
	}
	var dests []pipeline.Destination
	for _, d := range cfg.Destinations {
		sc := d.Config
		if sc.Type == "file" {
			sc.FileConfig.Path = cfg.Path(sc.FileConfig.Path)
		}
		sink, err := delivery.Open(sc)
		if err != nil {
			return nil, fmt.Errorf("insertfn: destination %s: %w", d.Name, err)
		}
		h.sinks = append(h.sinks, sink)
		dests = append(dests, d.Destination)
	}
	var sources []pipeline.Source
	var ingestSources []ingest.Source
	for _, s := range cfg.Sources {
		sources = append(sources, pipeline.Source{Name: s.Name, Functions: s.Functions})
		ingestSources = append(ingestSources, s.Source)
	}
	if h.proc, err = pipeline.NewProcessor(h.registry, h.store, sources, dests, nil); err != nil {
		return nil, fmt.Errorf("insertfn: %w", err)
	}
	h.proc.SetObserver(h.metrics.Observer())
	// Filters set through the admin API outlive restarts and win over the
	// configuration's (DATA/filters).
	if h.filters, err = newFilterStore(filepath.Join(cfg.DataDir(), "filters"), h.proc, dests, h.log); err != nil {
		return nil, fmt.Errorf("insertfn: %w", err)
	}
	if h.nc != nil { // the cluster's filters win, and this host's changes reach the others
		js := cfg.JetStream()
		if h.sharedFilters, err = cluster.NewFilters(ctx, h.nc, js.StreamPrefix(), js.StreamReplicas(h.nc), h.filters, h.log); err != nil {
			return nil, fmt.Errorf("insertfn: %w", err)
		}
	}
	h.tap = tap.New()
	if h.pipe, err = pipeline.New(h.queue, h.proc, h.sinks, pipeline.Options{Settings: cfg.Delivery, Logger: h.log, Tap: h.tap}); err != nil {
		return nil, fmt.Errorf("insertfn: %w", err)
	}
	ingestOpts := []ingest.Option{ingest.WithLogger(h.log)}
	if h.nc != nil { // a retry that reaches another host is a duplicate there too
		if h.dedupe, err = cluster.NewDedupePeers(h.nc, ""); err != nil {
			return nil, fmt.Errorf("insertfn: %w", err)
		}
		ingestOpts = append(ingestOpts, ingest.WithDedupePeers(h.dedupe))
	}
	if h.srv, err = ingest.New(cfg.Server, ingestSources, pipelineAccepter(h.pipe), ingestOpts...); err != nil {
		return nil, fmt.Errorf("insertfn: server: %w", err)
	}
	if h.dedupe != nil {
		h.dedupe.SetRemember(h.srv.RememberAccepted)
	}
	var destNames, fnNames []string
	for _, d := range cfg.Destinations {
		destNames = append(destNames, d.Name)
	}
	for _, f := range cfg.Functions {
		fnNames = append(fnNames, f.Name)
	}
	h.metrics.Attach(metrics.Sources{Counters: h.proc.Counters(), Server: h.srv, Queue: h.queue,
		Functions: h.registry, Destinations: destNames})
	h.health = metrics.NewHealth(metrics.HealthConfig{Store: h.store.Backend(), Queue: h.queue,
		Functions: h.registry, FunctionNames: fnNames})

	// The delivery overview's history outlives restarts (DATA/overview).
	if h.overview, err = overview.New(overview.Config{Flows: h.pipe.Overview(), Metrics: h.metrics.Registry(),
		Live: h.liveVersions, Destinations: destNames, Dir: filepath.Join(cfg.DataDir(), "overview"), Logger: h.log}); err != nil {
		return nil, fmt.Errorf("insertfn: %w", err)
	}
	if err := h.startAdmin(cfg, opts, destNames); err != nil {
		return nil, err
	}

	h.ln = opts.Listener
	if h.ln == nil {
		if h.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("insertfn: listen on %s: %w (set listen in the configuration or --listen)", cfg.Listen, err)
		}
	}

	pctx, cancel := context.WithCancel(context.Background())
	h.stopPipeline = cancel
	go func() {
		defer close(h.pipelineDone)
		h.pipe.Run(pctx)
	}()
	go func() { h.serveErr <- h.srv.Serve(h.ln) }()
	octx, stopOverview := context.WithCancel(context.Background())
	h.stopOverview, h.overviewDone = stopOverview, make(chan struct{})
	go func() {
		defer close(h.overviewDone)
		h.overview.Run(octx)
	}()
	if opts.SummaryEvery > 0 {
		go h.summarize(pctx, opts.SummaryEvery)
	}
	return h, nil
}

// summarize logs what the pipeline did, every interval in which something
// happened, until ctx is done.
func (h *Server) summarize(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := h.proc.Counters().Snapshot()
		if s.Processed == last {
			continue
		}
		last = s.Processed
		attrs := []any{"processed", s.Processed, "consent_updates", s.ConsentUpdates}
		for reason, n := range s.Dropped {
			attrs = append(attrs, "dropped["+reason+"]", n)
		}
		for name, d := range s.Destinations {
			attrs = append(attrs, "delivered["+name+"]", d.Delivered)
			if f := d.FilteredConsent + d.FilteredIntegrations; f > 0 {
				attrs = append(attrs, "filtered["+name+"]", f)
			}
			for filter, n := range d.FilteredByFilter {
				attrs = append(attrs, "filtered["+name+"]["+filter+"]", n)
			}
			if d.Failed > 0 {
				attrs = append(attrs, "failed["+name+"]", d.Failed)
			}
		}
		h.log.Info("events", attrs...)
	}
}

// startAdmin starts the admin API: functions, consent, dead letters,
// /metrics, the delivery overview and function logs behind the token;
// /healthz and /readyz without it.
func (h *Server) startAdmin(cfg *config.Config, opts Options, destNames []string) error {
	users := func(name string) []string {
		var out []string
		for _, s := range cfg.Sources {
			if slices.Contains(s.Functions, name) {
				out = append(out, "source "+s.Name)
			}
		}
		for _, d := range cfg.Destinations {
			if slices.Contains(d.Functions, name) {
				out = append(out, "destination "+d.Name)
			}
		}
		return out
	}
	acfg := cfg.Admin
	tokenPath := filepath.Join(cfg.DataDir(), "admin-token")
	if acfg.Token == "" && os.Getenv(cmp.Or(acfg.TokenEnv, admin.DefaultTokenEnv)) == "" {
		// Keep the token generated at an earlier start: the CLI and the
		// operator's browser already have it.
		if b, err := os.ReadFile(tokenPath); err == nil {
			acfg.Token = strings.TrimSpace(string(b))
		}
	}
	a, err := admin.New(acfg, admin.Deps{
		Registry: h.registry, Versions: h.versions, Store: h.store, Queue: h.queue, Destinations: destNames,
		Engine: h.engine, Filters: h.filters, FunctionUsers: users, Metrics: h.metrics.Handler(), Logger: h.log,
		Handlers: map[string]http.Handler{
			"GET /admin/overview/":             http.StripPrefix("/admin/overview", h.overview.Handler()),
			"GET /admin/functions/{name}/logs": http.HandlerFunc(h.functionLogs),
			"GET /admin/tail":                  admin.TailHandler(h.tap),
		},
		Public: map[string]http.Handler{"/healthz": http.HandlerFunc(h.health.Healthz), "/readyz": http.HandlerFunc(h.health.Readyz)},
	})
	if err != nil {
		return fmt.Errorf("insertfn: admin API: %w", err)
	}
	h.admin = a
	if a.TokenGenerated() {
		if err := os.WriteFile(tokenPath, []byte(a.Token()+"\n"), 0o600); err != nil {
			return fmt.Errorf("insertfn: admin API: saving its token: %w", err)
		}
	}
	h.adminLn = opts.AdminListener
	if h.adminLn == nil {
		if h.adminLn, err = net.Listen("tcp", a.Listen()); err != nil {
			return fmt.Errorf("insertfn: admin API: listen on %s: %w (set admin.listen in the configuration)", a.Listen(), err)
		}
	}
	actx, cancel := context.WithCancel(context.Background())
	h.adminCtx, h.adminErr = cancel, make(chan error, 1)
	go func() { h.adminErr <- a.Serve(actx, h.adminLn) }()
	return nil
}

// liveVersions returns each function's live version hash.
func (h *Server) liveVersions() map[string]string {
	out := make(map[string]string)
	for _, name := range h.registry.Names() {
		if v, err := h.registry.Active(name); err == nil {
			out[name] = v.Hash
		}
	}
	return out
}

// functionLogs answers GET /admin/functions/{name}/logs[?n=N]: the last
// lines the function logged, oldest first.
func (h *Server) functionLogs(w http.ResponseWriter, r *http.Request) {
	n := 100
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"n: want a positive whole number"}` + "\n"))
			return
		}
	}
	lines := h.proc.Logs().Last(r.PathValue("name"), n)
	if lines == nil {
		lines = []pipeline.LogEntry{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(lines)
}

// AdminAddr returns the address the admin API listens on.
func (h *Server) AdminAddr() net.Addr { return h.adminLn.Addr() }

// AdminToken returns the admin API's token.
func (h *Server) AdminToken() string { return h.admin.Token() }

// Addr returns the address the server listens on.
func (h *Server) Addr() net.Addr { return h.ln.Addr() }

// Counters returns the pipeline's counters.
func (h *Server) Counters() *pipeline.Counters { return h.proc.Counters() }

// Stats returns the ingest's counters.
func (h *Server) Stats() ingest.Stats { return h.srv.Stats() }

// Metrics returns the host's Prometheus metrics.
func (h *Server) Metrics() *metrics.Metrics { return h.metrics }

// Health returns the liveness and readiness probes.
func (h *Server) Health() *metrics.Health { return h.health }

// Overview returns the per-source account of what became of events.
func (h *Server) Overview() *pipeline.Overview { return h.pipe.Overview() }

// Tap returns the live event debugger's source: what became of events.
func (h *Server) Tap() *tap.Tap { return h.tap }

// Store returns the consent store.
func (h *Server) Store() *consentstore.Store { return h.store }

// Queue returns the durable queue.
func (h *Server) Queue() queue.Queue { return h.queue }

// Wait blocks until the server stops serving on its own (its listener
// failed) and returns why, or until ctx is done.
func (h *Server) Wait(ctx context.Context) error {
	select {
	case err := <-h.serveErr:
		h.serveErr <- err
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops accepting events, lets requests in flight finish, stops
// the pipeline once the batches it holds are handed on, and closes
// everything. Events accepted and not yet delivered stay in the queue for
// the next start. ctx bounds the wait for requests in flight.
func (h *Server) Shutdown(ctx context.Context) error {
	h.shutdown.Do(func() { h.shutdownErr = h.closeAll(ctx) })
	return h.shutdownErr
}

func (h *Server) closeAll(ctx context.Context) error {
	var errs []error
	if h.srv != nil && h.ln != nil {
		if err := h.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("insertfn: server shutdown: %w", err))
		}
	} else if h.ln != nil {
		h.ln.Close()
	}
	if h.adminCtx != nil {
		h.adminCtx() // the admin API gives its calls in flight up to 10s
		<-h.adminErr
	} else if h.adminLn != nil {
		h.adminLn.Close()
	}
	if h.stopPipeline != nil {
		h.stopPipeline()
		select {
		case <-h.pipelineDone:
		case <-time.After(time.Minute):
			errs = append(errs, errors.New("insertfn: the pipeline did not stop within a minute"))
		}
	}
	if h.stopOverview != nil { // after the pipeline: its last counts are saved
		h.stopOverview()
		<-h.overviewDone
	}
	if h.queue != nil {
		errs = append(errs, h.queue.Close())
	}
	for _, s := range h.sinks {
		errs = append(errs, s.Close())
	}
	if h.registry != nil {
		errs = append(errs, h.registry.Close(ctx))
	}
	if h.engine != nil {
		errs = append(errs, h.engine.Close(ctx))
	}
	if h.store != nil {
		errs = append(errs, h.store.Close())
	}
	if h.peers != nil {
		errs = append(errs, h.peers.Close())
	}
	if h.dedupe != nil {
		errs = append(errs, h.dedupe.Close())
	}
	if h.sharedFilters != nil {
		errs = append(errs, h.sharedFilters.Close())
	}
	if h.shared != nil {
		errs = append(errs, h.shared.Close())
	}
	if h.nc != nil {
		h.nc.Close()
	}
	return errors.Join(errs...)
}
