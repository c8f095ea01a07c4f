package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/sdk/consent"
)

// downStore is testStore, except that the id "down" finds the store down.
type downStore struct{}

func (downStore) Get(ctx context.Context, id string) (*consent.Record, error) {
	if id == "down" {
		return nil, errors.New("downStore: down for this id")
	}
	return testStore.Get(ctx, id)
}

// poolCase is an event for consent-match with its verdict (settings
// {"missingRecord":"drop"}, store downStore).
type poolCase struct {
	event   string
	verdict runtime.Verdict
	kind    runtime.ErrorKind
	reason  string
}

var poolCases = []poolCase{
	{evMatch, runtime.Deliver, "", ""},
	{evMismatch, runtime.Drop, "", "Consent mismatch"},
	{evNoRecord, runtime.Drop, "", "No stored consent"},
	{`{"type":"track","userId":"down","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
		runtime.Fail, runtime.KindRetry, "Consent store unavailable"},
	{`{"type":"screen","name":"Cart","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false,"New":true}}}}`,
		runtime.Deliver, "", ""},
}

// TestPoolConcurrent sends events of mixed verdicts from 8 goroutines to a
// Function with a pool of 2 instances.
func TestPoolConcurrent(t *testing.T) {
	const goroutines, perGoroutine = 8, 200
	f := load(t, "consent-match", runtime.Options{Store: downStore{}, Settings: []byte(`{"missingRecord":"drop"}`), Limits: runtime.Limits{PoolSize: 2}})
	var wg sync.WaitGroup
	errs := make(chan string, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			var res runtime.Result
			for i := range perGoroutine {
				c := poolCases[(g+i)%len(poolCases)]
				event := []byte(c.event)
				if err := f.Invoke(context.Background(), event, &res); err != nil {
					errs <- fmt.Sprintf("goroutine %d event %d: %v", g, i, err)
					return
				}
				if res.Verdict != c.verdict || res.Kind != c.kind || res.Reason != c.reason {
					errs <- fmt.Sprintf("goroutine %d event %d: %v %q %q, want %v %q %q", g, i, res.Verdict, res.Kind, res.Reason, c.verdict, c.kind, c.reason)
					return
				}
				if c.verdict == runtime.Deliver && (res.Modified || unsafe.SliceData(res.Event) != unsafe.SliceData(event)) {
					errs <- fmt.Sprintf("goroutine %d event %d: delivered %s (modified %v), want the caller's bytes", g, i, res.Event, res.Modified)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	st := f.Stats()
	t.Logf("stats %+v", st)
	if st.Invocations != goroutines*perGoroutine {
		t.Errorf("Invocations %d, want %d", st.Invocations, goroutines*perGoroutine)
	}
	if st.Discarded != 0 || st.Started > 2+st.Recycled || st.Idle > 2 {
		t.Errorf("stats %+v: want at most 2 instances started (plus recycled ones), none discarded, at most 2 idle", st)
	}
}

// TestPoolConcurrentWithFailures mixes ABI violations into concurrent
// traffic: each failure replaces one instance, the pool never holds more
// than its size, and the other events are not disturbed.
func TestPoolConcurrentWithFailures(t *testing.T) {
	const goroutines, perGoroutine = 8, 40
	f := load(t, "abuse", runtime.Options{Store: testStore, Limits: runtime.Limits{PoolSize: 2, Timeout: 5 * time.Second, MemoryPages: 512}})
	bad := abuseEvent(fnEventGet, "", badPtr, badLen)
	var wg sync.WaitGroup
	errs := make(chan string, goroutines)
	var hostile sync.Map
	for g := range goroutines {
		wg.Go(func() {
			var res runtime.Result
			for i := range perGoroutine {
				if (g+i)%10 == 0 {
					err := f.Invoke(context.Background(), []byte(bad), &res)
					hostile.Store(fmt.Sprint(g, i), true)
					if !errors.Is(err, runtime.ErrABIViolation) || res.Verdict != runtime.Fail {
						errs <- fmt.Sprintf("goroutine %d event %d: %v (%v), want an ABI violation", g, i, err, res.Verdict)
						return
					}
					continue
				}
				err := f.Invoke(context.Background(), []byte(`{"type":"track","n":1}`), &res)
				if err != nil || res.Verdict != runtime.Deliver || !strings.Contains(string(res.Event), `"checked":true`) {
					errs <- fmt.Sprintf("goroutine %d event %d: %v %v %s", g, i, err, res.Verdict, res.Event)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	failures := 0
	hostile.Range(func(any, any) bool { failures++; return true })
	st := f.Stats()
	t.Logf("stats %+v after %d failures", st, failures)
	if st.Discarded != uint64(failures) {
		t.Errorf("Discarded %d, want %d", st.Discarded, failures)
	}
	if st.Started > 2+st.Discarded+st.Recycled || st.Idle > 2 {
		t.Errorf("stats %+v: want at most 2 instances plus one per replacement, at most 2 idle", st)
	}
}

// TestInvokeCancelledWhileWaiting fills a pool of one with an event that
// waits in the consent store: Invoke with a cancelled context, or one that
// runs out while waiting for the instance, returns the context's error.
func TestInvokeCancelledWhileWaiting(t *testing.T) {
	store := newGateStore()
	f := load(t, "consent-match", runtime.Options{Store: store, Limits: runtime.Limits{PoolSize: 1}})
	blocked := make(chan error, 1)
	var blockedRes runtime.Result
	blockedEvent := strings.Replace(evMatch, `"userId":"u1"`, `"userId":"wait"`, 1)
	go func() { blocked <- f.Invoke(context.Background(), []byte(blockedEvent), &blockedRes) }()
	<-store.entered // the only instance is busy now

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var res runtime.Result
	if err := f.Invoke(ctx, []byte(evMatch), &res); !errors.Is(err, context.Canceled) {
		t.Errorf("Invoke with a cancelled context: %v, want %v", err, context.Canceled)
	}
	if res.Verdict != runtime.Fail || res.Event != nil {
		t.Errorf("Invoke with a cancelled context: result %v with %d bytes of event, want Fail and no event", res.Verdict, len(res.Event))
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.Invoke(ctx, []byte(evMatch), &res); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Invoke whose context ends while waiting: %v, want %v", err, context.DeadlineExceeded)
	}

	close(store.gate)
	if err := <-blocked; err != nil || blockedRes.Verdict != runtime.Deliver {
		t.Errorf("the waiting event: %v %v %q, want it delivered", err, blockedRes.Verdict, blockedRes.Reason)
	}
	mustDeliver(t, f, evMatch)
	if st := f.Stats(); st.Started != 1 || st.Discarded != 0 || st.Invocations != 2 {
		t.Errorf("stats %+v: want 1 instance, 2 events handled, nothing discarded", st)
	}
}

// TestCloseWhileInFlight closes a Function while two events wait in the
// consent store: Close waits for them, they finish normally, and Invoke
// then returns ErrClosed.
func TestCloseWhileInFlight(t *testing.T) {
	store := newGateStore()
	f, err := engine(t).Load(context.Background(), guest(t, "consent-match"),
		runtime.Options{Name: "closing", Store: store, Limits: runtime.Limits{PoolSize: 2}})
	if err != nil {
		t.Fatal(err)
	}
	blockedEvent := strings.Replace(evMismatch, `"userId":"u1"`, `"userId":"wait"`, 1)
	type outcome struct {
		res runtime.Result
		err error
	}
	inFlight := make(chan outcome, 2)
	for range 2 {
		go func() {
			var o outcome
			o.err = f.Invoke(context.Background(), []byte(blockedEvent), &o.res)
			inFlight <- o
		}()
	}
	<-store.entered
	<-store.entered

	closed := make(chan error, 1)
	go func() { closed <- f.Close(context.Background()) }()

	// Once Close has begun, a new event is refused at once. Before, it
	// waits for an instance, none being free; a short deadline ends that.
	for deadline := time.Now().Add(10 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		var res runtime.Result
		err := f.Invoke(ctx, []byte(evMatch), &res)
		cancel()
		if errors.Is(err, runtime.ErrClosed) {
			break
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Invoke while two events are in flight: %v, want it to wait or ErrClosed", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("Invoke never returned ErrClosed after Close began")
		}
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while two events were still in flight", err)
	case <-time.After(50 * time.Millisecond):
	}

	close(store.gate)
	for range 2 {
		o := <-inFlight
		if o.err != nil || o.res.Verdict != runtime.Drop || o.res.Reason != "Consent mismatch" {
			t.Errorf("event in flight during Close: %v %v %q, want it dropped for Consent mismatch", o.err, o.res.Verdict, o.res.Reason)
		}
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	var res runtime.Result
	if err := f.Invoke(context.Background(), []byte(evMatch), &res); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("Invoke after Close: %v, want ErrClosed", err)
	}
	if res.Verdict != runtime.Fail || res.Event != nil {
		t.Errorf("Invoke after Close: result %v with %d bytes of event, want Fail and no event", res.Verdict, len(res.Event))
	}
	if err := f.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if st := f.Stats(); st.Idle != 0 || st.Invocations != 2 {
		t.Errorf("stats after Close %+v: want no idle instance and the 2 events counted", st)
	}
}

// TestCloseUnderLoad closes Functions while goroutines keep invoking them:
// each Invoke either runs normally or returns ErrClosed, and nothing panics
// or races.
func TestCloseUnderLoad(t *testing.T) {
	const rounds, goroutines = 5, 6
	for round := range rounds {
		f, err := engine(t).Load(context.Background(), guest(t, "consent-match"),
			runtime.Options{Name: "closing", Store: testStore, Limits: runtime.Limits{PoolSize: 2}})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		started := make(chan struct{}, goroutines)
		for g := range goroutines {
			wg.Go(func() {
				var res runtime.Result
				for i := 0; ; i++ {
					if i == 1 {
						started <- struct{}{}
					}
					err := f.Invoke(context.Background(), []byte(evMismatch), &res)
					if errors.Is(err, runtime.ErrClosed) {
						return
					}
					if err != nil || res.Verdict != runtime.Drop {
						t.Errorf("round %d goroutine %d: %v %v", round, g, err, res.Verdict)
						return
					}
				}
			})
		}
		for range goroutines {
			<-started
		}
		if err := f.Close(context.Background()); err != nil {
			t.Errorf("round %d: Close: %v", round, err)
		}
		wg.Wait()
	}
}
