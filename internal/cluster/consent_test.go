package cluster

import (
	"context"
	"slices"
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
