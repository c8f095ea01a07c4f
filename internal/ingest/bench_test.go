package ingest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

// batchBody returns a /v1/batch body of n events shaped like analytics-go's
// (consent in context, a top-level context with the library), and the
// offsets of a 10-digit counter inside every messageId, so each use can
// make its ids new.
func batchBody(n int) ([]byte, []int) {
	var b strings.Builder
	b.WriteString(`{"messageId":"batch-1","sentAt":"2024-05-01T12:00:01.000Z","batch":[`)
	var offs []int
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"type":"track","userId":"user-` + strconv.Itoa(i%7) + `","event":"Order Completed","messageId":"m-`)
		offs = append(offs, b.Len())
		fmt.Fprintf(&b, `0000000000-%03d","timestamp":"2024-05-01T12:00:00.5Z",`, i)
		b.WriteString(`"properties":{"orderId":"o-1234","revenue":42.5,"currency":"EUR","products":[{"sku":"s1","price":20},{"sku":"s2","price":22.5}]},`)
		b.WriteString(`"context":{"consent":{"categoryPreferences":{"Analytics":true,"Advertising":false}},"ip":"192.0.2.7"}}`)
	}
	b.WriteString(`],"context":{"library":{"name":"analytics-go","version":"3.0.0"}}}`)
	return []byte(b.String()), offs
}

// stamp writes n as the 10-digit counter of every messageId.
func stamp(body []byte, offs []int, n uint64) {
	var d [10]byte
	for i := 9; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	for _, o := range offs {
		copy(body[o:], d[:])
	}
}

type countingAccepter struct{ events atomic.Uint64 }

func (c *countingAccepter) Accept(_ context.Context, _ string, events [][]byte) error {
	c.events.Add(uint64(len(events)))
	return nil
}

func benchServer(tb testing.TB) (fasthttp.RequestHandler, *countingAccepter) {
	acc := &countingAccepter{}
	s, err := New(Config{}, testSources, acc)
	if err != nil {
		tb.Fatal(err)
	}
	return s.Handler(), acc
}

func newBatchRequest(body []byte) *fasthttp.Request {
	req := new(fasthttp.Request)
	req.Header.SetMethod("POST")
	req.SetRequestURI("/v1/batch")
	req.Header.Set("Authorization", basic(testKey, ""))
	req.SetBody(body)
	return req
}

// TestBatchAllocs guards the hot path: a 100-event batch costs a bounded
// number of allocations for the whole request, not some per event.
func TestBatchAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	h, acc := benchServer(t)
	body, offs := batchBody(100)
	req := newBatchRequest(body)
	var ctx fasthttp.RequestCtx
	var n uint64
	allocs := testing.AllocsPerRun(200, func() {
		n++
		stamp(req.Body(), offs, n)
		ctx.Init(req, nil, nil)
		h(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("answered %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	})
	if acc.events.Load() != 100*(n) {
		t.Fatalf("accepted %d events in %d requests, want 100 each", acc.events.Load(), n)
	}
	t.Logf("%.1f allocations per 100-event batch", allocs)
	if allocs > 10 {
		t.Errorf("%.1f allocations per 100-event batch; want at most 10", allocs)
	}
}

// BenchmarkBatch100 is /v1/batch with 100 events per request through the
// handler (parsing, validation, normalization, dedupe; no network).
func BenchmarkBatch100(b *testing.B) {
	h, acc := benchServer(b)
	var seq atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		body, offs := batchBody(100)
		req := newBatchRequest(body)
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			stamp(req.Body(), offs, seq.Add(1))
			ctx.Init(req, nil, nil)
			h(&ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Fatalf("answered %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
		}
	})
	b.ReportMetric(float64(acc.events.Load())/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(len(mustBody(100)))/100, "B/event")
}

func mustBody(n int) []byte { b, _ := batchBody(n); return b }

// BenchmarkBatch100Loopback is BenchmarkBatch100 over a real loopback TCP
// connection per goroutine (fasthttp client, keep-alive).
func BenchmarkBatch100Loopback(b *testing.B) {
	acc := &countingAccepter{}
	s, err := New(Config{}, testSources, acc)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Shutdown(context.Background())
	client := &fasthttp.Client{}
	url := "http://" + ln.Addr().String() + "/v1/batch"
	var seq atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		body, offs := batchBody(100)
		req := newBatchRequest(body)
		req.SetRequestURI(url)
		var resp fasthttp.Response
		for pb.Next() {
			stamp(req.Body(), offs, seq.Add(1))
			if err := client.Do(req, &resp); err != nil {
				b.Fatal(err)
			}
			if resp.StatusCode() != 200 {
				b.Fatalf("answered %d %s", resp.StatusCode(), resp.Body())
			}
		}
	})
	b.ReportMetric(float64(acc.events.Load())/b.Elapsed().Seconds(), "events/s")
}
