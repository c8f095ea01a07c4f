package runtime_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/sdk/consent"
)

// mapStore is a consent store in a map.
type mapStore map[string]*consent.Record

func (m mapStore) Get(_ context.Context, id string) (*consent.Record, error) {
	if r, ok := m[id]; ok {
		return r, nil
	}
	return nil, consent.ErrNotFound
}

// errStore fails every lookup, as a store that is down does.
type errStore struct{}

func (errStore) Get(context.Context, string) (*consent.Record, error) {
	return nil, errors.New("errStore: the store is down")
}

// gateStore is a mapStore whose lookups of the id "wait" block until the
// gate opens (or the lookup's context ends), which keeps an event in flight
// for as long as a test needs. entered receives one value per blocked lookup.
type gateStore struct {
	mapStore
	gate    chan struct{}
	entered chan struct{}
}

func newGateStore() *gateStore {
	return &gateStore{mapStore: testStore, gate: make(chan struct{}), entered: make(chan struct{}, 64)}
}

func (g *gateStore) Get(ctx context.Context, id string) (*consent.Record, error) {
	if id == "wait" {
		g.entered <- struct{}{}
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		id = "u1"
	}
	return g.mapStore.Get(ctx, id)
}

// testStore is the stored consent the tests compare events with.
var testStore = mapStore{
	"u1": {ID: "u1", Categories: []consent.Category{
		{Name: "Advertising", Consented: true, Timestamp: 1000},
		{Name: "Analytics", Consented: false, Timestamp: 1000},
	}, Purposes: []consent.Purpose{
		{Regulation: "gdpr", Name: "location_collection", Consented: true, Timestamp: 1000},
	}},
	"anon-2": {ID: "anon-2", Categories: []consent.Category{
		{Name: "Advertising", Consented: false, Timestamp: 2000},
	}},
}

// Events that consent-match handles with a known verdict against testStore.
const (
	evMatch    = `{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}}}`
	evMismatch = `{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}}`
	evNoRecord = `{"type":"page","name":"Home","userId":"nobody","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`
)

// hostileLimits are the small limits of the hostile-guest tests.
var hostileLimits = runtime.Limits{Timeout: 200 * time.Millisecond, MemoryPages: 512}

// load loads a guest on the shared engine and closes it when the test ends.
func load(t testing.TB, name string, opts runtime.Options) *runtime.Function {
	t.Helper()
	if opts.Name == "" {
		opts.Name = name
	}
	f, err := engine(t).Load(context.Background(), guest(t, name), opts)
	if err != nil {
		t.Fatalf("Load %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := f.Close(context.Background()); err != nil {
			t.Errorf("Close %s: %v", name, err)
		}
	})
	return f
}

// invoke runs one event and returns its result and error.
func invoke(t testing.TB, f *runtime.Function, event string) (runtime.Result, error) {
	t.Helper()
	var res runtime.Result
	err := f.Invoke(context.Background(), []byte(event), &res)
	return res, err
}

// mustDeliver runs one event that must be delivered.
func mustDeliver(t testing.TB, f *runtime.Function, event string) runtime.Result {
	t.Helper()
	res, err := invoke(t, f, event)
	if err != nil {
		t.Fatalf("%s: Invoke(%s): %v", f.Name(), event, err)
	}
	if res.Verdict != runtime.Deliver {
		t.Fatalf("%s: Invoke(%s): verdict %v (%s: %s), want deliver", f.Name(), event, res.Verdict, res.Kind, res.Reason)
	}
	return res
}

// bystander keeps a consent-match Function of its own busy with events of
// known verdicts while hostile guests misbehave elsewhere, and checks every
// verdict.
type bystander struct {
	f      *runtime.Function
	stop   chan struct{}
	done   chan struct{}
	events atomic.Int64
	mu     sync.Mutex
	errs   []string
}

func startBystander(t testing.TB) *bystander {
	t.Helper()
	b := &bystander{
		f:    load(t, "consent-match", runtime.Options{Name: "bystander", Store: testStore, Limits: runtime.Limits{PoolSize: 1}}),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go func() {
		defer close(b.done)
		var res runtime.Result
		for i := 0; ; i++ {
			select {
			case <-b.stop:
				return
			default:
			}
			ev, want := evMatch, runtime.Deliver
			if i%2 == 1 {
				ev, want = evMismatch, runtime.Drop
			}
			err := b.f.Invoke(context.Background(), []byte(ev), &res)
			if err != nil || res.Verdict != want {
				b.mu.Lock()
				b.errs = append(b.errs, "bystander: "+res.Verdict.String()+" "+res.Reason+" "+errString(err))
				b.mu.Unlock()
			}
			b.events.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	return b
}

// check stops the bystander and reports what went wrong with it.
func (b *bystander) check(t testing.TB) {
	t.Helper()
	close(b.stop)
	<-b.done
	for _, e := range b.errs {
		t.Error(e)
	}
	if b.events.Load() == 0 {
		t.Error("the bystander handled no event")
	}
	if st := b.f.Stats(); st.Discarded != 0 {
		t.Errorf("bystander: %d instances discarded, want 0", st.Discarded)
	}
	t.Logf("bystander: %d events meanwhile, stats %+v", b.events.Load(), b.f.Stats())
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
