// Package redistest starts real redis-server processes for tests: a single
// server on a free loopback port, or a small Redis Cluster.
//
// The servers keep nothing on disk (--save "" --appendonly no) and run in a
// temporary directory. When redis-server is not installed a test fails
// with a message saying how to install it; set INSERTFN_SKIP_REDIS=1 to
// skip the Redis tests explicitly instead.
//
// A test binary usually shares one server between its tests, started on
// first use and stopped by TestMain, and gives each test its own key
// prefix:
//
//	var redisServer redistest.Shared
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		redisServer.Close()
//		os.Exit(code)
//	}
//
//	func TestX(t *testing.T) {
//		addr := redisServer.Server(t).Addr
//		...
//	}
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SkipEnv is the environment variable that, set to 1, skips the tests that
// need redis-server instead of failing them when it is missing.
const SkipEnv = "INSERTFN_SKIP_REDIS"

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 15 * time.Second

// Server is one redis-server process listening on a loopback port.
type Server struct {
	// Addr is the server's host:port on 127.0.0.1.
	Addr string
	// Dir is the server's working directory, with its log in redis.log.
	Dir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// Require checks that redis-server can be run: it skips t when
// INSERTFN_SKIP_REDIS=1 and fails it, saying how to install Redis, when
// redis-server is not in PATH. It returns the server's path.
func Require(t testing.TB) string {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%s=1: skipping a test that needs redis-server", SkipEnv)
	}
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed (%v): install it with `apt-get install -y redis-server`, "+
			"or set %s=1 to skip the Redis tests", err, SkipEnv)
	}
	return path
}

// Start starts a private redis-server for t, with extra command-line
// arguments, and stops it when t ends.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	path := Require(t)
	s, err := start(path, t.TempDir(), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the server (SIGTERM, then SIGKILL after a few seconds) and
// waits for it to exit. Stop may be called more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Log returns the end of the server's log, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// start runs redis-server in dir on a free port, retrying with another
// port when the chosen one was taken meanwhile.
func start(path, dir string, args ...string) (*Server, error) {
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s, err := startOn(path, dir, port, args...)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startOn(path, dir string, port int, args ...string) (*Server, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	log, err := os.OpenFile(filepath.Join(dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	defer log.Close()
	argv := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--protected-mode", "no"}, args...)
	cmd := exec.Command(path, argv...)
	cmd.Dir = dir
	cmd.Stdout = log
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redistest: start %s: %w", path, err)
	}
	s := &Server{Addr: addr, Dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		reply, err := Do(ctx, addr, "PING")
		if err == nil && reply == "PONG" {
			return s, nil
		}
		select {
		case <-s.done:
			s.cmd = nil
			return nil, fmt.Errorf("redistest: redis-server on %s exited at start; its log:\n%s", addr, s.Log())
		case <-ctx.Done():
			s.Stop()
			return nil, fmt.Errorf("redistest: redis-server on %s did not answer PING within %v (last: %q, %v); its log:\n%s",
				addr, startTimeout, reply, err, s.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// freePort returns a loopback port that nothing listens on, and whose
// cluster bus port (port+10000) is free too.
func freePort() (int, error) {
	for range 100 {
		port := 20000 + rand.IntN(25000)
		ok := true
		for _, p := range []int{port, port + 10000} {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return port, nil
		}
	}
	return 0, errors.New("redistest: no free loopback port found")
}

// Do sends one command to addr in the Redis protocol and returns its reply
// as text: a simple string, an integer or a bulk string as it is, an
// array as its elements' texts one per line (nested arrays flattened). A
// Redis error reply is returned as an error.
func Do(ctx context.Context, addr string, args ...string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write(b.Bytes()); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

// readReply reads one reply (see Do).
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("redistest: empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", nil
		}
		elems := make([]string, 0, n)
		for range n {
			e, err := readReply(r)
			if err != nil {
				return "", err
			}
			if e != "" {
				elems = append(elems, e)
			}
		}
		return strings.Join(elems, "\n"), nil
	}
	return "", fmt.Errorf("redistest: unsupported reply %q", line)
}

// Shared is a redis-server shared by the tests of one binary: started on
// first use, stopped by Close (call it from TestMain after m.Run). The zero
// value is ready to use.
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
	dir  string
}

// Server returns the shared server, starting it on first use. It skips or
// fails t as [Require] does, and fails t when the server cannot start.
func (s *Shared) Server(t testing.TB) *Server {
	t.Helper()
	path := Require(t)
	s.once.Do(func() {
		s.dir, s.err = os.MkdirTemp("", "redistest-")
		if s.err != nil {
			return
		}
		s.srv, s.err = start(path, s.dir)
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.srv
}

// Close stops the shared server, if it was started, and removes its
// directory.
func (s *Shared) Close() {
	if s.srv != nil {
		s.srv.Stop()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// Cluster is a Redis Cluster of servers on loopback ports: primaries,
// one hash-slot range each, and their replicas.
type Cluster struct {
	Servers []*Server
}

// Addrs returns the addresses of the cluster's servers.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		out[i] = s.Addr
	}
	return out
}

// nodeID matches a cluster node's id in a reply.
var nodeID = regexp.MustCompile(`(?m)^[0-9a-f]{40}$`)

// StartCluster starts n servers with cluster mode enabled, joins them into
// a cluster of n primaries with `redis-cli --cluster create` and waits
// until the cluster is ready. It skips t when redis-cli is missing (the
// servers alone cannot form a cluster) and stops the servers when t ends.
func StartCluster(t testing.TB, n int) *Cluster { return StartClusterReplicas(t, n, 0) }

// StartClusterReplicas is StartCluster with replicas per primary (so
// primaries × (1 + replicas) servers), each server started with args
// more; it waits until every replica is in sync with its primary.
func StartClusterReplicas(t testing.TB, primaries, replicas int, args ...string) *Cluster {
	t.Helper()
	path := Require(t)
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skipf("redis-cli is not installed (%v): cannot create a Redis Cluster; it comes with `apt-get install -y redis-server`", err)
	}
	c := &Cluster{}
	for i := range primaries * (1 + replicas) {
		dir := filepath.Join(t.TempDir(), fmt.Sprint("node", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		s, err := start(path, dir, append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		c.Servers = append(c.Servers, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	create := append([]string{"--cluster", "create"}, c.Addrs()...)
	create = append(create, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, create...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	ready := func(s *Server) (string, bool) {
		info, err := Do(ctx, s.Addr, "CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return fmt.Sprintf("CLUSTER INFO %q, %v", info, err), false
		}
		repl, err := Do(ctx, s.Addr, "INFO", "replication")
		if err != nil || strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return fmt.Sprintf("INFO replication %q, %v", repl, err), false
		}
		// Every node tells clients of every replica: CLUSTER SLOTS lists a
		// replica once the others learned its replication offset.
		slots, err := Do(ctx, s.Addr, "CLUSTER", "SLOTS")
		if err != nil || len(nodeID.FindAllString(slots, -1)) != primaries*(1+replicas) {
			return fmt.Sprintf("CLUSTER SLOTS %q, %v", slots, err), false
		}
		return "", true
	}
	for _, s := range c.Servers {
		for {
			why, ok := ready(s)
			if ok {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("redistest: cluster node %s not ready: %s", s.Addr, why)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return c
}
