package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/queue"
	"github.com/insertfn/insertfn/sdk/consent"
)

// DefaultProbeID is the consent id the readiness check looks up.
const DefaultProbeID = "insertfn-readiness-probe"

// DefaultHealthTimeout bounds each readiness check unless
// [HealthConfig.Timeout] says otherwise.
const DefaultHealthTimeout = 2 * time.Second

// HealthConfig says what [Health.Readyz] checks. The zero value checks
// nothing: always ready.
type HealthConfig struct {
	// Store is where the probe id is looked up; nil: not checked. A
	// record found or [consent.ErrNotFound] means reachable. Pass the
	// store's backend rather than a caching store, which answers a cached
	// miss without reaching the backend.
	Store consent.Store
	// ProbeID is the id looked up; "": DefaultProbeID.
	ProbeID string
	// Queue must take a write: the check appends one small item to
	// [queue.HealthTopic] and acknowledges it (two commits, synced per the
	// queue's policy). nil: not checked.
	Queue queue.Queue
	// Functions must hold an active version of every name in
	// FunctionNames (the functions the configuration names).
	Functions     *functions.Registry
	FunctionNames []string
	// Timeout bounds each check; 0: DefaultHealthTimeout.
	Timeout time.Duration
}

// Health answers the liveness and readiness probes. It is safe for
// concurrent use; each check runs one probe at a time, so probes that
// come faster than the store or the queue answer do not pile up.
type Health struct {
	cfg HealthConfig

	storeBusy chan struct{} // holds a token while a store lookup runs
	queueBusy chan struct{} // holds a token while a queue write runs

	pendingMu sync.Mutex
	pending   []queue.Item // handed out by an earlier check, not acknowledged
}

// NewHealth returns the probes of cfg.
func NewHealth(cfg HealthConfig) *Health {
	if cfg.ProbeID == "" {
		cfg.ProbeID = DefaultProbeID
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHealthTimeout
	}
	cfg.FunctionNames = append([]string(nil), cfg.FunctionNames...)
	return &Health{cfg: cfg, storeBusy: make(chan struct{}, 1), queueBusy: make(chan struct{}, 1)}
}

// Healthz answers 200 "ok": the process is up and serving. Mount it at
// /healthz.
func (h *Health) Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte("ok\n"))
}

// Readiness is the answer of [Health.Check] and the body of /readyz.
type Readiness struct {
	// Ready is true when every check passed.
	Ready bool `json:"ready"`
	// NotReady names the checks that failed.
	NotReady []string `json:"not_ready,omitempty"`
	// Checks are the checks made, in a fixed order: consent_store, queue,
	// functions (those configured).
	Checks []CheckResult `json:"checks"`
}

// CheckResult is one readiness check.
type CheckResult struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Check names.
const (
	CheckConsentStore = "consent_store"
	CheckQueue        = "queue"
	CheckFunctions    = "functions"
)

// Readyz answers 200 when every check passes and 503 otherwise, with the
// [Readiness] as JSON either way. Mount it at /readyz. The errors in the
// body name backends (a store's address), not data: serve it where the
// operator's probes reach it.
func (h *Health) Readyz(w http.ResponseWriter, r *http.Request) {
	rd := h.Check(r.Context())
	body, _ := json.Marshal(rd)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rd.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	w.Write(append(body, '\n'))
}

// Check runs the configured checks at once, each bounded by the timeout
// (and by ctx).
func (h *Health) Check(ctx context.Context) Readiness {
	type check struct {
		name string
		run  func(context.Context) error
	}
	var checks []check
	if h.cfg.Store != nil {
		checks = append(checks, check{CheckConsentStore, h.checkStore})
	}
	if h.cfg.Queue != nil {
		checks = append(checks, check{CheckQueue, h.checkQueue})
	}
	if h.cfg.Functions != nil || len(h.cfg.FunctionNames) > 0 {
		checks = append(checks, check{CheckFunctions, h.checkFunctions})
	}
	rd := Readiness{Ready: true, Checks: make([]CheckResult, len(checks))}
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
			defer cancel()
			res := CheckResult{Name: c.name, OK: true}
			if err := c.run(ctx); err != nil {
				res.OK, res.Error = false, err.Error()
			}
			rd.Checks[i] = res
		})
	}
	wg.Wait()
	for _, c := range rd.Checks {
		if !c.OK {
			rd.Ready = false
			rd.NotReady = append(rd.NotReady, c.Name)
		}
	}
	return rd
}

// bounded runs fn in its own goroutine holding busy's token, and returns
// its error, or an error when ctx is done first (fn then keeps the token
// until it returns, and checks meanwhile fail at once).
func (h *Health) bounded(ctx context.Context, busy chan struct{}, what string, fn func(context.Context) error) error {
	select {
	case busy <- struct{}{}:
	default:
		return fmt.Errorf("the previous %s has not returned yet", what)
	}
	done := make(chan error, 1)
	go func() {
		err := fn(ctx)
		<-busy // before the answer: the next check must find the token free
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer to a %s within %v", what, h.cfg.Timeout)
	}
}

func (h *Health) checkStore(ctx context.Context) error {
	return h.bounded(ctx, h.storeBusy, "consent lookup", func(ctx context.Context) error {
		_, err := h.cfg.Store.Get(ctx, h.cfg.ProbeID)
		if err == nil || errors.Is(err, consent.ErrNotFound) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no answer to a consent lookup within %v: %w", h.cfg.Timeout, err)
		}
		return fmt.Errorf("consent lookup failed: %w", err)
	})
}

func (h *Health) checkQueue(ctx context.Context) error {
	return h.bounded(ctx, h.queueBusy, "queue write", func(ctx context.Context) error {
		q := h.cfg.Queue
		if err := q.Append(ctx, queue.HealthTopic, []byte("probe")); err != nil {
			return fmt.Errorf("cannot write: %w", err)
		}
		c := q.Consumer(queue.HealthTopic)
		items, err := c.Next(ctx, 64, 0)
		if err != nil {
			return fmt.Errorf("cannot read back: %w", err)
		}
		// Only this check consumes the topic, one at a time (the token):
		// pending is ours.
		h.pendingMu.Lock()
		defer h.pendingMu.Unlock()
		h.pending = append(h.pending, items...)
		if err := c.Ack(ctx, h.pending...); err != nil {
			if errors.Is(err, queue.ErrNotInFlight) {
				h.pending = nil // settled by someone else: nothing of ours left
			}
			return fmt.Errorf("cannot acknowledge: %w", err)
		}
		h.pending = h.pending[:0]
		return nil
	})
}

func (h *Health) checkFunctions(context.Context) error {
	if h.cfg.Functions == nil {
		return errors.New("no function registry")
	}
	var missing []string
	for _, name := range h.cfg.FunctionNames {
		if _, err := h.cfg.Functions.Active(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no active version of %s", strings.Join(missing, ", "))
	}
	return nil
}
