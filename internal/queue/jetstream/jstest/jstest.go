// Package jstest runs NATS servers with JetStream inside a test process:
// one server, or a cluster of several joined by routes, for the tests of
// the JetStream queue (and of whatever runs on it). It links the NATS
// server into the test binary only.
package jstest

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Account is the account the servers put clients in when none are
// configured.
const Account = server.DEFAULT_GLOBAL_ACCOUNT

// Cluster is NATS servers with JetStream running in this process: one
// alone, or several in a cluster whose meta group has a leader.
type Cluster struct {
	mu      sync.Mutex
	servers []*server.Server // nil once stopped
	opts    []*server.Options
}

// Start starts n servers (n >= 1), each with its own store directory
// under t.TempDir(), listening for clients on random ports of
// 127.0.0.1; with n > 1 they form a cluster (routes between all of them,
// no JetStream domain) and Start returns once its meta group has a
// leader. They stop at the end of the test.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartWith(t, n, nil)
}

// StartWith is Start with the servers' options changed by configure
// (when not nil) before they start.
func StartWith(t testing.TB, n int, configure func(i int, o *server.Options)) *Cluster {
	t.Helper()
	c, err := New(t.TempDir(), n, configure)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.StopAll)
	return c
}

// New is StartWith for a cluster that outlives a test (one that several
// tests share, say): its servers store under dir, and the caller stops
// them with StopAll.
func New(dir string, n int, configure func(i int, o *server.Options)) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("jstest: %d servers: want at least one", n)
	}
	c := &Cluster{servers: make([]*server.Server, n), opts: make([]*server.Options, n)}
	var ports []int
	var routes string
	if n > 1 {
		var err error
		if ports, err = freePorts(n); err != nil {
			return nil, err
		}
		var urls []string
		for _, p := range ports {
			urls = append(urls, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
		}
		routes = strings.Join(urls, ",")
	}
	for i := range n {
		o := &server.Options{
			ServerName:         fmt.Sprintf("n%d", i+1),
			Host:               "127.0.0.1",
			Port:               -1,
			JetStream:          true,
			StoreDir:           filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			JetStreamMaxMemory: 256 << 20,
			JetStreamMaxStore:  4 << 30,
			NoLog:              true,
			NoSigs:             true,
		}
		if n > 1 {
			o.Cluster = server.ClusterOpts{Name: "jstest", Host: "127.0.0.1", Port: ports[i]}
			o.Routes = server.RoutesFromStr(routes)
		}
		if configure != nil {
			configure(i, o)
		}
		c.opts[i] = o
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = c.start(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.StopAll()
		return nil, err
	}
	if n > 1 {
		if err := c.WaitMetaLeader(30 * time.Second); err != nil {
			c.StopAll()
			return nil, err
		}
	}
	return c, nil
}

// start starts server i with its options.
func (c *Cluster) start(i int) error {
	s, err := server.NewServer(c.opts[i])
	if err != nil {
		return fmt.Errorf("jstest: server %d: %w", i+1, err)
	}
	s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("jstest: server %d not ready for connections after 20s", i+1)
	}
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	return nil
}

// freePorts returns n ports free on 127.0.0.1 a moment ago (the cluster's
// route ports, which every server must know before it starts).
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// N returns the number of servers, stopped ones included.
func (c *Cluster) N() int { return len(c.opts) }

// Server returns server i, nil when stopped.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// URL returns the client URL of server i ("" when stopped).
func (c *Cluster) URL(i int) string {
	if s := c.Server(i); s != nil {
		return s.ClientURL()
	}
	return ""
}

// URLs returns the client URLs of the servers running, server 0's first.
func (c *Cluster) URLs() []string {
	var out []string
	for i := range c.opts {
		if u := c.URL(i); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// URLsFrom returns the client URLs of the servers running, server i's
// first (a client connects to the first it reaches).
func (c *Cluster) URLsFrom(i int) []string {
	var out []string
	for k := range c.opts {
		if u := c.URL((i + k) % len(c.opts)); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// Stop shuts server i down and waits until it is (its store stays: see
// Restart).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts server i again on its store (on a new client port).
func (c *Cluster) Restart(i int) error {
	if c.Server(i) != nil {
		return fmt.Errorf("jstest: server %d is running", i+1)
	}
	return c.start(i)
}

// StopAll stops every server.
func (c *Cluster) StopAll() {
	var wg sync.WaitGroup
	for i := range c.opts {
		wg.Go(func() { c.Stop(i) })
	}
	wg.Wait()
}

// WaitMetaLeader waits up to d until a running server leads the
// JetStream meta group and every running server is current with it.
func (c *Cluster) WaitMetaLeader(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		leader, current := false, true
		for i := range c.opts {
			s := c.Server(i)
			if s == nil {
				continue
			}
			leader = leader || s.JetStreamIsLeader()
			current = current && s.JetStreamIsCurrent()
		}
		if leader && current {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("jstest: no JetStream meta leader after %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StreamLeader returns the index of the server that leads stream (of the
// global account), waiting up to d for one; -1 for a lone server's.
func (c *Cluster) StreamLeader(stream string, d time.Duration) (int, error) {
	if len(c.opts) == 1 {
		return -1, nil
	}
	deadline := time.Now().Add(d)
	for {
		for i := range c.opts {
			if s := c.Server(i); s != nil && s.JetStreamIsStreamLeader(Account, stream) {
				return i, nil
			}
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("jstest: stream %s has no leader after %v", stream, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
