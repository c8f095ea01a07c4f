package delivery

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/valyala/fasthttp"
)

// fasthttpSink starts a fasthttp server on loopback that reads each request
// and answers 200; it allocates little, so allocation counts measure the
// client side.
func fasthttpSink(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(200) }}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String() + "/hook"
}

func benchmarkWebhook(b *testing.B, url string, cfg WebhookConfig) {
	cfg.URL = url
	w, err := NewWebhook(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	events := testEvents(100)
	size := 0
	for _, e := range events {
		size += len(e)
	}
	ctx := context.Background()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Deliver(ctx, events); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkWebhookBatch100 delivers 100-event batches (~120 bytes each) to
// a loopback server, one request per batch.
func BenchmarkWebhookBatch100(b *testing.B) {
	b.Run("httptest", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
		}))
		defer srv.Close()
		benchmarkWebhook(b, srv.URL, WebhookConfig{})
	})
	b.Run("fasthttp", func(b *testing.B) {
		benchmarkWebhook(b, fasthttpSink(b), WebhookConfig{})
	})
	b.Run("fasthttp-gzip", func(b *testing.B) {
		benchmarkWebhook(b, fasthttpSink(b), WebhookConfig{Gzip: true})
	})
	b.Run("httptest-parallel", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
		}))
		defer srv.Close()
		w, err := NewWebhook(WebhookConfig{URL: srv.URL})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		events := testEvents(100)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := w.Deliver(context.Background(), events); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkFileDeliver100 appends 100-event batches to an NDJSON file, with
// and without the fsync after each Deliver.
func BenchmarkFileDeliver100(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		name := "fsync"
		if noSync {
			name = "nosync"
		}
		b.Run(name, func(b *testing.B) {
			s, err := NewFile(FileConfig{Path: filepath.Join(b.TempDir(), "events.ndjson"), NoSync: noSync, MaxFiles: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			events := testEvents(100)
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Deliver(context.Background(), events); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
		})
	}
}
