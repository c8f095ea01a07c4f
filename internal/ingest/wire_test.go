package ingest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// writeThenRead sends one request on conn the way most HTTP clients do:
// the whole body first, then it reads the answer. It returns the status
// and the JSON body of the answer.
func writeThenRead(t *testing.T, conn net.Conn, br *bufio.Reader, path, header string, body []byte) (int, map[string]any, http.Header) {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: insertfn\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n",
		path, base64.StdEncoding.EncodeToString([]byte(testKey+":")), len(body), header); err != nil {
		t.Fatalf("writing the headers: %v", err)
	}
	if _, err := conn.Write(body); err != nil {
		t.Fatalf("writing a %d-byte body: %v (the server must read it before answering)", len(body), err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer to a %d-byte body: %v", len(body), err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("answer %d to a %d-byte body is not JSON: %q", res.StatusCode, len(body), raw)
	}
	return res.StatusCode, m, res.Header
}

// TestOversizedBodyAnswered413: a body over its limit, up to DrainFactor
// times the limit, is read and discarded and answered with the JSON 413,
// even by a client that writes it whole before it reads; the connection
// then serves the next request. Before, bodies from 700 KB to 5 MB got a
// reset connection, which a client cannot tell from a network fault.
func TestOversizedBodyAnswered413(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	url := serve(t, s)
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for _, c := range []struct {
		path string
		size int
	}{
		{"/v1/batch", 700 << 10},
		{"/v1/batch", 5 << 20},
		{"/v1/batch", DrainFactor * DefaultMaxBatchBytes},
		{"/v1/track", 100 << 10},
		{"/v1/track", 2 << 20},
	} {
		body := []byte(`{"batch":[],"pad":"` + strings.Repeat("x", c.size-21) + `"}`)
		status, m, _ := writeThenRead(t, conn, br, c.path, "", body)
		if status != 413 || m["success"] != false || !strings.Contains(fmt.Sprint(m["error"]), "larger than") {
			t.Fatalf("%s with %d bytes answered %d %v; want the JSON 413", c.path, len(body), status, m)
		}
	}
	// The same connection still serves.
	status, m, _ := writeThenRead(t, conn, br, "/v1/track", "", []byte(`{"userId":"u","event":"after"}`))
	if status != 200 || m["success"] != true {
		t.Fatalf("after the 413s the connection answered %d %v", status, m)
	}
	if evs := rec.events(); len(evs) != 1 || evs[0]["event"] != "after" {
		t.Fatalf("accepted %v", evs)
	}
	if got := s.Stats().Rejected.TooLarge; got != 5 {
		t.Errorf("Stats.Rejected.TooLarge = %d, want 5", got)
	}
}

// TestRefusalsReadTheBody: a request refused before its body is looked at
// (unknown path, wrong method, unknown write key) still has its body read,
// so the connection serves the next request.
func TestRefusalsReadTheBody(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	url := serve(t, s)
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	body := []byte(`{"userId":"u","event":"e","pad":"` + strings.Repeat("x", 20<<10) + `"}`)
	for _, c := range []struct {
		path   string
		status int
	}{{"/v2/track", 404}, {"/v1/track", 200}} {
		status, _, _ := writeThenRead(t, conn, br, c.path, "", body)
		if status != c.status {
			t.Fatalf("%s answered %d, want %d", c.path, status, c.status)
		}
	}
}

// TestHeaderTooLargeIsJSON: headers over max_header_bytes get a 431 in
// JSON, like every other refusal. (The server cannot read the rest of
// such headers: it answers and closes, so a write after that may fail.)
func TestHeaderTooLargeIsJSON(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	url := serve(t, s)
	res, raw := rawExchange(t, url, fmt.Sprintf("POST /v1/track HTTP/1.1\r\nHost: insertfn\r\nCookie: %s\r\nContent-Length: 2\r\n\r\n{}",
		strings.Repeat("c", 2*DefaultMaxHeaderBytes)))
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || res.StatusCode != 431 || m["success"] != false || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("answered %d %q (%s); want a JSON 431", res.StatusCode, raw, res.Header.Get("Content-Type"))
	}
	// Headers under the limit, cookies included, are fine.
	conn2, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	status, m, _ := writeThenRead(t, conn2, bufio.NewReader(conn2), "/v1/track", "Cookie: "+strings.Repeat("c", DefaultMaxHeaderBytes/2)+"\r\n", []byte(`{"userId":"u","event":"e"}`))
	if status != 200 {
		t.Fatalf("a 4 KiB cookie answered %d %v", status, m)
	}
}

// TestMultipartBodyNotPreRead: a multipart body is the handler's to
// refuse like any other; fasthttp must not read it whole (into memory and
// temporary files) first. A 200 MB multipart upload announced by its
// Content-Length gets the 413 at once, with only its first bytes sent.
func TestMultipartBodyNotPreRead(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	url := serve(t, s)
	res, _ := rawExchange(t, url, fmt.Sprintf("POST /v1/track HTTP/1.1\r\nHost: insertfn\r\nContent-Type: multipart/form-data; boundary=X\r\nContent-Length: %d\r\n\r\n--X\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f\"\r\n\r\n%s",
		200<<20, strings.Repeat("x", 8<<10)))
	if res.StatusCode != 413 {
		t.Fatalf("answered %d, want 413", res.StatusCode)
	}
}

// TestProtocolErrorsAllowAnyOrigin: answers fasthttp gives before the
// handler runs (here a 431) carry Access-Control-Allow-Origin too, or a
// page's library would see a network error and retry.
func TestProtocolErrorsAllowAnyOrigin(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	url := serve(t, s)
	res, _ := rawExchange(t, url, fmt.Sprintf("POST /v1/t HTTP/1.1\r\nHost: insertfn\r\nOrigin: https://shop.example\r\nCookie: %s\r\nContent-Length: 2\r\n\r\n{}",
		strings.Repeat("c", 2*DefaultMaxHeaderBytes)))
	if res.StatusCode != 431 || res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("answered %d with Access-Control-Allow-Origin %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
}

// rawExchange sends request, as written, on a new connection to the
// server at url and returns the answer and its body. The write may fail
// (the server may answer and close before reading all of it); the answer
// must come.
func rawExchange(t *testing.T, url, request string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	_, _ = io.WriteString(conn, request)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to %.60q: %v", request, err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, raw
}
