package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestPowerLoss runs the pipeline's pattern on a file system that
// simulates a power loss: producers append batches to "inbox" under
// SyncAlways, a mover hands items on to "out" (Move, not waited for), a
// deliverer takes them from "out" and acknowledges them (Ack, not waited
// for), each slower than the one before, so that both topics hold a
// backlog. In the middle of it the file system is cloned as a power loss
// would leave it: everything synced, and none (or a random half) of what
// was not. The queue reopened on the clone must hold every item whose
// Append had returned, in "inbox" or in "out", unless it was delivered;
// and no item twice.
//
// Under SyncInterval (whose periodic fsync the test runs itself, once, in
// the middle) the items that must be there are those acknowledged before
// that fsync; the store must open all the same, its log torn anywhere
// after it.
func TestPowerLoss(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncInterval} {
		for _, keep := range []int{0, 50} {
			t.Run(fmt.Sprintf("%s/unsynced-kept=%d%%", policy, keep), func(t *testing.T) {
				for round := range 3 {
					powerLoss(t, Options{Sync: policy, Interval: time.Hour, MaxBytes: -1}, keep, uint64(round))
				}
			})
		}
	}
}

// TestProcessCrash is TestPowerLoss for a kill -9: what the process wrote
// to its files survives, synced or not. Under SyncInterval (whose fsync
// does not come during the test) as under SyncAlways, no item whose
// Append returned is lost: SyncInterval returns once the log is written
// to the OS, not once it is in the store's buffer.
func TestProcessCrash(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncInterval} {
		t.Run(policy.String(), func(t *testing.T) {
			for round := range 2 {
				powerLoss(t, Options{Sync: policy, Interval: time.Hour, MaxBytes: -1}, 100, uint64(round))
			}
		})
	}
}

func powerLoss(t *testing.T, opts Options, keepPercent int, seed uint64) {
	fs := vfs.NewCrashableMem()
	q, err := openOn(fs, "/queue", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	acked := map[string]bool{}     // items whose Append returned
	delivered := map[string]bool{} // items handed out by "out"
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for b := 0; ctx.Err() == nil; b++ {
				batch := make([][]byte, 5)
				for i := range batch {
					batch[i] = fmt.Appendf(nil, "p%d-b%d-i%d", p, b, i)
				}
				if err := q.Append(ctx, "inbox", batch...); err != nil {
					return
				}
				mu.Lock()
				for _, it := range batch {
					acked[string(it)] = true
				}
				mu.Unlock()
			}
		})
	}
	in, out := q.Consumer("inbox"), q.Consumer("out")
	wg.Go(func() {
		for {
			items, err := in.Next(ctx, 20, 0)
			if err != nil {
				return
			}
			data := make([][]byte, len(items))
			for i, it := range items {
				data[i] = it.Data
			}
			if err := q.Move(ctx, in, items, map[Topic][][]byte{"out": data}); err != nil {
				return
			}
			time.Sleep(time.Millisecond) // slower than the producers: a backlog in "inbox"
		}
	})
	wg.Go(func() {
		for {
			items, err := out.Next(ctx, 20, 0)
			if err != nil {
				return
			}
			mu.Lock()
			for _, it := range items {
				delivered[string(it.Data)] = true
			}
			mu.Unlock()
			if err := out.Ack(ctx, items...); err != nil {
				return
			}
			time.Sleep(3 * time.Millisecond) // slower than the mover: a backlog in "out"
		}
	})

	time.Sleep(150 * time.Millisecond)
	mu.Lock()
	mustHave := make(map[string]bool, len(acked))
	for id := range acked {
		mustHave[id] = true
	}
	mu.Unlock()
	if q.ifs != nil {
		// SyncInterval: what was acknowledged so far is written; the
		// periodic fsync makes it durable, and what comes after it is not.
		if err := q.ifs.syncAll(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: keepPercent, RNG: rand.New(rand.NewPCG(seed, 7))})
	// Whatever was acknowledged before the clone was delivered before it.
	mu.Lock()
	wasDelivered := make(map[string]bool, len(delivered))
	for id := range delivered {
		wasDelivered[id] = true
	}
	mu.Unlock()
	cancel()
	wg.Wait()
	if len(mustHave) == 0 || len(mustHave) <= len(wasDelivered) {
		t.Fatalf("%d items acknowledged, %d delivered before the power loss: no backlog, the test proves nothing", len(mustHave), len(wasDelivered))
	}

	q2, err := openOn(crashed, "/queue", opts)
	if err != nil {
		t.Fatalf("reopen after the power loss: %v", err)
	}
	defer q2.Close()
	found := map[string]string{}
	for _, topic := range []Topic{"inbox", "out"} {
		c := q2.Consumer(topic)
		for {
			rctx, rcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			items, err := c.Next(rctx, 1000, 0)
			rcancel()
			if errors.Is(err, context.DeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range items {
				if where, twice := found[string(it.Data)]; twice {
					t.Errorf("%s is stored twice, in %s and in %s", it.Data, where, topic)
				}
				found[string(it.Data)] = string(topic)
			}
		}
	}
	lost := 0
	for id := range mustHave {
		if found[id] == "" && !wasDelivered[id] {
			if lost < 5 {
				t.Errorf("%s: its Append returned before the power loss; it is neither stored nor delivered", id)
			}
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged items lost", lost, len(mustHave))
	}
	t.Logf("%d items acknowledged before the power loss: %d found after it (%d in out), %d delivered",
		len(mustHave), len(found), count(found, "out"), len(wasDelivered))
}

func count(m map[string]string, v string) int {
	n := 0
	for _, x := range m {
		if x == v {
			n++
		}
	}
	return n
}

// TestIntervalSync: under SyncInterval the log's fsync is the queue's own,
// every Interval: what was appended before one survives a power loss.
func TestIntervalSync(t *testing.T) {
	fs := vfs.NewCrashableMem()
	opts := Options{Sync: SyncInterval, Interval: time.Hour, MaxBytes: -1}
	q, err := openOn(fs, "/queue", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	if err := q.Append(ctx, "t", bs("a", "b")...); err != nil {
		t.Fatal(err)
	}
	if err := q.ifs.syncAll(); err != nil { // what syncLoop does every Interval
		t.Fatal(err)
	}
	if err := q.Append(ctx, "t", bs("c")...); err != nil { // not fsynced yet
		t.Fatal(err)
	}
	for _, keep := range []int{0, 100} {
		q2, err := openOn(fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: keep, RNG: rand.New(rand.NewPCG(1, 2))}), "/queue", opts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := q2.Consumer("t").Next(ctxT(t, time.Second), 10, 0)
		q2.Close()
		want := []string{"a", "b", "c"} // a kill -9 keeps all
		if keep == 0 {
			want = want[:2] // a power loss: c was not fsynced
		}
		if err != nil || !slices.Equal(datas(got), want) {
			t.Fatalf("after a crash keeping %d%% of unsynced data: %q, %v; want %q", keep, datas(got), err, want)
		}
	}
}

// TestIntervalOnNewerFormat: a store whose log promises synced offsets
// (created at a newer format, as earlier insertfns did) is fsynced for
// real under SyncInterval: what an Append acknowledged survives a power
// loss, and the store opens.
func TestIntervalOnNewerFormat(t *testing.T) {
	fs := vfs.NewCrashableMem()
	if err := fs.MkdirAll("/queue", 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open("/queue", &pebble.Options{FS: fs, FormatMajorVersion: pebble.FormatNewest, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	opts := Options{Sync: SyncInterval, Interval: time.Hour}
	q, err := openOn(fs, "/queue", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.ifs != nil {
		t.Fatal("SyncInterval defers the fsyncs of a log that promises synced offsets")
	}
	if err := q.Append(context.Background(), "t", bs("a")...); err != nil {
		t.Fatal(err)
	}
	q2, err := openOn(fs.CrashClone(vfs.CrashCloneCfg{}), "/queue", opts)
	if err != nil {
		t.Fatalf("reopen after a power loss: %v", err)
	}
	defer q2.Close()
	got, err := q2.Consumer("t").Next(ctxT(t, time.Second), 10, 0)
	if err != nil || !slices.Equal(datas(got), []string{"a"}) {
		t.Fatalf("after a power loss: %q, %v; want the acknowledged item", datas(got), err)
	}
}
