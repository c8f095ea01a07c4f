package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/insertfn/insertfn/bench/internal/workload"
	"github.com/insertfn/insertfn/internal/app"
	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/internal/delivery"
	"github.com/insertfn/insertfn/internal/ingest"
	"github.com/insertfn/insertfn/internal/pipeline"
	"github.com/insertfn/insertfn/internal/queue/jetstream/jstest"
	"github.com/insertfn/insertfn/internal/testkit/redistest"
)

const benchWriteKey = "bench-key"

// countingSink is a webhook destination on loopback (fasthttp) that counts
// the events it receives.
type countingSink struct {
	addr string
	n    atomic.Int64
	srv  *fasthttp.Server
}

func newCountingSink(b *testing.B) *countingSink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &countingSink{addr: ln.Addr().String()}
	s.srv = &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		// Every event carries one messageId: counting them is cheaper than
		// parsing, and the sink shares the CPUs with the server.
		s.n.Add(int64(bytes.Count(ctx.PostBody(), []byte(`"messageId":`))))
	}}
	go s.srv.Serve(ln)
	b.Cleanup(func() { s.srv.Shutdown() })
	return s
}

// startServer starts a whole insertfn server (embedded consent store
// holding the benchmark's users, consent-match as the source function, one
// webhook destination) and returns its address. policy is the queue's
// sync policy ("": benchSync's), queueKeys more keys of queue (YAML flow
// mapping entries, each after a comma), extra more top-level YAML.
func startServer(b *testing.B, sink *countingSink, policy, queueKeys, extra string) (*app.Server, string) {
	if policy == "" {
		policy = benchSync()
	}
	wasm := guest(b, "../examples/consent-match")
	dir := b.TempDir()
	wasmPath := filepath.Join(dir, "consent-match.wasm")
	if err := os.WriteFile(wasmPath, wasm, 0o600); err != nil {
		b.Fatal(err)
	}
	c, err := config.Parse(fmt.Appendf(nil, "data: %s\nqueue: {sync: \"%s\", interval: 100ms%s}\n%s", dir, policy, queueKeys, extra))
	if err != nil {
		b.Fatal(err)
	}
	c.Functions = []config.Function{{Name: "consent-match", Wasm: wasmPath}}
	c.Sources = []config.Source{{Source: ingest.Source{Name: "web", WriteKeys: []string{benchWriteKey}}, Functions: []string{"consent-match"}}}
	c.Destinations = []config.Destination{{Destination: pipeline.Destination{Name: "warehouse", Categories: []string{"C0001"}},
		Config: delivery.Config{Type: "webhook", WebhookConfig: delivery.WebhookConfig{URL: "http://" + sink.addr + "/"}}}}
	if err := c.Validate(); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	h, err := app.Start(context.Background(), c, app.Options{Listener: ln, AdminListener: adminLn, Logger: slog.New(slog.NewTextHandler(benchLog(), nil)), SummaryEvery: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Shutdown(context.Background()) })
	for _, u := range workload.Records(users) {
		if _, err := h.Store().Update(context.Background(), u); err != nil {
			b.Fatal(err)
		}
	}
	return h, ln.Addr().String()
}

func postReq(addr, path string, body []byte) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI("http://" + addr + path)
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(benchWriteKey+":")))
	req.SetBody(body)
	return req
}

// BenchmarkServeBatch: events per second through the whole server: POST
// /v1/batch with 100 realistic 1 KB events per batch (consent matching the
// stored record) from 32 concurrent clients, the durable queue (its
// default sync policy, see benchSync), consent-match in the sandbox,
// routing, delivery to one webhook on loopback. One op is one
// batch; the clock stops when the sink has every event.
func BenchmarkServeBatch(b *testing.B) { serveBatch(b, workload.Batch, "", "", "") }

// BenchmarkServeBatchCluster: BenchmarkServeBatch on one host's Pebble
// queue with the embedded consent store (the default), and on cluster
// mode's queue: three JetStream servers in this process (R3 streams, file
// storage), the consent store on a real redis-server (with the host's
// cache, invalidated over NATS), the queue's messages compressed (the
// default) and not. One insertfn host in all, the same workload: what
// cluster mode costs a host.
func BenchmarkServeBatchCluster(b *testing.B) {
	b.Run("pebble", func(b *testing.B) { serveBatch(b, workload.VariedBatch, "", "", "") })
	for _, c := range []struct{ name, compression string }{
		{"jetstream-r3", ""},
		{"jetstream-r3-uncompressed", "none"},
	} {
		b.Run(c.name, func(b *testing.B) {
			nats := jstest.Start(b, 3)
			if err := nats.WaitMetaLeader(30 * time.Second); err != nil {
				b.Fatal(err)
			}
			redis := redistest.Start(b)
			serveBatch(b, workload.VariedBatch, "", fmt.Sprintf(", backend: jetstream, jetstream: {urls: [%s], replicas: 3, compression: %q}", strings.Join(nats.URLs(), ", "), c.compression),
				fmt.Sprintf("consent: {backend: redis, redis: {addrs: [%s]}, cache: {size: 100000, ttl: 1m}}\n", redis.Addr))
		})
	}
}

// BenchmarkServeBatchWatched: BenchmarkServeBatch with a live event
// debugger attached, as `insertfn tail --full` attaches (GET /admin/tail
// on the admin listener, server-sent events read as they come), at its
// default rate and at the highest it may ask for, beside the same server
// without one: what a watcher costs a busy server.
func BenchmarkServeBatchWatched(b *testing.B) {
	for _, c := range []struct{ name, query string }{
		{"none", ""},
		{"default-rate", "full=1"},
		{"max-rate", "full=1&rate=2000"},
	} {
		b.Run(c.name, func(b *testing.B) { serveBatch(b, workload.Batch, c.query, "", "") })
	}
}

// watch attaches a watcher to the server's live event stream with query
// and reads it until the benchmark ends, counting the records.
func watch(b *testing.B, h *app.Server, query string) *atomic.Int64 {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+h.AdminAddr().String()+"/admin/tail?"+query, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET /admin/tail?%s: %s", query, resp.Status)
	}
	var records atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if bytes.HasPrefix(sc.Bytes(), []byte("data: {")) {
				records.Add(1)
			}
		}
	}()
	b.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return &records
}

// serveBatch is BenchmarkServeBatch, with a watcher attached to the live
// event stream with query when query is not empty, and the server's
// configuration extended as startServer extends it.
func serveBatch(b *testing.B, batch func() ([]byte, []int), query, queueKeys, extra string) {
	sink := newCountingSink(b)
	h, addr := startServer(b, sink, "", queueKeys, extra)
	var watched *atomic.Int64
	if query != "" {
		watched = watch(b, h, query)
	}
	client := &fasthttp.Client{MaxConnsPerHost: 64}
	// Each request carries 100 events with messageIds unique across the
	// run (the server drops repeated messageIds): the body is a template
	// whose ids' first 16 digits are the request's number.
	template, slots := batch()
	var next atomic.Int64
	var failed atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		body := bytes.Clone(template)
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			num := fmt.Appendf(nil, "%016d", next.Add(1))
			for _, at := range slots {
				copy(body[at:], num)
			}
			req := postReq(addr, "/v1/batch", body)
			if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				failed.Add(1)
			}
			fasthttp.ReleaseRequest(req)
		}
	})
	accepted := time.Since(start)
	want := int64(b.N)*100 - failed.Load()*100
	deadline := time.Now().Add(5 * time.Minute)
	for sink.n.Load() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	delivered := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Errorf("%d batches not accepted", failed.Load())
	}
	b.ReportMetric(float64(b.N*100)/accepted.Seconds(), "accepted-events/s")
	b.ReportMetric(float64(sink.n.Load())/delivered.Seconds(), "delivered-events/s")
	if watched != nil {
		b.ReportMetric(float64(watched.Load())/delivered.Seconds(), "watched-records/s")
	}
}

// BenchmarkServeTrackLatency: p50/p99 of single POST /v1/track calls (1 KB
// event, 200 only once durable per the sync policy) sent at a fixed rate
// for b.N calls, through the whole server as in BenchmarkServeBatch: at
// 2000 and 5000 calls/s, with the queue's default sync policy (interval)
// and with sync: always (an fsync before each 200).
//
// The i-th call is due at i/rate s after the start and is sent then, or at
// once when the generator is late, whatever the answers before it: an
// open loop, as real clients are. p50-ns and p99-ns are timed from the
// send; sched-p50-ns and sched-p99-ns from when the call was due, which
// also counts the time a late generator held it (a slow server that holds
// up the generator cannot hide its delay). req/s is the rate achieved.
func BenchmarkServeTrackLatency(b *testing.B) {
	for _, policy := range []string{"interval", "always"} {
		for _, rate := range []int{2000, 5000} {
			b.Run(fmt.Sprintf("sync=%s/rate=%d", policy, rate), func(b *testing.B) { trackLatency(b, policy, rate) })
		}
	}
}

// trackLatency is BenchmarkServeTrackLatency at one sync policy and rate.
func trackLatency(b *testing.B, policy string, rate int) {
	sink := newCountingSink(b)
	_, addr := startServer(b, sink, policy, "", "")
	client := &fasthttp.Client{MaxConnsPerHost: 256}
	var mu sync.Mutex
	var lat, sched latencies
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		due := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		body := workload.Event(i % users)
		body = bytes.Replace(body, []byte(gjson.GetBytes(body, "messageId").Raw), fmt.Appendf(nil, `"track-%d"`, i), 1)
		wg.Go(func() {
			req := postReq(addr, "/v1/track", body)
			resp := fasthttp.AcquireResponse()
			sent := time.Now()
			err := client.Do(req, resp)
			done := time.Now()
			if err != nil || resp.StatusCode() != 200 {
				b.Errorf("track: %v %d", err, resp.StatusCode())
			}
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
			mu.Lock()
			lat.add(done.Sub(sent))
			sched.add(done.Sub(due))
			mu.Unlock()
		})
	}
	sending := time.Since(start)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/sending.Seconds(), "req/s")
	lat.report(b, "")
	sched.report(b, "sched-")
}

// benchLog is where the benchmark servers log: nowhere, unless
// INSERTFN_BENCH_LOG=1.
func benchLog() io.Writer {
	if os.Getenv("INSERTFN_BENCH_LOG") == "1" {
		return os.Stderr
	}
	return io.Discard
}

// benchSync is the queue's sync policy in the server benchmarks: the
// default (interval: no acknowledged event lost on kill -9), or what
// INSERTFN_BENCH_SYNC says ("always" to wait for an fsync before each
// 200, "never") to see the disk's share.
func benchSync() string {
	return os.Getenv("INSERTFN_BENCH_SYNC")
}
