// Command stages measures where the server's CPU goes per delivered
// event, apart from the load generator and the sink.
//
// It runs `insertfn serve` in its own process on BenchmarkServeBatch's
// setup (consent-match on every event, the embedded consent store holding
// the workload's people, the durable queue at its default sync policy,
// one webhook destination that this program serves), sends it /v1/batch
// requests of 100 events (workload.Batch) from concurrent clients, reads
// the server's CPU time from /proc, takes its CPU profile through the
// admin API (/debug/pprof/profile) and sorts the samples into the stages
// of an event's path. Then it does the same against the ceiling: a
// fasthttp server in its own process (this program, run with -ceiling)
// that only reads the same batches, each event's type and messageId found
// with gjson, and answers 200: what the HTTP layer and JSON scanning cost
// with nothing else.
//
// Usage (Linux, for /proc):
//
//	make build examples
//	go run ./bench/stages [-insertfn bin/insertfn] [-wasm bin/examples/consent-match.wasm] [-seconds 10] [-clients 32] [-sync interval|always|never] [-profile FILE]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/insertfn/insertfn/bench/internal/workload"
)

const writeKey = "bench-key"

func main() {
	insertfn := flag.String("insertfn", "bin/insertfn", "the insertfn binary (make build)")
	wasm := flag.String("wasm", "bin/examples/consent-match.wasm", "consent-match's wasm (make examples)")
	seconds := flag.Int("seconds", 10, "seconds measured (after 3 of warm-up)")
	clients := flag.Int("clients", 32, "concurrent clients")
	syncPolicy := flag.String("sync", "", "the queue's sync policy (empty: the default)")
	profileOut := flag.String("profile", "", "also write the server's CPU profile to this file (for go tool pprof)")
	ceiling := flag.Bool("ceiling", false, "serve as the ceiling server (used by this program itself)")
	flag.Parse()
	if *ceiling {
		serveCeiling()
		return
	}
	if err := run(*insertfn, *wasm, time.Duration(*seconds)*time.Second, *clients, *syncPolicy, *profileOut); err != nil {
		fmt.Fprintln(os.Stderr, "stages:", err)
		os.Exit(1)
	}
}

func run(insertfn, wasm string, window time.Duration, clients int, syncPolicy, profileOut string) error {
	for _, p := range []string{insertfn, wasm} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (run `make build examples` first)", err)
		}
	}
	sink, err := startSink()
	if err != nil {
		return err
	}
	defer sink.srv.Shutdown()
	dir, err := os.MkdirTemp("", "stages")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	srv, err := startInsertfn(insertfn, wasm, dir, sink.addr, syncPolicy)
	if err != nil {
		return err
	}
	defer srv.stop()
	if err := srv.importConsent(); err != nil {
		return err
	}
	fmt.Printf("insertfn serve (pid %d), consent-match, queue sync %q, %d clients, 100 events of ~1 KB per request, %v measured\n\n",
		srv.cmd.Process.Pid, or(syncPolicy, "default"), clients, window)
	m, err := measure(srv.addr, srv.cmd.Process.Pid, clients, window, sink, func(ctx context.Context) ([]byte, error) {
		return srv.profile(ctx, window)
	})
	if err != nil {
		return err
	}
	if profileOut != "" {
		if err := os.WriteFile(profileOut, m.profile, 0o644); err != nil {
			return err
		}
	}
	stages, err := classify(m.profile)
	if err != nil {
		return err
	}
	m.print("insertfn")
	printStages(stages, m)

	ceil, err := startCeiling()
	if err != nil {
		return err
	}
	defer ceil.stop()
	c, err := measure(ceil.addr, ceil.cmd.Process.Pid, clients, window, nil, nil)
	if err != nil {
		return err
	}
	c.print("ceiling (fasthttp + gjson only)")
	fmt.Printf("\ninsertfn / ceiling: %.1f%% of the events/s, %.1fx the CPU per event\n",
		100*m.deliveredPerSec()/c.acceptedPerSec(), float64(m.cpuPerEvent(m.delivered))/float64(c.cpuPerEvent(c.accepted)))
	return nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// sink is the webhook destination: it counts the events it receives (each
// carries one messageId).
type sink struct {
	addr string
	n    atomic.Int64
	srv  *fasthttp.Server
}

func startSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{addr: ln.Addr().String()}
	s.srv = &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		s.n.Add(int64(bytes.Count(ctx.PostBody(), []byte(`"messageId":`))))
	}}
	go s.srv.Serve(ln)
	return s, nil
}

// process is a server this program started.
type process struct {
	cmd   *exec.Cmd
	addr  string
	admin string
	token string
	done  chan struct{}
}

// drain reads the rest of the process's output until it exits, then
// closes p.done.
func (p *process) drain(lines *bufio.Scanner) {
	for lines.Scan() {
	}
	_ = p.cmd.Wait()
	close(p.done)
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// startInsertfn starts `insertfn serve` on a configuration in dir and
// waits for its banner.
func startInsertfn(bin, wasm, dir, sinkAddr, syncPolicy string) (*process, error) {
	wasmAbs, err := filepath.Abs(wasm)
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`data: %s
queue: {sync: %q}
functions:
  - {name: consent-match, wasm: %s}
sources:
  - {name: web, write_keys: [%s], functions: [consent-match]}
destinations:
  - {name: warehouse, type: webhook, url: "http://%s/", categories: [C0001]}
`, filepath.Join(dir, "data"), syncPolicy, wasmAbs, writeKey, sinkAddr)
	path := filepath.Join(dir, "insertfn.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--config", path, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		line := strings.TrimSpace(lines.Text())
		if a, ok := strings.CutPrefix(line, "insertfn serving on http://"); ok {
			p.addr = strings.Fields(a)[0]
		}
		if a, ok := strings.CutPrefix(line, "admin API on http://"); ok {
			p.admin = strings.Fields(a)[0]
			break
		}
	}
	go p.drain(lines)
	if p.admin == "" {
		<-p.done
		return nil, fmt.Errorf("insertfn serve did not start:\n%s", stderr.String())
	}
	token, err := os.ReadFile(filepath.Join(dir, "data", "admin-token"))
	if err != nil {
		p.stop()
		return nil, err
	}
	p.token = strings.TrimSpace(string(token))
	return p, nil
}

// adminCall makes one admin API call.
func (p *process) adminCall(ctx context.Context, method, path string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+p.admin+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %.300s", method, path, resp.Status, b)
	}
	return b, nil
}

// importConsent stores the workload's people through the admin API.
func (p *process) importConsent() error {
	var body bytes.Buffer
	for u := range workload.Users {
		r := workload.StoredRecord(u)
		prefs := map[string]bool{}
		for _, c := range r.Categories {
			prefs[c.Name] = c.Consented
		}
		line, err := json.Marshal(map[string]any{"id": r.ID, "categoryPreferences": prefs})
		if err != nil {
			return err
		}
		body.Write(append(line, '\n'))
	}
	_, err := p.adminCall(context.Background(), "POST", "/admin/consent/import", &body)
	return err
}

// profile returns the server's CPU profile over d.
func (p *process) profile(ctx context.Context, d time.Duration) ([]byte, error) {
	return p.adminCall(ctx, "GET", fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())), nil)
}

// startCeiling starts this program as the ceiling server.
func startCeiling() (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-ceiling")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	lines := bufio.NewScanner(stdout)
	if lines.Scan() {
		p.addr = strings.TrimSpace(lines.Text())
	}
	go p.drain(lines)
	if p.addr == "" {
		<-p.done
		return nil, errors.New("the ceiling server did not start")
	}
	return p, nil
}

// serveCeiling is the ceiling server: /v1/batch read with gjson, each
// event's type and messageId found, 200.
func serveCeiling() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	var seen atomic.Int64
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if len(ctx.Request.Header.Peek("Authorization")) == 0 {
			ctx.SetStatusCode(fasthttp.StatusUnauthorized)
			return
		}
		n := 0
		gjson.GetBytes(ctx.PostBody(), "batch").ForEach(func(_, ev gjson.Result) bool {
			if ev.Get("type").Str != "" && ev.Get("messageId").Str != "" {
				n++
			}
			return true
		})
		seen.Add(int64(n))
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"success":true}`)
	}}
	_ = srv.Serve(ln)
}

// measurement is what one run measured.
type measurement struct {
	window              time.Duration
	accepted, delivered int64         // events in the window
	cpu                 time.Duration // the server's CPU time in the window
	profile             []byte
}

func (m measurement) acceptedPerSec() float64  { return float64(m.accepted) / m.window.Seconds() }
func (m measurement) deliveredPerSec() float64 { return float64(m.delivered) / m.window.Seconds() }
func (m measurement) cpuPerEvent(events int64) time.Duration {
	if events == 0 {
		return 0
	}
	return m.cpu / time.Duration(events)
}

func (m measurement) print(name string) {
	fmt.Printf("%s:\n  accepted %.0f events/s", name, m.acceptedPerSec())
	if m.delivered > 0 {
		fmt.Printf(", delivered %.0f events/s", m.deliveredPerSec())
	}
	events := m.delivered
	if events == 0 {
		events = m.accepted
	}
	fmt.Printf("\n  server CPU: %.2f cores, %.2f µs per %s event\n", m.cpu.Seconds()/m.window.Seconds(),
		float64(m.cpuPerEvent(events).Nanoseconds())/1000, map[bool]string{true: "delivered", false: "accepted"}[m.delivered > 0])
}

// measure loads addr for 3 s of warm-up and window measured, reading the
// CPU time of pid and the sink's count (nil: the server delivers
// nothing) at the window's ends; profile, when set, runs over the window.
func measure(addr string, pid, clients int, window time.Duration, s *sink, profile func(context.Context) ([]byte, error)) (measurement, error) {
	body, slots := workload.Batch()
	var accepted atomic.Int64
	var failed atomic.Int64
	var next atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &fasthttp.Client{MaxConnsPerHost: clients * 2}
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			b := bytes.Clone(body)
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for ctx.Err() == nil {
				num := fmt.Appendf(nil, "%016d", next.Add(1))
				for _, at := range slots {
					copy(b[at:], num)
				}
				req.Reset()
				req.SetRequestURI("http://" + addr + "/v1/batch")
				req.Header.SetMethod("POST")
				req.Header.SetContentType("application/json")
				req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(writeKey+":")))
				req.SetBody(b)
				if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					failed.Add(1)
					continue
				}
				accepted.Add(100)
			}
		})
	}
	time.Sleep(3 * time.Second)
	m := measurement{window: window}
	var profErr error
	var profWG sync.WaitGroup
	if profile != nil {
		profWG.Go(func() { m.profile, profErr = profile(context.Background()) })
	}
	cpu0, err := cpuTime(pid)
	if err != nil {
		return m, err
	}
	acc0, del0 := accepted.Load(), int64(0)
	if s != nil {
		del0 = s.n.Load()
	}
	time.Sleep(window)
	cpu1, err := cpuTime(pid)
	if err != nil {
		return m, err
	}
	m.accepted = accepted.Load() - acc0
	if s != nil {
		m.delivered = s.n.Load() - del0
	}
	m.cpu = cpu1 - cpu0
	cancel()
	wg.Wait()
	profWG.Wait()
	if profErr != nil {
		return m, fmt.Errorf("the CPU profile: %w", profErr)
	}
	if failed.Load() > 0 {
		fmt.Printf("(%d requests refused or failed)\n", failed.Load())
	}
	return m, nil
}

// cpuTime returns the user and system CPU time pid used so far
// (/proc/PID/stat, fields 14 and 15, in clock ticks of 1/100 s).
func cpuTime(pid int) (time.Duration, error) {
	if runtime.GOOS != "linux" {
		return 0, fmt.Errorf("the CPU time of a process is read from /proc, on Linux only (this is %s)", runtime.GOOS)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	var ticks int64
	for _, s := range f[11:13] { // utime, stime: fields 14 and 15
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}
