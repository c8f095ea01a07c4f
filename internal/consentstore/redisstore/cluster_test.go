package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/consentstore/redisstore"
	"github.com/insertfn/insertfn/internal/consentstore/storetest"
	"github.com/insertfn/insertfn/internal/testkit/redistest"
	"github.com/insertfn/insertfn/sdk/consent"
)

// TestCluster runs the suite against a real 3-node Redis Cluster: every
// script touches keys of one slot, whichever node owns it, and stores
// with different prefixes spread over the nodes.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no cluster")
	}
	cl := redistest.StartCluster(t, 3)
	var n int
	var mu sync.Mutex
	prefixes := map[string]bool{}
	config := func(t *testing.T) redisstore.Config {
		mu.Lock()
		defer mu.Unlock()
		n++
		p := fmt.Sprintf("cluster%d:", n)
		prefixes[p] = true
		return redisstore.Config{Addrs: cl.Addrs(), KeyPrefix: p, Timeout: 5 * time.Second}
	}
	storetest.Run(t, storetest.Backends{
		Open: func(t *testing.T) (read, write consentstore.Backend) {
			s := open(t, config(t))
			return s, s
		},
		Pair: func(t *testing.T) (a, b consentstore.Backend) {
			cfg := config(t)
			return open(t, cfg), open(t, cfg)
		},
	})

	t.Run("OneSeedNode", func(t *testing.T) {
		cfg := config(t)
		cfg.Addrs, cfg.Cluster = cl.Addrs()[2:], true
		s := consentstore.New(open(t, cfg), consentstore.Options{})
		for i := range 20 {
			id := fmt.Sprint("u", i)
			if err := s.Link(context.Background(), id, "a"+id); err != nil {
				t.Fatal(err)
			}
			if r, err := s.Get(context.Background(), "a"+id); err != nil || r.ID != id {
				t.Fatalf("Get(a%s) = %v, %v", id, r, err)
			}
		}
	})

	t.Run("SameAsMemory", func(t *testing.T) { clusterSameAsMemory(t, config(t)) })

	// The stores of the suite used several prefixes; their keys live on
	// more than one node.
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	defer c.Close()
	nodes := map[string]bool{}
	err := c.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, "*").Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if len(keys) > 0 {
			nodes[m.Options().Addr] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) < 2 {
		t.Errorf("keys of %d prefixes on %d node(s), want them spread over the cluster", len(prefixes), len(nodes))
	}
	t.Logf("%d prefixes on %d nodes", len(prefixes), len(nodes))
}

// clusterSameAsMemory: linking and deleting on a cluster behave like
// Memory, with the records on whichever node owns the prefix.
func clusterSameAsMemory(t *testing.T, cfg redisstore.Config) {
	s := open(t, cfg)
	mem := consentstore.NewMemory()
	ctx := context.Background()
	for i := range 200 {
		u := &consentstore.Update{RecordedAt: int64(i + 1), Source: "t", Record: consent.Record{
			ID:         fmt.Sprint("u", i%7),
			Aliases:    []string{fmt.Sprint("a", i%5)},
			Categories: []consent.Category{{Name: fmt.Sprint("C", i%3), Consented: i%2 == 0, Timestamp: int64(i % 11)}}}}
		u2 := *u
		u2.Record = *u.Record.Clone()
		mr, _, err1 := mem.Update(ctx, u)
		rr, _, err2 := s.Update(ctx, &u2)
		if err1 != nil || err2 != nil || wire(mr) != wire(rr) {
			t.Fatalf("update %d: memory %s %v, cluster %s %v", i, wire(mr), err1, wire(rr), err2)
		}
		if i%40 == 39 {
			mr, _ := mem.Delete(ctx, "a1")
			rr, _ := s.Delete(ctx, "a1")
			if wire(mr) != wire(rr) {
				t.Fatalf("delete: memory %s, cluster %s", wire(mr), wire(rr))
			}
		}
	}
}
