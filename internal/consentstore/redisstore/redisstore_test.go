package redisstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/consentstore/redisstore"
	"github.com/insertfn/insertfn/internal/testkit/redistest"
	"github.com/insertfn/insertfn/sdk/consent"
)

var ctx = context.Background()

func wire(r *consent.Record) string {
	if r == nil {
		return "<nil>"
	}
	b, _ := json.Marshal(r)
	return string(b)
}

// randomUpdate returns a valid update (as a Store would pass it to a
// backend) over a small set of ids, entries and times, so that updates
// collide, link records and tie on timestamps.
func randomUpdate(rng *rand.Rand, n int) *consentstore.Update {
	ids := []string{"u0", "u1", "u2", "a0", "a1", "a2", "a3", "é", "Z"}
	r := consent.Record{ID: ids[rng.IntN(len(ids))]}
	for range rng.IntN(3) {
		r.Aliases = append(r.Aliases, ids[rng.IntN(len(ids))])
	}
	for range rng.IntN(4) {
		r.Categories = append(r.Categories, consent.Category{Name: []string{"Advertising", "Analytics", "C0004"}[rng.IntN(3)],
			Consented: rng.IntN(2) == 0, Timestamp: 1 + rng.Int64N(6)})
	}
	for range rng.IntN(3) {
		r.Purposes = append(r.Purposes, consent.Purpose{Regulation: []string{"gdpr", "ccpa"}[rng.IntN(2)],
			Name: []string{"p", "data_sale_opt_out"}[rng.IntN(2)], Consented: rng.IntN(2) == 0, Timestamp: 1 + rng.Int64N(6),
			Document: []string{"", "v1", "v2"}[rng.IntN(3)], Location: []string{"", "x\ny"}[rng.IntN(2)]})
	}
	if rng.IntN(5) == 0 {
		r.UpdatedAt = rng.Int64N(10)
	}
	r.Normalize()
	return &consentstore.Update{Record: r, Source: fmt.Sprintf("s%d", n), RecordedAt: 1000 + int64(n)}
}

// TestSameAsMemory applies the same random operations to Memory, the
// reference backend, and to Redis, and compares every result.
func TestSameAsMemory(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			mem := consentstore.NewMemory()
			red := open(t, freshConfig(t))
			for n := range 300 {
				if rng.IntN(12) == 0 {
					id := []string{"u0", "u1", "a0", "a2", "nobody"}[rng.IntN(5)]
					mr, merr := mem.Delete(ctx, id)
					rr, rerr := red.Delete(ctx, id)
					if wire(mr) != wire(rr) || errors.Is(merr, consent.ErrNotFound) != errors.Is(rerr, consent.ErrNotFound) {
						t.Fatalf("op %d: Delete(%q): memory %s, %v; redis %s, %v", n, id, wire(mr), merr, wire(rr), rerr)
					}
					continue
				}
				u := randomUpdate(rng, n)
				u2 := *u
				u2.Record = *u.Record.Clone()
				mr, mch, merr := mem.Update(ctx, u)
				rr, rch, rerr := red.Update(ctx, &u2)
				if merr != nil || rerr != nil {
					t.Fatalf("op %d: Update: memory %v, redis %v", n, merr, rerr)
				}
				if wire(mr) != wire(rr) || !reflect.DeepEqual(mch, rch) {
					t.Fatalf("op %d: Update(%s):\nmemory %s %+v\nredis  %s %+v", n, wire(&u.Record), wire(mr), mch, wire(rr), rch)
				}
				for _, id := range rr.IDs()[:min(2, len(rr.IDs()))] {
					got, err := red.Get(ctx, id)
					if err != nil || wire(got) != wire(mr) {
						t.Fatalf("op %d: Get(%q) after Update = %s, %v; want %s", n, id, wire(got), err, wire(mr))
					}
				}
			}
			// Same records, same histories.
			var mrecs, rrecs []string
			mem.Scan(ctx, func(r *consent.Record) error { mrecs = append(mrecs, wire(r)); return nil })
			if err := red.Scan(ctx, func(r *consent.Record) error { rrecs = append(rrecs, wire(r)); return nil }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(mrecs, rrecs) {
				t.Fatalf("Scan:\nmemory %v\nredis  %v", mrecs, rrecs)
			}
			if len(mrecs) == 0 {
				t.Fatal("no records left: the test checks nothing")
			}
			for _, r := range mem.Records() {
				_, mp, err1 := mem.History(ctx, r.ID)
				_, rp, err2 := red.History(ctx, r.ID)
				if err1 != nil || err2 != nil {
					t.Fatalf("History(%q): %v, %v", r.ID, err1, err2)
				}
				if a, b := pointSet(mp), pointSet(rp); !slices.Equal(a, b) {
					t.Errorf("History(%q):\nmemory %v\nredis  %v", r.ID, a, b)
				}
			}
		})
	}
}

func pointSet(pts []consentstore.Point) []string {
	out := make([]string, len(pts))
	for i, p := range pts {
		b, _ := json.Marshal(p)
		out[i] = string(b)
	}
	slices.Sort(out)
	return out
}

// TestConcurrentHosts: two hosts (two stores on one server), many
// goroutines, categories and purposes updated with shuffled timestamps;
// the result is the newest entry of each, and the history holds every
// decision.
func TestConcurrentHosts(t *testing.T) {
	cfg := freshConfig(t)
	hosts := []*consentstore.Store{
		consentstore.New(open(t, cfg), consentstore.Options{}),
		consentstore.New(open(t, cfg), consentstore.Options{}),
	}
	type job struct {
		name string
		ts   int64
	}
	const perEntry = 100
	names := []string{"Advertising", "Analytics", "Functional", "gdpr/p1", "ccpa/data_sale_opt_out"}
	var jobs []job
	for _, n := range names {
		for ts := int64(1); ts <= perEntry; ts++ {
			jobs = append(jobs, job{n, ts})
		}
	}
	rand.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	ids := []string{"u1", "anon1", "anon2"}
	var wg sync.WaitGroup
	next := make(chan job)
	for w := range 16 {
		host := hosts[w%2]
		wg.Go(func() {
			for j := range next {
				// The newest (perEntry) is consented; the id used varies, so
				// updates come by id and by alias.
				r := consent.Record{ID: ids[int(j.ts)%len(ids)], Aliases: []string{ids[(int(j.ts)+1)%len(ids)]}}
				if reg, name, ok := strings.Cut(j.name, "/"); ok {
					r.Purposes = []consent.Purpose{{Regulation: reg, Name: name, Consented: j.ts%2 == 0, Timestamp: j.ts,
						Document: fmt.Sprint("doc", j.ts)}}
				} else {
					r.Categories = []consent.Category{{Name: j.name, Consented: j.ts%2 == 0, Timestamp: j.ts}}
				}
				if _, err := host.Update(ctx, consentstore.Update{Record: r, Source: fmt.Sprint("w", w)}); err != nil {
					t.Errorf("Update: %v", err)
				}
			}
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()

	for _, id := range ids {
		r, err := hosts[1].Get(ctx, id)
		if err != nil {
			t.Fatalf("Get(%q): %v", id, err)
		}
		if len(r.Categories) != 3 || len(r.Purposes) != 2 || len(r.IDs()) != 3 {
			t.Fatalf("Get(%q) = %s, want one record with 3 ids, 3 categories and 2 purposes", id, wire(r))
		}
		for _, c := range r.Categories {
			if !c.Consented || c.Timestamp != perEntry {
				t.Errorf("category %+v, want the newest (consented at %d)", c, perEntry)
			}
		}
		for _, p := range r.Purposes {
			if !p.Consented || p.Timestamp != perEntry || p.Document != fmt.Sprint("doc", perEntry) {
				t.Errorf("purpose %+v, want the newest (consented at %d, doc%d)", p, perEntry, perEntry)
			}
		}
		if r.UpdatedAt != perEntry {
			t.Errorf("UpdatedAt = %d, want %d", r.UpdatedAt, perEntry)
		}
	}
	_, hist, err := hosts[0].History(ctx, "anon2")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != len(jobs) {
		t.Errorf("history holds %d decisions, want all %d", len(hist), len(jobs))
	}
	var recs int
	hosts[0].Scan(ctx, func(*consent.Record) error { recs++; return nil })
	if recs != 1 {
		t.Errorf("%d records, want 1", recs)
	}
}

// TestLargeTimestamps: timestamps beyond 2^53 (where Lua's numbers are no
// longer exact) still compare exactly.
func TestLargeTimestamps(t *testing.T) {
	const big = int64(1) << 60
	// A clock past them all: the store refuses decisions dated ahead of it.
	s := consentstore.New(open(t, freshConfig(t)), consentstore.Options{Now: func() time.Time { return time.UnixMilli(big + 10) }})
	for _, ts := range []int64{big + 1, big, big + 2, big - 1} {
		u := consentstore.Update{Record: consent.Record{ID: "u1", Categories: []consent.Category{{Name: "A", Consented: ts == big+2, Timestamp: ts}}}}
		if _, err := s.Update(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.Get(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := r.Category("A"); !c.Consented || c.Timestamp != big+2 || r.UpdatedAt != big+2 {
		t.Errorf("record %s, want A consented at %d", wire(r), big+2)
	}
}

// TestIDsWithAnyBytes: ids, names and values with braces, colons, NULs and
// newlines stay what they are.
func TestIDsWithAnyBytes(t *testing.T) {
	s := open(t, freshConfig(t))
	odd := []string{"{u1}", "a:b", "i:x", "nul\x00id", "line\nbreak", "ü", strings.Repeat("x", 5000)}
	for i, id := range odd {
		u := &consentstore.Update{RecordedAt: 1, Source: "s\n\x00", Record: consent.Record{ID: id,
			Categories: []consent.Category{{Name: id, Consented: true, Timestamp: int64(i + 1)}},
			Purposes: []consent.Purpose{{Regulation: "r:" + id, Name: "\x00", Consented: true, Timestamp: 1, Document: id,
				Location: "\n", HardwareID: "{}"}}}}
		if _, _, err := s.Update(ctx, u); err != nil {
			t.Fatalf("Update(%q): %v", id, err)
		}
		r, err := s.Get(ctx, id)
		if err != nil || r.ID != id || r.Categories[0].Name != id || r.Purposes[0].Regulation != "r:"+id || r.Purposes[0].Document != id {
			t.Fatalf("Get(%q) = %s, %v", id, wire(r), err)
		}
		_, pts, err := s.History(ctx, id)
		if err != nil || len(pts) != 2 {
			t.Fatalf("History(%q) = %+v, %v", id, pts, err)
		}
		for _, p := range pts {
			if p.Source != "s\n\x00" {
				t.Errorf("point source %q, want %q", p.Source, "s\n\x00")
			}
		}
	}
	// A purpose whose regulation and name split differently is another
	// purpose.
	u := &consentstore.Update{RecordedAt: 1, Record: consent.Record{ID: "split", Purposes: []consent.Purpose{
		{Regulation: "ab", Name: "c", Consented: true, Timestamp: 1},
		{Regulation: "a", Name: "bc", Consented: false, Timestamp: 1}}}}
	u.Record.Normalize()
	if _, _, err := s.Update(ctx, u); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Get(ctx, "split"); err != nil || len(r.Purposes) != 2 {
		t.Errorf("Get(split) = %s, %v; want two purposes", wire(r), err)
	}
}

// TestCorruptData: data under the prefix this package did not write gives
// an error naming it, never a panic.
func TestCorruptData(t *testing.T) {
	cfg := freshConfig(t)
	s := open(t, cfg)
	p := "{" + cfg.KeyPrefix + "}"
	addr := cfg.Addrs[0]
	for i, c := range []struct {
		name string
		cmd  []string // %s is the record's primary id
	}{
		{"bad entry", []string{"HSET", p + "r:%s", "c:A", "garbage"}},
		{"bad json", []string{"HSET", p + "r:%s", "c:A", "09223372036854775809{"}},
		{"unknown field", []string{"HSET", p + "r:%s", "zz", "1"}},
		{"dangling index", []string{"DEL", p + "r:%s"}},
		{"wrong type", []string{"SET", p + "r:%s", "x"}},
	} {
		id := fmt.Sprint("c", i)
		if _, _, err := s.Update(ctx, &consentstore.Update{RecordedAt: 1, Record: consent.Record{ID: id,
			Categories: []consent.Category{{Name: "A", Timestamp: 1}}}}); err != nil {
			t.Fatal(err)
		}
		cmd := slices.Clone(c.cmd)
		cmd[1] = fmt.Sprintf(cmd[1], id)
		if _, err := redistest.Do(ctx, addr, cmd...); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		r, err := s.Get(ctx, id)
		if err == nil || errors.Is(err, consent.ErrNotFound) || errors.Is(err, consentstore.ErrUnavailable) != (c.name == "wrong type") {
			t.Errorf("%s: Get = %s, %v; want an error (ErrUnavailable only for a server error)", c.name, wire(r), err)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
		if _, _, err := s.History(ctx, id); err == nil {
			t.Errorf("%s: History succeeded", c.name)
		}
	}
	if _, err := redistest.Do(ctx, addr, "HSET", p+"h:u2", "k", "no newline"); err != nil {
		t.Fatal(err)
	}
	if _, err := redistest.Do(ctx, addr, "SET", p+"i:u2", "u2"); err != nil {
		t.Fatal(err)
	}
	if _, err := redistest.Do(ctx, addr, "HSET", p+"r:u2", "u", "09223372036854775808"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.History(ctx, "u2"); err == nil || !strings.Contains(err.Error(), "history") {
		t.Errorf("History with a bad point: %v, want an error about the history", err)
	}
}

func TestNewErrors(t *testing.T) {
	// Nothing listens on this port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	_, err = redisstore.New(ctx, redisstore.Config{Addrs: []string{addr}, Timeout: 300 * time.Millisecond})
	if !errors.Is(err, consentstore.ErrUnavailable) || !strings.Contains(err.Error(), addr) {
		t.Errorf("New(%s) with nothing listening: %v; want ErrUnavailable naming the address", addr, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("New took %v with a 300ms timeout", d)
	}
	for _, c := range []redisstore.Config{
		{Addrs: []string{"a:1", "b:2"}, DB: 2},
		{Timeout: -1},
		{Addrs: []string{""}},
		{PoolSize: -1},
	} {
		if s, err := redisstore.New(ctx, c); err == nil {
			s.Close()
			t.Errorf("New(%+v) succeeded, want an error", c)
		}
	}
}

// blackhole accepts connections and never answers.
func blackhole(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// proxy forwards connections to addr until stall is called; then it
// forwards nothing more, in either direction, on old and new connections.
type proxy struct {
	addr    string
	mu      sync.Mutex
	stalled bool
	conns   []net.Conn
}

func newProxy(t *testing.T, to string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: l.Addr().String()}
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			stalled := p.stalled
			p.mu.Unlock()
			if stalled {
				continue // swallow
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go pipe(s, c)
			go pipe(c, s)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *proxy) stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

// wantUnavailable checks that get fails with ErrUnavailable within the
// timeout (plus slack for a noisy machine).
func wantUnavailable(t *testing.T, what string, timeout time.Duration, get func(context.Context) error) {
	t.Helper()
	start := time.Now()
	err := get(ctx)
	d := time.Since(start)
	if !errors.Is(err, consentstore.ErrUnavailable) {
		t.Errorf("%s: %v, want ErrUnavailable", what, err)
	}
	if d > timeout+300*time.Millisecond {
		t.Errorf("%s: failed after %v, want within the %v timeout", what, d, timeout)
	}
	t.Logf("%s: %v after %v", what, err, d.Round(time.Millisecond))
}

func TestUnavailable(t *testing.T) {
	const timeout = 300 * time.Millisecond
	t.Run("Blackhole", func(t *testing.T) {
		addr := blackhole(t)
		start := time.Now()
		_, err := redisstore.New(ctx, redisstore.Config{Addrs: []string{addr}, Timeout: timeout})
		if !errors.Is(err, consentstore.ErrUnavailable) || !strings.Contains(err.Error(), addr) {
			t.Errorf("New against a server that never answers: %v; want ErrUnavailable naming %s", err, addr)
		}
		if d := time.Since(start); d > timeout+300*time.Millisecond {
			t.Errorf("New failed after %v, want within %v", d, timeout)
		}
	})
	t.Run("Stalled", func(t *testing.T) {
		srv := redisServer.Server(t)
		p := newProxy(t, srv.Addr)
		cfg := freshConfig(t)
		cfg.Addrs, cfg.Timeout = []string{p.addr}, timeout
		s := open(t, cfg)
		u := &consentstore.Update{RecordedAt: 1, Record: consent.Record{ID: "u1", Categories: []consent.Category{{Name: "A", Timestamp: 1}}}}
		if _, _, err := s.Update(ctx, u); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
		p.stall()
		wantUnavailable(t, "Get from a stalled server", timeout, func(ctx context.Context) error {
			_, err := s.Get(ctx, "u1")
			return err
		})
		wantUnavailable(t, "Update to a stalled server", timeout, func(ctx context.Context) error {
			_, _, err := s.Update(ctx, u)
			return err
		})
		// The caller's shorter deadline wins.
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err := s.Get(cctx, "u1")
		if !errors.Is(err, consentstore.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Get with a 50ms deadline: %v, want ErrUnavailable and DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 50*time.Millisecond+250*time.Millisecond {
			t.Errorf("Get with a 50ms deadline took %v", d)
		}
		// A caller that gives up gets its context's error.
		cctx, cancel = context.WithCancel(ctx)
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, err := s.Get(cctx, "u1"); !errors.Is(err, context.Canceled) {
			t.Errorf("Get cancelled by the caller: %v, want context.Canceled", err)
		}
	})
	t.Run("Stopped", func(t *testing.T) {
		srv := redistest.Start(t)
		cfg := freshConfig(t)
		cfg.Addrs, cfg.Timeout = []string{srv.Addr}, timeout
		s := open(t, cfg)
		if _, err := s.Get(ctx, "u1"); !errors.Is(err, consent.ErrNotFound) {
			t.Fatalf("Get before stopping: %v, want ErrNotFound", err)
		}
		srv.Stop()
		wantUnavailable(t, "Get from a stopped server", timeout, func(ctx context.Context) error {
			_, err := s.Get(ctx, "u1")
			return err
		})
		// A refused connection fails at once, not after the timeout.
		start := time.Now()
		if _, err := s.Get(ctx, "u1"); !errors.Is(err, consentstore.ErrUnavailable) || time.Since(start) >= timeout {
			t.Errorf("Get from a stopped server: %v after %v, want ErrUnavailable well before the %v timeout", err, time.Since(start), timeout)
		}
		wantUnavailable(t, "Scan of a stopped server", timeout, func(ctx context.Context) error {
			return s.Scan(ctx, func(*consent.Record) error { return nil })
		})
	})
}

func TestClosed(t *testing.T) {
	s := open(t, freshConfig(t))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for name, err := range map[string]error{
		"Get":     func() error { _, err := s.Get(ctx, "u1"); return err }(),
		"Get('')": func() error { _, err := s.Get(ctx, ""); return err }(),
		"Delete":  func() error { _, err := s.Delete(ctx, "u1"); return err }(),
		"History": func() error { _, _, err := s.History(ctx, "u1"); return err }(),
		"Scan":    s.Scan(ctx, func(*consent.Record) error { return nil }),
	} {
		if !errors.Is(err, consentstore.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

// TestKeysShareOneSlot: every key the store writes carries the prefix as
// its hash tag (what makes the scripts valid on a Redis Cluster).
func TestKeysShareOneSlot(t *testing.T) {
	cfg := freshConfig(t)
	s := consentstore.New(open(t, cfg), consentstore.Options{})
	if err := s.Link(ctx, "u1", "a1", "a2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, consentstore.Update{Record: consent.Record{ID: "x{y}", Categories: []consent.Category{{Name: "A", Timestamp: 1}}}}); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: cfg.Addrs[0]})
	defer c.Close()
	// The shared server holds other tests' keys too: list those that
	// mention the prefix; every one must start with "{prefix}".
	keys, err := c.Keys(ctx, "*"+cfg.KeyPrefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 8 { // i:u1 i:a1 i:a2 i:x{y} r:u1 r:x{y} h:x{y} all
		t.Errorf("keys %q, want 8", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "{"+cfg.KeyPrefix+"}") {
			t.Errorf("key %q does not start with the hash tag {%s}", k, cfg.KeyPrefix)
		}
	}
}

// TestWaitReplicas: with wait_replicas a write returns once a replica has
// it, and fails when none confirms it in time; without, it does not wait.
func TestWaitReplicas(t *testing.T) {
	primary := redistest.Start(t)
	_, port, _ := net.SplitHostPort(primary.Addr)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := redistest.Do(ctx, primary.Addr, "INFO", "replication")
		if err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not come online: %s %v", info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cfg := redisstore.Config{Addrs: []string{primary.Addr}, KeyPrefix: "wait:", Timeout: 500 * time.Millisecond, WaitReplicas: 1}
	s := open(t, cfg)
	u := func(id string) *consentstore.Update {
		return &consentstore.Update{Source: "test", Record: consent.Record{ID: id,
			Categories: []consent.Category{{Name: "Advertising", Consented: true, Timestamp: 1}}}}
	}
	if _, _, err := s.Update(ctx, u("u1")); err != nil {
		t.Fatalf("an update with a replica online: %v", err)
	}
	if got, err := redistest.Do(ctx, replica.Addr, "EXISTS", "{wait:}i:u1"); err != nil || got != "1" {
		t.Errorf("the replica has %q (%v) for the update's key", got, err)
	}
	replica.Stop()
	start := time.Now()
	_, _, err := s.Update(ctx, u("u2"))
	if err == nil || !strings.Contains(err.Error(), "wait_replicas") || !errors.Is(err, consentstore.ErrUnavailable) {
		t.Errorf("an update with no replica: %v, want an unavailable error naming wait_replicas", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the update waited %s, past the 500ms timeout", d)
	}
	if _, err := s.Delete(ctx, "u1"); err == nil {
		t.Error("a delete with no replica succeeded")
	}
	cfg.WaitReplicas = 0
	if _, _, err := open(t, cfg).Update(ctx, u("u3")); err != nil {
		t.Errorf("an update that does not wait: %v", err)
	}
}
