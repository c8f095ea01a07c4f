package runtime_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	stdruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/runtime"
)

// hostileCase is one misbehaviour of a guest: the event that triggers it,
// the error it must get, and an event the same guest handles normally.
type hostileCase struct {
	name    string
	guest   string
	limits  *runtime.Limits // nil: hostileLimits
	normal  string          // handled normally (delivered)
	hostile string
	want    error             // the sentinel errors.Is must match
	kind    runtime.ErrorKind // res.Kind and the *runtime.Error's Kind
	reason  string            // part of res.Reason
}

// bigLimits are hostileLimits with time for the host to handle 1 MiB.
var bigLimits = runtime.Limits{Timeout: 10 * time.Second, MemoryPages: hostileLimits.MemoryPages}

var hostileCases = []hostileCase{
	{
		name: "endless loop", guest: "loop",
		normal: `{"type":"track","event":"ok"}`, hostile: `{"type":"track","hostile":true}`,
		want: runtime.ErrTimeout, kind: runtime.KindTimeout, reason: "200ms",
	},
	{
		name: "sleep for an hour", guest: "loop",
		normal: `{"type":"track","event":"ok"}`, hostile: `{"type":"track","sleep":true}`,
		want: runtime.ErrTimeout, kind: runtime.KindTimeout, reason: "200ms",
	},
	{
		// The grower needs more than 200ms to reach the cap under load or
		// -race: a timeout would hide the memory failure.
		name: "memory grower", guest: "grow", limits: &runtime.Limits{Timeout: 10 * time.Second, MemoryPages: 512},
		normal: `{"type":"track"}`, hostile: `{"type":"track","hostile":true}`,
		want: runtime.ErrMemoryLimit, kind: runtime.KindMemoryLimit, reason: "512 pages",
	},
	{
		name: "raw Go panic", guest: "rawpanic",
		normal: `{"type":"identify"}`, hostile: `{"type":"identify","hostile":true}`,
		want: runtime.ErrGuestExit, kind: runtime.KindGuestExit, reason: "rawpanic: the handler panicked and nothing recovered",
	},
	{
		name: "os.Exit", guest: "rawpanic",
		normal: `{"type":"identify"}`, hostile: `{"type":"identify","exit":true}`,
		want: runtime.ErrGuestExit, kind: runtime.KindGuestExit, reason: "code 3",
	},
	{
		name: "huge log line", guest: "biglog",
		normal: `{"type":"track"}`, hostile: `{"type":"track","hostile":"log"}`,
		want: runtime.ErrLogLimit, kind: runtime.KindLogLimit, reason: "4096",
	},
	{
		name: "many log lines", guest: "biglog",
		normal: `{"type":"track"}`, hostile: `{"type":"track","hostile":"lines"}`,
		want: runtime.ErrLogLimit, kind: runtime.KindLogLimit, reason: "4096",
	},
	{
		name: "huge stdout", guest: "biglog",
		normal: `{"type":"track"}`, hostile: `{"type":"track","hostile":"stdout"}`,
		want: runtime.ErrLogLimit, kind: runtime.KindLogLimit, reason: "4096",
	},
	{
		name: "huge stderr", guest: "biglog",
		normal: `{"type":"track"}`, hostile: `{"type":"track","hostile":"stderr"}`,
		want: runtime.ErrLogLimit, kind: runtime.KindLogLimit, reason: "4096",
	},
	{
		// Under -race the host's own work on 1 MiB (validating, copying) can
		// take most of 200ms on a busy machine: a timeout would hide the
		// size failure.
		name: "huge Set", guest: "bigset", limits: &bigLimits,
		normal: `{"type":"track"}`, hostile: `{"type":"track","hostile":"set"}`,
		want: runtime.ErrEventTooLarge, kind: runtime.KindEventTooLarge, reason: "65536",
	},
	{
		name: "huge Replace", guest: "bigset", limits: &bigLimits,
		normal: `{"type":"track"}`, hostile: `{"type":"track","hostile":"replace"}`,
		want: runtime.ErrEventTooLarge, kind: runtime.KindEventTooLarge, reason: "65536",
	},
}

// TestHostileGuests runs each hostile guest twice into its failure, each
// time followed by a normal event on the same Function, while a
// consent-match Function of another module keeps handling events.
func TestHostileGuests(t *testing.T) {
	by := startBystander(t)
	t.Run("cases", func(t *testing.T) {
		for _, c := range hostileCases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				limits := hostileLimits
				if c.limits != nil {
					limits = *c.limits
				}
				f := load(t, c.guest, runtime.Options{Name: c.guest, Limits: limits})
				checkHostile(t, f, c)
			})
		}
	})
	by.check(t)
}

// checkHostile checks a hostile case on a freshly loaded Function.
func checkHostile(t *testing.T, f *runtime.Function, c hostileCase) {
	t.Helper()
	checkNormal(t, f, c)
	const rounds = 2
	for round := range rounds {
		before := f.Stats()
		res, err := invoke(t, f, c.hostile)
		if err == nil {
			t.Fatalf("round %d: hostile event: no error (verdict %v %s %q), want %v", round, res.Verdict, res.Kind, res.Reason, c.want)
		}
		if !errors.Is(err, c.want) {
			t.Fatalf("round %d: hostile event: error %v, want errors.Is %v", round, err, c.want)
		}
		var ferr *runtime.Error
		if !errors.As(err, &ferr) {
			t.Fatalf("round %d: error %T is not a *runtime.Error", round, err)
		}
		if ferr.Kind != c.kind || ferr.Function != f.Name() || !ferr.Kind.Sandbox() {
			t.Errorf("round %d: error kind %q function %q, want %q %q", round, ferr.Kind, ferr.Function, c.kind, f.Name())
		}
		if res.Verdict != runtime.Fail || res.Kind != c.kind {
			t.Errorf("round %d: result %v %q, want error %q", round, res.Verdict, res.Kind, c.kind)
		}
		if !strings.Contains(res.Reason, c.reason) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("round %d: reason %q / error %q, want them to mention %q", round, res.Reason, err, c.reason)
		}
		if res.Event != nil || res.Modified {
			t.Errorf("round %d: a failed event came back with an event (%d bytes, modified %v)", round, len(res.Event), res.Modified)
		}
		after := f.Stats()
		if after.Discarded != before.Discarded+1 {
			t.Errorf("round %d: Discarded %d -> %d, want +1", round, before.Discarded, after.Discarded)
		}
		if after.Invocations != before.Invocations+1 {
			t.Errorf("round %d: Invocations %d -> %d, want +1", round, before.Invocations, after.Invocations)
		}
		checkNormal(t, f, c)
	}
	st := f.Stats()
	if st.Discarded != rounds || st.Started != 1+st.Discarded+st.Recycled {
		t.Errorf("stats %+v: want %d discarded and one instance started per discarded or recycled one, plus the first", st, rounds)
	}
}

// checkNormal runs the normal event of a case, which must be delivered.
func checkNormal(t *testing.T, f *runtime.Function, c hostileCase) {
	t.Helper()
	res := mustDeliver(t, f, c.normal)
	switch c.guest {
	case "biglog":
		if len(res.Logs) != 1 || res.Logs[0].Message != "biglog: a short line" {
			t.Errorf("normal event: logs %+v, want the one short line", res.Logs)
		}
	case "bigset":
		if !res.Modified || !strings.Contains(string(res.Event), `"small":"ok"`) {
			t.Errorf("normal event: %s (modified %v), want \"small\":\"ok\" set", res.Event, res.Modified)
		}
	default:
		if res.Modified || string(res.Event) != c.normal || len(res.Logs) != 0 {
			t.Errorf("normal event: %s (modified %v, logs %v), want it back untouched", res.Event, res.Modified, res.Logs)
		}
	}
}

// TestLoadRefusals checks that modules that cannot run are refused by Load
// with a message that says why.
func TestLoadRefusals(t *testing.T) {
	cases := []struct {
		name     string
		wasm     func(t *testing.T) []byte
		settings string
		want     []string // parts of the error message
	}{
		{"ABI version 99", func(t *testing.T) []byte { return guest(t, "abi99") }, "", []string{"ABI version 99"}},
		{"no insertfn_handle", func(t *testing.T) []byte { return guest(t, "noexport") }, "", []string{"insertfn_handle"}},
		{"start-up trap", func(t *testing.T) []byte { return guest(t, "inittrap") }, "", []string{"_initialize", "inittrap: init failed on purpose"}},
		{"not wasm", func(*testing.T) []byte { return []byte("\x00asm but not really") }, "", []string{"compile"}},
		{"empty module", func(*testing.T) []byte { return []byte("\x00asm\x01\x00\x00\x00") }, "", []string{"does not export its memory"}},
		{"endless start function", func(*testing.T) []byte { return endlessStartModule() }, "", []string{"start-up (insertfn.start): took longer than 1s"}},
		{"settings not an object", func(t *testing.T) []byte { return guest(t, "consent-match") }, `["drop"]`, []string{"settings"}},
		{"settings not JSON", func(t *testing.T) []byte { return guest(t, "consent-match") }, `{"missingRecord":`, []string{"settings"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			limits := hostileLimits
			limits.StartTimeout = time.Second
			f, err := engine(t).Load(context.Background(), c.wasm(t), runtime.Options{Name: "refused", Settings: []byte(c.settings), Limits: limits})
			if err == nil {
				_ = f.Close(context.Background())
				t.Fatal("Load succeeded, want an error")
			}
			t.Logf("Load: %v", err)
			for _, w := range append(c.want, "refused") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestGuestOutputLines checks that a line a guest writes to stdout in
// several writes (fmt.Print does, and the Go runtime prints a panic one
// word at a time) is one log line.
func TestGuestOutputLines(t *testing.T) {
	f := load(t, "biglog", runtime.Options{Limits: hostileLimits})
	res := mustDeliver(t, f, `{"type":"track","pieces":true}`)
	const want = "biglog: one line, written in two pieces"
	if len(res.Logs) == 1 && res.Logs[0].Message == want {
		return
	}
	t.Errorf("logs %+v, want one line %q", res.Logs, want)
}

// endlessStartModule is a module that follows the ABI but whose wasm start
// function never returns. Run inside instantiation, no time limit could stop
// it; loopcheck moves it out, and the start-up time limit stops it.
func endlessStartModule() []byte {
	exports := []byte{3}
	for _, e := range []struct {
		name        string
		kind, index byte
	}{{"memory", 2, 0}, {"insertfn_abi_version", 0, 1}, {"insertfn_handle", 0, 2}} {
		exports = append(append(append(exports, byte(len(e.name))), e.name...), e.kind, e.index)
	}
	sections := []struct {
		id   byte
		body []byte
	}{
		{1, []byte{3, 0x60, 0, 0, 0x60, 0, 1, 0x7F, 0x60, 1, 0x7F, 1, 0x7F}}, // () -> (), () -> i32, (i32) -> i32
		{3, []byte{3, 0, 1, 2}}, // the start function, abi version, handle
		{5, []byte{1, 0, 1}},    // one page
		{7, exports},
		{8, []byte{0}}, // start: function 0
		{10, []byte{3,
			7, 0, 0x03, 0x40, 0x0C, 0x00, 0x0B, 0x0B, // loop br 0 end
			4, 0, 0x41, 1, 0x0B, // i32.const 1
			4, 0, 0x41, 0, 0x0B, // i32.const 0
		}},
	}
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		wasm = append(append(wasm, s.id, byte(len(s.body))), s.body...)
	}
	return wasm
}

// TestSpinningGuestDoesNotStopTheWorld: compiled wasm is not preemptible,
// so a guest spinning in a loop would keep a stop-the-world garbage
// collection waiting (and with it the watchdog that is to stop the guest)
// if its loops never left for Go. loopcheck's yield makes them do so
// every FuelPerYield iterations: a collection started while the guest
// spins finishes long before the guest's time limit.
//
// The check runs in a child process: a regression stops the world for good,
// and with it the test binary's own timeout, so the parent kills the child
// after a minute and fails.
func TestSpinningGuestDoesNotStopTheWorld(t *testing.T) {
	if os.Getenv("INSERTFN_TEST_SPIN_CHILD") != "1" {
		if raceEnabled {
			t.Skip("covered by the run without -race (a child would rebuild the race cache)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSpinningGuestDoesNotStopTheWorld$", "-test.v")
		cmd.Env = append(os.Environ(), "INSERTFN_TEST_SPIN_CHILD=1")
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("the child did not finish in a minute: a spinning guest stopped the world\n%s", out)
		}
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	const limit = 3 * time.Second
	f := load(t, "loop", runtime.Options{Limits: runtime.Limits{Timeout: limit, MemoryPages: hostileLimits.MemoryPages, PoolSize: 1}})
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := invoke(t, f, `{"type":"track","hostile":true}`)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // the guest is spinning by now
	gcStart := time.Now()
	stdruntime.GC()
	if d := time.Since(gcStart); d > limit/3 {
		t.Errorf("a garbage collection during the guest's loop took %v", d)
	}
	select {
	case err := <-done:
		t.Fatalf("the guest returned before the collection was measured: %v", err)
	default:
	}
	if err := <-done; !errors.Is(err, runtime.ErrTimeout) {
		t.Errorf("the spinning guest: %v, want a timeout", err)
	}
	if d := time.Since(start); d < limit || d > limit+2*time.Second {
		t.Errorf("the guest was stopped after %v, want about %v", d, limit)
	}
}
