package functions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/sdk/consent"
)

// ErrNotFound is returned for a function name the registry does not know.
var ErrNotFound = errors.New("functions: no such function")

// Version is one loaded version of a function.
type Version struct {
	Manifest Manifest
	Hash     string    // hex SHA-256 of the wasm
	Size     int       // bytes of wasm
	LoadedAt time.Time // when this version was loaded
	fn       *runtime.Function
	// wasm is the module's bytes, kept so that a version deployed from
	// the configuration can be stored when the admin API replaces it (see
	// VersionStore.Deploy): it is what a rollback goes back to.
	wasm []byte
}

// Function returns the runtime function of the version.
func (v *Version) Function() *runtime.Function { return v.fn }

// Registry holds functions by name, each with its active version. It is
// safe for concurrent use.
type Registry struct {
	// TimeEvery is the runtime.Options.TimeEvery of the versions deployed
	// after it is set (0: the runtime's default, which times one call in
	// sixteen); set it before the first Deploy.
	TimeEvery int

	engine *runtime.Engine
	store  consent.Store

	mu  sync.Mutex // serialises Deploy and Remove; readers use active
	fns map[string]*atomic.Pointer[Version]
}

// NewRegistry returns an empty registry whose functions are compiled by
// engine and look consent up in store (nil: no stored consent).
func NewRegistry(engine *runtime.Engine, store consent.Store) *Registry {
	return &Registry{engine: engine, store: store, fns: make(map[string]*atomic.Pointer[Version])}
}

// Deploy loads a new version of a function and makes it active. The module
// is compiled, checked and started before it goes live: a module that fails
// any of that is refused and the version already active stays. Events in
// flight on the old version finish on it; the old version is closed once
// they have.
//
// # Parameters
//   - ctx: bounds compilation and start-up.
//   - m: the manifest (validated here).
//   - wasm: the module's bytes.
//
// # Results
//   - the new active version;
//   - an error saying why the version was refused.
func (r *Registry) Deploy(ctx context.Context, m Manifest, wasm []byte) (*Version, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	fn, err := r.engine.Load(ctx, wasm, runtime.Options{Name: m.Name, Language: m.Language(), File: m.File(), Settings: m.Settings, Store: r.store, Limits: m.Limits.Runtime(), Fetch: m.Fetch.Policy(), TimeEvery: r.TimeEvery})
	if err != nil {
		return nil, fmt.Errorf("functions: deploy %s: %w", m.Name, err)
	}
	v := &Version{Manifest: m, Hash: fn.Hash(), Size: len(wasm), LoadedAt: time.Now(), fn: fn, wasm: wasm}
	r.mu.Lock()
	slot, ok := r.fns[m.Name]
	if !ok {
		slot = new(atomic.Pointer[Version])
		r.fns[m.Name] = slot
	}
	old := slot.Swap(v)
	r.mu.Unlock()
	if old != nil {
		go old.fn.Close(context.WithoutCancel(ctx)) // waits for the events in flight on it
	}
	return v, nil
}

// Active returns the active version of a function.
func (r *Registry) Active(name string) (*Version, error) {
	r.mu.Lock()
	slot, ok := r.fns[name]
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	v := slot.Load()
	if v == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return v, nil
}

// Names returns the names of the registered functions, sorted.
func (r *Registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.fns))
	for n, slot := range r.fns {
		if slot.Load() != nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Remove unregisters a function and closes it once its events in flight
// have finished.
func (r *Registry) Remove(ctx context.Context, name string) error {
	r.mu.Lock()
	slot, ok := r.fns[name]
	delete(r.fns, name)
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if v := slot.Swap(nil); v != nil {
		return v.fn.Close(ctx)
	}
	return nil
}

// Close closes every function, waiting for events in flight.
func (r *Registry) Close(ctx context.Context) error {
	var errs []error
	for _, n := range r.Names() {
		errs = append(errs, r.Remove(ctx, n))
	}
	return errors.Join(errs...)
}

// Outcome is what became of an event after its function and the function's
// failure policy.
type Outcome struct {
	runtime.Result
	// Version is the hash of the version that ran.
	Version string
	// Attempts counts the runs (more than one after RetryError).
	Attempts int
	// Deliver says whether the event goes on (Result.Event). It is the
	// function's verdict, or, when the function failed, its failure policy.
	Deliver bool
	// PolicyApplied says the failure policy decided (the function failed).
	PolicyApplied bool
	// Err is the sandbox failure, if there was one (a *runtime.Error).
	Err error
}

// Run runs an event through a function's active version, retries a
// RetryError up to the manifest's Retries, and applies the failure policy
// when the function fails.
//
// # Parameters
//   - ctx: bounds waiting and the guest call (see runtime.Function.Invoke).
//   - name: the function.
//   - event: the event's JSON, borrowed until Run returns.
//   - out: filled with the outcome; reuse it across calls.
//
// # Results
//   - nil, or an error when the function does not exist or no instance could
//     be had (ctx done, function closed); out is then not meaningful.
func (r *Registry) Run(ctx context.Context, name string, event []byte, out *Outcome) error {
	var last *Version
	for {
		v, err := r.Active(name)
		if err != nil {
			return err
		}
		err = v.run(ctx, event, out)
		if errors.Is(err, runtime.ErrClosed) && v != last {
			last = v
			continue // swapped while we were starting: run on the new version
		}
		return err
	}
}

// isFunctionError reports whether err is a *runtime.Error (kept out of
// run: the variable errors.As needs escapes, an allocation per event).
func isFunctionError(err error) bool {
	var ferr *runtime.Error
	return errors.As(err, &ferr)
}

func (v *Version) run(ctx context.Context, event []byte, out *Outcome) error {
	out.Version, out.Attempts, out.PolicyApplied, out.Err = v.Hash, 0, false, nil
	for {
		out.Attempts++
		err := v.fn.Invoke(ctx, event, &out.Result)
		switch {
		case err == nil || isFunctionError(err):
		case errors.Is(err, runtime.ErrClosed) || ctx.Err() != nil:
			return err // no instance could be had: the caller decides
		default:
			// A new instance failed to start: the function failed on
			// this event, and its failure policy decides.
			out.Verdict, out.Kind, out.Reason = runtime.Fail, runtime.KindFunctionError, err.Error()
		}
		out.Err = err
		switch out.Verdict {
		case runtime.Deliver:
			out.Deliver = true
			return nil
		case runtime.Drop:
			out.Deliver = false
			return nil
		}
		if out.Kind == runtime.KindRetry && out.Attempts <= v.Manifest.retries() {
			if err := ctx.Err(); err != nil {
				return err
			}
			continue
		}
		// Segment's EventNotSupported, InvalidEventPayload and
		// ValidationError drop the event whatever the policy: the
		// function has judged it. Other failures follow the policy.
		switch out.Kind {
		case runtime.KindEventNotSupported, runtime.KindInvalidEventPayload, runtime.KindValidationError:
			out.Deliver = false
		default:
			out.PolicyApplied = true
			out.Deliver = v.Manifest.OnError == PolicyDeliver
			if out.Deliver {
				out.Event, out.Modified = event, false
			}
		}
		return nil
	}
}
