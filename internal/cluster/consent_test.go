package cluster

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// natsServer starts a NATS server on a random port for the test.
func natsServer(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

type forgotten struct {
	mu  sync.Mutex
	ids [][]string
}

func (f *forgotten) forget(ids ...string) {
	f.mu.Lock()
	f.ids = append(f.ids, ids)
	f.mu.Unlock()
}

func (f *forgotten) get() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ids)
}

func TestConsentPeers(t *testing.T) {
	url := natsServer(t)
	var hosts [3]*ConsentPeers
	var got [3]forgotten
	for i := range hosts {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if hosts[i], err = NewConsentPeers(nc, ""); err != nil {
			t.Fatal(err)
		}
		hosts[i].SetForget(got[i].forget)
	}
	ctx := context.Background()
	if err := hosts[0].Forget(ctx, []string{"u1", "anon-1"}); err != nil {
		t.Fatal(err)
	}
	if err := hosts[1].Forget(ctx, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && (len(got[1].get()) < 1 || len(got[2].get()) < 2 || len(got[0].get()) < 1) {
		time.Sleep(5 * time.Millisecond)
	}
	if g := got[0].get(); len(g) != 1 || g[0] != nil {
		t.Errorf("host 0 forgot %q, want everything once (host 1's write), not its own ids", g)
	}
	if g := got[1].get(); len(g) != 1 || !slices.Equal(g[0], []string{"u1", "anon-1"}) {
		t.Errorf("host 1 forgot %q, want u1 and anon-1", g)
	}
	if g := got[2].get(); len(g) != 2 {
		t.Errorf("host 2 forgot %q, want both writes", g)
	}
	for _, h := range hosts {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestDedupePeers(t *testing.T) {
	url := natsServer(t)
	type got struct {
		mu  sync.Mutex
		ids map[string][]string
	}
	var hosts [2]*DedupePeers
	var seen [2]got
	for i := range hosts {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if hosts[i], err = NewDedupePeers(nc, ""); err != nil {
			t.Fatal(err)
		}
		g := &seen[i]
		g.ids = make(map[string][]string)
		hosts[i].SetRemember(func(source string, ids []string) {
			g.mu.Lock()
			g.ids[source] = append(g.ids[source], ids...)
			g.mu.Unlock()
		})
	}
	if err := hosts[0].nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range 1500 {
		hosts[0].Accepted("web", []string{"m" + strconv.Itoa(i)})
	}
	hosts[0].Accepted("app", []string{"x"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		seen[1].mu.Lock()
		n, app := len(seen[1].ids["web"]), len(seen[1].ids["app"])
		seen[1].mu.Unlock()
		if n == 1500 && app == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host 1 remembered %d web ids and %d app ids, want 1500 and 1", n, app)
		}
		time.Sleep(5 * time.Millisecond)
	}
	seen[0].mu.Lock()
	if len(seen[0].ids) != 0 {
		t.Errorf("host 0 remembered its own ids: %v", seen[0].ids)
	}
	seen[0].mu.Unlock()
	for _, h := range hosts {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	}
}
