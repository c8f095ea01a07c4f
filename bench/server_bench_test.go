package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
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
	"github.com/tidwall/sjson"
	"github.com/valyala/fasthttp"

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
// webhook destination) and returns its address.
func startServer(b *testing.B, sink *countingSink) (*app.Server, string) {
	return startServerWith(b, sink, "", "")
}

// startServerWith is startServer with more configuration: queueKeys are
// more keys of queue (YAML flow mapping entries, each after a comma),
// extra more top-level YAML.
func startServerWith(b *testing.B, sink *countingSink, queueKeys, extra string) (*app.Server, string) {
	wasm := guest(b, "../examples/consent-match")
	dir := b.TempDir()
	wasmPath := filepath.Join(dir, "consent-match.wasm")
	if err := os.WriteFile(wasmPath, wasm, 0o600); err != nil {
		b.Fatal(err)
	}
	c, err := config.Parse(fmt.Appendf(nil, "data: %s\nqueue: {sync: \"%s\", interval: 100ms%s}\n%s", dir, benchSync(), queueKeys, extra))
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
	for _, u := range consentRecords(users) {
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
func BenchmarkServeBatch(b *testing.B) { serveBatch(b, batchTemplate, "", "", "") }

// BenchmarkServeBatchCluster: BenchmarkServeBatch on one host's Pebble
// queue with the embedded consent store (the default), and on cluster
// mode's queue: three JetStream servers in this process (R3 streams, file
// storage), the consent store on a real redis-server (with the host's
// cache, invalidated over NATS), the queue's messages compressed (the
// default) and not. One insertfn host in all, the same workload: what
// cluster mode costs a host.
func BenchmarkServeBatchCluster(b *testing.B) {
	b.Run("pebble", func(b *testing.B) { serveBatch(b, variedBatchTemplate, "", "", "") })
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
			serveBatch(b, variedBatchTemplate, "", fmt.Sprintf(", backend: jetstream, jetstream: {urls: [%s], replicas: 3, compression: %q}", strings.Join(nats.URLs(), ", "), c.compression),
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
		b.Run(c.name, func(b *testing.B) { serveBatch(b, batchTemplate, c.query, "", "") })
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
// configuration extended as startServerWith extends it.
func serveBatch(b *testing.B, batch func() ([]byte, []int), query, queueKeys, extra string) {
	sink := newCountingSink(b)
	h, addr := startServerWith(b, sink, queueKeys, extra)
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

// batchTemplate returns a /v1/batch body of 100 realistic events whose
// messageIds start with 16 zeros, and the offsets of those zeros.
func batchTemplate() ([]byte, []int) {
	var buf bytes.Buffer
	var slots []int
	buf.WriteString(`{"batch":[`)
	for j := range 100 {
		if j > 0 {
			buf.WriteByte(',')
		}
		ev := event(j * 7 % users)
		id := gjson.GetBytes(ev, "messageId")
		ev = bytes.Replace(ev, []byte(id.Raw), fmt.Appendf(nil, `"%016d-%03d"`, 0, j), 1)
		slots = append(slots, buf.Len()+bytes.Index(ev, []byte(`"messageId":"`))+len(`"messageId":"`))
		buf.Write(ev)
	}
	buf.WriteString(`]}`)
	return buf.Bytes(), slots
}

// variedBatchTemplate is batchTemplate with events that differ as those
// of a real batch do: each its own timestamp, order (id, total, one to
// three products of a catalog with their quantities), page, browser,
// address and locale, drawn from a fixed seed. batchTemplate's events
// differ in their ids only, so its batches compress about 30 times,
// which would flatter a queue that compresses; these compress about as
// much as real batches of one source (see bench/README.md).
func variedBatchTemplate() ([]byte, []int) {
	r := rand.New(rand.NewPCG(1, 2))
	type product struct {
		id, sku, name string
		price         float64
	}
	catalog := make([]product, 40)
	for i := range catalog {
		catalog[i] = product{fmt.Sprintf("%016x%08x", r.Uint64(), r.Uint32()), fmt.Sprintf("%05d-%02d", r.IntN(100000), r.IntN(100)),
			[]string{"Monopoly", "Scrabble", "Catan", "Ticket to Ride", "Carcassonne", "Azul", "Pandemic", "Codenames"}[i%8] + fmt.Sprintf(": edition %d", 1+r.IntN(9)),
			float64(r.IntN(20000)) / 100}
	}
	pages := []string{"/", "/checkout", "/cart", "/search", "/account", "/products/board-games", "/products/puzzles", "/sale", "/help/returns", "/blog/top-10-games"}
	agents := []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0",
	}
	locales := []string{"en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "nl-NL", "pt-BR"}
	var buf bytes.Buffer
	var slots []int
	buf.WriteString(`{"batch":[`)
	for j := range 100 {
		if j > 0 {
			buf.WriteByte(',')
		}
		ev := event(j * 7 % users)
		id := gjson.GetBytes(ev, "messageId")
		ev = bytes.Replace(ev, []byte(id.Raw), fmt.Appendf(nil, `"%016d-%03d"`, 0, j), 1)
		ts := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(3_600_000)) * time.Millisecond)
		page := pages[r.IntN(len(pages))]
		var products []map[string]any
		total := 0.0
		for range 1 + r.IntN(3) {
			p := catalog[r.IntN(len(catalog))]
			q := 1 + r.IntN(4)
			total += p.price * float64(q)
			products = append(products, map[string]any{"product_id": p.id, "sku": p.sku, "name": p.name, "price": p.price, "quantity": q})
		}
		for _, set := range []struct {
			path string
			v    any
		}{
			{"timestamp", ts.Format("2006-01-02T15:04:05.000Z")},
			{"sentAt", ts.Add(time.Duration(r.IntN(2000)) * time.Millisecond).Format("2006-01-02T15:04:05.000Z")},
			{"properties.order_id", fmt.Sprintf("%016x%08x", r.Uint64(), r.Uint32())},
			{"properties.total", float64(int(total*100)) / 100},
			{"properties.revenue", float64(int(total*85)) / 100},
			{"properties.products", products},
			{"context.page", map[string]any{"path": page, "url": "https://shop.example.com" + page, "title": cmp.Or(strings.Trim(page, "/"), "home") + " | Shop", "referrer": "https://www.google.com/search?q=" + fmt.Sprint(r.Uint32())}},
			{"context.userAgent", agents[r.IntN(len(agents))]},
			{"context.ip", fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254))},
			{"context.locale", locales[r.IntN(len(locales))]},
		} {
			var err error
			if ev, err = sjson.SetBytes(ev, set.path, set.v); err != nil {
				panic(err)
			}
		}
		slots = append(slots, buf.Len()+bytes.Index(ev, []byte(`"messageId":"`))+len(`"messageId":"`))
		buf.Write(ev)
	}
	buf.WriteString(`]}`)
	return buf.Bytes(), slots
}

// BenchmarkServeTrackLatency: p50/p99 of single POST /v1/track calls (1 KB
// event, 200 only once durable per the sync policy) sent at a fixed rate of 2000/s for b.N
// calls, through the whole server as in BenchmarkServeBatch.
//
// The i-th call is due at i/2000 s after the start and is sent then, or at
// once when the generator is late, whatever the answers before it: an
// open loop, as real clients are. p50-ns and p99-ns are timed from the
// send; sched-p50-ns and sched-p99-ns from when the call was due, which
// also counts the time a late generator held it (a slow server that holds
// up the generator cannot hide its delay). req/s is the rate achieved.
func BenchmarkServeTrackLatency(b *testing.B) {
	sink := newCountingSink(b)
	_, addr := startServer(b, sink)
	client := &fasthttp.Client{MaxConnsPerHost: 256}
	const rate = 2000
	var mu sync.Mutex
	var lat, sched latencies
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		due := start.Add(time.Duration(i) * time.Second / rate)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		body := event(i % users)
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
