package jetstream

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/insertfn/insertfn/internal/queue"
	"github.com/insertfn/insertfn/internal/queue/queuetest"
)

// storedMsg returns message seq of topic's items stream as the servers
// keep it.
func storedMsg(t *testing.T, q *Queue, topic queue.Topic, seq uint64) (nats.Header, []byte) {
	t.Helper()
	ctx := context.Background()
	s, err := q.js.Stream(ctx, namesOf(q.opts.prefix(), topic).itemsName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		t.Fatalf("message %d of %s: %v", seq, topic, err)
	}
	return m.Header, m.Data
}

// jsonLike returns n bytes of events that differ only in their numbers:
// data that compresses well.
func jsonLike(n int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, `{"type":"track","event":"Order Completed","userId":"user-%d","properties":{"total":%d}},`, i, i*7)
	}
	return b[:n]
}

// TestCompression: an item that S2 shrinks is stored compressed, one it
// does not (random bytes) or that is short is stored as it is, and every
// item comes back as it was appended; a handle that does not compress
// stores as it is and reads what another compressed.
func TestCompression(t *testing.T) {
	cl := sharedCluster(t)
	opts := testOptions([]string{cl.URL(0)})
	qa := openQueue(t, opts)
	plain := opts
	plain.URLs = []string{cl.URL(1)}
	plain.Compression = CompressionNone
	qb := openQueue(t, plain)
	ctx := context.Background()
	const topic = queue.Topic("compressed")
	random := queuetest.Incompressible(20 << 10)
	appended := [][]byte{jsonLike(20 << 10), random, []byte(`{"short":true}`)}
	if err := qa.Append(ctx, topic, appended...); err != nil {
		t.Fatal(err)
	}
	if err := qb.Append(ctx, topic, jsonLike(30<<10)); err != nil {
		t.Fatal(err)
	}
	appended = append(appended, jsonLike(30<<10))
	for seq, want := range []struct {
		encoding string
		smaller  bool
	}{{encodingS2, true}, {"", false}, {"", false}, {"", false}} {
		h, data := storedMsg(t, qa, topic, uint64(seq+1))
		if got := h.Get(hdrEncoding); got != want.encoding {
			t.Errorf("message %d: encoding %q, want %q", seq+1, got, want.encoding)
		}
		if smaller := len(data) < len(appended[seq])/2; smaller != want.smaller {
			t.Errorf("message %d: %d bytes stored for %d appended", seq+1, len(data), len(appended[seq]))
		}
	}
	for _, q := range []*Queue{qb, qa} {
		c := q.Consumer(topic)
		got := takeN(t, c, len(appended), 5*time.Second)
		for i, it := range got {
			if !bytes.Equal(it.Data, appended[i]) {
				t.Fatalf("item %d: %d bytes back, %d appended", i, len(it.Data), len(appended[i]))
			}
		}
		if q == qb {
			if err := q.Close(); err != nil { // hands them back for qa
				t.Fatal(err)
			}
			continue
		}
		if err := c.Ack(ctx, got...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCompressionMalformed: a message marked compressed that does not
// decode (corrupt data, a decoded length past the servers' largest
// message, an unknown encoding), as a client with write access to the
// stream could publish, is handed out as it is stored, one item, and
// the queue goes on with the items after it.
func TestCompressionMalformed(t *testing.T) {
	cl := sharedCluster(t)
	q := openQueue(t, testOptions([]string{cl.URL(0)}))
	ctx := context.Background()
	const topic = queue.Topic("malformed")
	if err := q.Append(ctx, topic, []byte("first")); err != nil {
		t.Fatal(err)
	}
	bomb := binary.AppendUvarint(nil, 1<<40) // a block claiming a terabyte
	bomb = append(bomb, 0, 'x')
	bad := []struct {
		encoding string
		data     []byte
	}{
		{encodingS2, []byte("not s2 at all")},
		{encodingS2, bomb},
		{"zstd", []byte("whatever")},
	}
	subject := namesOf(q.opts.prefix(), topic).subject
	for _, b := range bad {
		m := &nats.Msg{Subject: subject, Data: b.data, Header: nats.Header{hdrEncoding: {b.encoding}}}
		if _, err := q.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Append(ctx, topic, jsonLike(4<<10)); err != nil {
		t.Fatal(err)
	}
	c := q.Consumer(topic)
	got := takeN(t, c, 5, 5*time.Second)
	want := []string{"first", string(bad[0].data), string(bad[1].data), string(bad[2].data), string(jsonLike(4 << 10))}
	if !slices.Equal(datas(got), want) {
		t.Fatalf("handed out %q", datas(got))
	}
	if err := c.Ack(ctx, got...); err != nil {
		t.Fatal(err)
	}
}

// TestConformanceCompressed runs the conformance suite on the cluster
// with every message compressed, however small.
func TestConformanceCompressed(t *testing.T) {
	cl := sharedCluster(t)
	open := func(t testing.TB, opts Options) queue.Queue {
		q := openQueue(t, opts)
		q.compressAll = true
		return q
	}
	var n int
	url := func() []string { n++; return []string{cl.URL(n % cl.N())} }
	queuetest.Run(t, queuetest.Backend{
		Open: func(t testing.TB, maxBytes int64) queue.Queue {
			opts := testOptions(url())
			opts.MaxBytes = maxBytes
			return open(t, opts)
		},
		Reopen: func(t testing.TB, q queue.Queue) queue.Queue {
			opts := q.(*Queue).opts
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			opts.URLs = url()
			return open(t, opts)
		},
		Shared: func(t testing.TB, q queue.Queue) queue.Queue {
			opts := q.(*Queue).opts
			opts.URLs = url()
			return open(t, opts)
		},
		RedeliveryWait: testAckWait,
	})
}

// TestNextFetchesByBytes: a Next bounded by bytes takes from the stream
// about as many messages as the bound holds, not as many as its item
// bound, so that a handle working through large messages a few at a
// time leaves the others to the other hosts.
func TestNextFetchesByBytes(t *testing.T) {
	cl := sharedCluster(t)
	opts := testOptions([]string{cl.URL(0)})
	opts.Compression = CompressionNone
	qa := openQueue(t, opts)
	opts.URLs = []string{cl.URL(1)}
	qb := openQueue(t, opts)
	ctx := context.Background()
	const topic = queue.Topic("large")
	items := make([][]byte, 20)
	for i := range items {
		items[i] = bytes.Repeat([]byte{'a' + byte(i)}, 100<<10)
	}
	if err := qa.Append(ctx, topic, items...); err != nil {
		t.Fatal(err)
	}
	a := qa.Consumer(topic)
	var held []queue.Item
	for range 2 {
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := a.Next(nctx, 500, 250<<10)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, got...)
	}
	// Fetched and not handed out: at most what one more Next takes.
	ca := a.(*consumer)
	ca.mu.Lock()
	buffered := len(ca.buf)
	ca.mu.Unlock()
	if buffered > 3 {
		t.Fatalf("after two Nexts of at most 250 KiB (%d items handed out), %d items of 100 KiB fetched and kept", len(held), buffered)
	}
	b := qb.Consumer(topic)
	rest := takeN(t, b, len(items)-len(held), 5*time.Second)
	if err := b.Ack(ctx, rest...); err != nil {
		t.Fatal(err)
	}
	if err := a.Ack(ctx, held...); err != nil {
		t.Fatal(err)
	}
}
