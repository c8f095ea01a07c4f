package boltstore

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

// crashDirEnv names the data directory of the crash test's child process.
const crashDirEnv = "BOLTSTORE_CRASH_CHILD_DIR"

// ack is one update the child acknowledged: record id, category, timestamp.
type ack struct {
	id, cat string
	ts      int64
}

// TestCrash: a child process writes updates from several goroutines with
// the default options (synced) and prints each one after Update returned;
// it is killed with SIGKILL mid-stream. After each kill the database opens
// cleanly, passes bbolt's consistency check, and holds every acknowledged
// update, in the record and in its history. Three rounds over one file, so
// that the child also recovers a killed database.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	var acks []ack
	for round := range 3 {
		acks = append(acks, crashChild(t, dir, round)...)
		s, err := Open(dir, Options{LockTimeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		err = s.db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				t.Errorf("round %d: bbolt check: %v", round, err)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		checkAcks(t, s, acks)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d acknowledged updates in all, every one kept", round, len(acks))
	}
}

// crashChild runs the child, kills it after it acknowledged a few hundred
// updates and returns what it acknowledged.
func crashChild(t *testing.T, dir string, round int) []ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprintf("BOLTSTORE_CRASH_ROUND=%d", round))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAfter := 300 + 97*round
	var acks []ack
	killed := false
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var a ack
		if _, err := fmt.Sscanf(sc.Text(), "ack %s %s %d", &a.id, &a.cat, &a.ts); err != nil {
			continue // test framework output
		}
		acks = append(acks, a)
		if len(acks) == killAfter && !killed {
			killed = true
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill the child: %v", err)
			}
			// Lines already written are acknowledged updates too: read on
			// to the end of the pipe.
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("round %d: the child stopped after %d acknowledged updates: %v", round, len(acks), err)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("round %d: the child ended with %v, want killed by SIGKILL", round, err)
	}
	return acks
}

// checkAcks checks that every acknowledged update is in s: the record holds
// the decision or a newer one (each writer's timestamps only grow), and the
// history holds the decision itself.
func checkAcks(t *testing.T, s *Store, acks []ack) {
	t.Helper()
	hist := map[string]map[string]bool{}
	for _, a := range acks {
		r, err := s.Get(ctx, a.id)
		if err != nil {
			t.Errorf("acknowledged %+v: Get: %v", a, err)
			continue
		}
		c, ok := r.Category(a.cat)
		if !ok || c.Timestamp < a.ts {
			t.Errorf("acknowledged %+v: the record holds %+v (found %t)", a, c, ok)
		}
		if hist[a.id] == nil {
			_, pts, err := s.History(ctx, a.id)
			if err != nil {
				t.Errorf("History(%s): %v", a.id, err)
			}
			hist[a.id] = map[string]bool{}
			for _, p := range pts {
				hist[a.id][p.Key()] = true
			}
		}
		p := consentstore.Point{Kind: consentstore.KindCategory, Name: a.cat, Timestamp: a.ts}
		if !hist[a.id][p.Key()] {
			t.Errorf("acknowledged %+v: not in the history", a)
		}
	}
}

// TestCrashChild is the child process of TestCrash; it does nothing in a
// normal test run. It writes until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child process of TestCrash")
	}
	round := os.Getenv("BOLTSTORE_CRASH_ROUND")
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	var mu sync.Mutex // one line per write
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			cat := fmt.Sprintf("R%sW%d", round, w)
			for i := int64(1); ; i++ {
				id := fmt.Sprintf("u%d", (i*7+int64(w))%40)
				u := &consentstore.Update{Source: "crash", RecordedAt: time.Now().UnixMilli(), Record: consent.Record{
					ID: id, Aliases: []string{"anon-" + id},
					Categories: []consent.Category{{Name: cat, Consented: i%2 == 0, Timestamp: i}}}}
				if _, _, err := s.Update(ctx, u); err != nil {
					fmt.Fprintln(os.Stderr, "crash child: update:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %s %s %d\n", id, cat, i)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
