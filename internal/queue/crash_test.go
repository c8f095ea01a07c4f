package queue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashEnv, set to a directory, makes TestCrash run as the child that is
// killed.
const crashEnv = "INSERTFN_QUEUE_CRASH_CHILD"

// TestCrash re-executes the test binary as a child that appends batches
// with SyncAlways from several goroutines, and moves items from "inbox"
// to "out" as the pipeline does, printing "ack <id>" for every batch
// whose Append returned. The parent SIGKILLs it mid-stream, reopens the
// file and checks that every acknowledged item is there exactly once:
// in "inbox", or moved to "out", never lost and never both.
func TestCrash(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	for _, policy := range []SyncPolicy{SyncInterval, SyncAlways} {
		t.Run(policy.String(), func(t *testing.T) { crash(t, policy) })
	}
}

// crashSyncEnv carries the sync policy to the crash child.
const crashSyncEnv = "INSERTFN_QUEUE_CRASH_SYNC"

func crash(t *testing.T, policy SyncPolicy) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashSyncEnv+"="+policy.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 300 // acknowledged batches
	var acked []string
	killed := false
	timeout := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer timeout.Stop()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		id, ok := strings.CutPrefix(line, "ack ")
		if !ok {
			continue
		}
		acked = append(acked, id)
		if len(acked) == killAfter && !killed {
			killed = true
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("the child ended before %d acknowledged batches: %v\n%s", killAfter, err, stderr.String())
	}
	// The last line may have been cut by the kill: keep only complete ids.
	if n := len(acked); n > 0 && !strings.HasSuffix(acked[n-1], ";") {
		acked = acked[:n-1]
	}

	q, err := Open(filepath.Join(dir, DirName), Options{Sync: policy})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	found := map[string]int{}
	for _, topic := range []Topic{"inbox", "out"} {
		c := q.Consumer(topic)
		for {
			items, err := c.Next(ctxT(t, 100*time.Millisecond), 1000, 0)
			if errors.Is(err, context.DeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range items {
				found[string(it.Data)]++
			}
		}
	}
	for d, n := range found {
		if n != 1 {
			t.Fatalf("item %s stored %d times", d, n)
		}
	}
	lost := 0
	for _, id := range acked {
		for j := range crashBatch {
			item := fmt.Sprintf("%s%d", id, j)
			if found[item] == 0 {
				if lost < 5 {
					t.Errorf("acknowledged item %s lost", item)
				}
				lost++
			}
		}
	}
	t.Logf("%d batches of %d acknowledged before SIGKILL, %d items found after restart, %d lost", len(acked), crashBatch, len(found), lost)
}

// crashBatch is the number of items per Append of the crash child.
const crashBatch = 10

// crashChild appends and moves until it is killed.
func crashChild(dir string) {
	var policy SyncPolicy
	if err := policy.UnmarshalText([]byte(os.Getenv(crashSyncEnv))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	q, err := Open(filepath.Join(dir, DirName), Options{Sync: policy})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	var outMu sync.Mutex
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("g%d-%d;", g, i)
				items := make([][]byte, crashBatch)
				for j := range items {
					items[j] = fmt.Appendf(nil, "%s%d", id, j)
				}
				if err := q.Append(ctx, "inbox", items...); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				outMu.Lock()
				os.Stdout.WriteString("ack " + id + "\n")
				outMu.Unlock()
			}
		}()
	}
	go func() {
		c := q.Consumer("inbox")
		for {
			items, err := c.Next(ctx, 50, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			moved := make([][]byte, len(items))
			for i, it := range items {
				moved[i] = it.Data
			}
			if err := q.Move(ctx, c, items, map[Topic][][]byte{"out": moved}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}()
	time.Sleep(30 * time.Second) // the parent kills it long before
	os.Exit(2)
}
