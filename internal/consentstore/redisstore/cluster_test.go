package redisstore_test

import (
	"context"
	"fmt"
	"strings"
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

// TestReplicaReads: with ReadFromReplicas on a cluster of three primaries
// with a replica each, the store passes the suite (two stores on one
// prefix see each other's writes at once), its lookups are served by the
// replicas, a write returns only once every connected replica has it,
// New refuses a replica that would answer while its link is down, and
// with the replicas gone lookups go to the primaries.
func TestReplicaReads(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no cluster")
	}
	cl := redistest.StartClusterReplicas(t, 3, 1, "--replica-serve-stale-data", "no")
	var n int
	var mu sync.Mutex
	config := func() redisstore.Config {
		mu.Lock()
		defer mu.Unlock()
		n++
		return redisstore.Config{Addrs: cl.Addrs(), KeyPrefix: fmt.Sprintf("replicas%d:", n), Timeout: 5 * time.Second, ReadFromReplicas: true}
	}
	storetest.Run(t, storetest.Backends{
		Open: func(t *testing.T) (read, write consentstore.Backend) {
			s := open(t, config())
			return s, s
		},
		Pair: func(t *testing.T) (a, b consentstore.Backend) {
			cfg := config()
			return open(t, cfg), open(t, cfg)
		},
	})

	ctx := context.Background()
	roles := map[string]string{} // address: master or slave
	for _, a := range cl.Addrs() {
		info, err := redistest.Do(ctx, a, "INFO", "replication")
		if err != nil {
			t.Fatal(err)
		}
		roles[a] = "master"
		if strings.Contains(info, "role:slave") {
			roles[a] = "slave"
		}
	}
	roCalls := func(role string) int {
		total := 0
		for a, r := range roles {
			if r != role {
				continue
			}
			stats, err := redistest.Do(ctx, a, "INFO", "commandstats")
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(stats, "\n") {
				if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha_ro:calls="); ok {
					var c int
					fmt.Sscanf(rest, "%d", &c)
					total += c
				}
			}
		}
		return total
	}

	t.Run("ReadAfterWrite", func(t *testing.T) {
		cfg := config()
		writer, reader := open(t, cfg), open(t, cfg)
		before := roCalls("slave")
		for i := range 300 {
			id := fmt.Sprint("raw", i)
			u := &consentstore.Update{RecordedAt: int64(i + 1), Source: "t", Record: consent.Record{ID: id,
				Categories: []consent.Category{{Name: "C0004", Consented: i%2 == 0, Timestamp: int64(i + 1)}}}}
			if _, _, err := writer.Update(ctx, u); err != nil {
				t.Fatal(err)
			}
			r, err := reader.Get(ctx, id)
			if err != nil || len(r.Categories) != 1 || r.Categories[0].Consented != (i%2 == 0) {
				t.Fatalf("Get(%s) right after its update: %+v, %v", id, r, err)
			}
		}
		if got := roCalls("slave") - before; got < 300 {
			t.Errorf("the replicas served %d of 300 lookups", got)
		}
		if got := roCalls("master"); got != 0 {
			t.Errorf("the primaries served %d read-only lookups", got)
		}
	})

	// A replica that lags (its replication stream paused) holds the
	// write up, rather than answering the next lookup without it.
	t.Run("LaggingReplica", func(t *testing.T) {
		cfg := config()
		writer, reader := open(t, cfg), open(t, cfg)
		for i := range 5 {
			id := fmt.Sprint("lag", i)
			u := &consentstore.Update{RecordedAt: int64(i + 1), Source: "t", Record: consent.Record{ID: id,
				Categories: []consent.Category{{Name: "C0004", Consented: true, Timestamp: int64(i + 1)}}}}
			for a, r := range roles {
				if r == "slave" {
					if _, err := redistest.Do(ctx, a, "CLIENT", "PAUSE", "300", "WRITE"); err != nil {
						t.Fatal(err)
					}
				}
			}
			if _, _, err := writer.Update(ctx, u); err != nil {
				t.Fatal(err)
			}
			if r, err := reader.Get(ctx, id); err != nil || len(r.Categories) != 1 {
				t.Fatalf("Get(%s) right after its update, the replicas lagging: %+v, %v", id, r, err)
			}
		}
	})

	t.Run("StaleReplicaRefused", func(t *testing.T) {
		var replica string
		for a, r := range roles {
			if r == "slave" {
				replica = a
				break
			}
		}
		if _, err := redistest.Do(ctx, replica, "CONFIG", "SET", "replica-serve-stale-data", "yes"); err != nil {
			t.Fatal(err)
		}
		defer redistest.Do(ctx, replica, "CONFIG", "SET", "replica-serve-stale-data", "no")
		_, err := redisstore.New(ctx, config())
		if err == nil || !strings.Contains(err.Error(), replica) || !strings.Contains(err.Error(), "replica-serve-stale-data") {
			t.Fatalf("New with a replica serving stale data: %v", err)
		}
		cfg := config()
		cfg.Addrs, cfg.Cluster = cfg.Addrs[:1], false
		if _, err := redisstore.New(ctx, cfg); err == nil || !strings.Contains(err.Error(), "not a Redis Cluster") {
			t.Fatalf("New with read_from_replicas on one server: %v", err)
		}
	})

	t.Run("ReplicasGone", func(t *testing.T) {
		cfg := config()
		s := consentstore.New(open(t, cfg), consentstore.Options{})
		ids := make([]string, 20)
		for i := range ids {
			ids[i] = fmt.Sprint("gone", i)
			if err := s.Link(ctx, ids[i], "a"+ids[i]); err != nil {
				t.Fatal(err)
			}
		}
		for _, srv := range cl.Servers {
			if roles[srv.Addr] == "slave" {
				srv.Stop()
			}
		}
		for _, id := range ids {
			if r, err := s.Get(ctx, "a"+id); err != nil || r.ID != id {
				t.Fatalf("Get(a%s) with the replicas gone: %v, %v", id, r, err)
			}
		}
	})
}
