package admin

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestJSONProtocolError(t *testing.T) {
	for _, c := range []struct {
		in, status string
	}{
		{"HTTP/1.1 431 Request Header Fields Too Large" + plainErrorHeaders + "431 Request Header Fields Too Large", "HTTP/1.1 431 Request Header Fields Too Large"},
		{"HTTP/1.1 400 Bad Request: missing required Host header" + plainErrorHeaders + "400 Bad Request: missing required Host header", "HTTP/1.1 400 Bad Request: missing required Host header"},
	} {
		out, ok := jsonProtocolError([]byte(c.in))
		if !ok {
			t.Fatalf("%q not rewritten", c.in)
		}
		head, body, _ := strings.Cut(string(out), "\r\n\r\n")
		var e errorBody
		if !strings.HasPrefix(head, c.status+"\r\nContent-Type: application/json\r\n") || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Fatalf("rewritten as %q", out)
		}
	}
	// What handlers write (through net/http's own header writing) is left
	// alone, whatever its content type.
	for _, in := range []string{
		"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nDate: x\r\n\r\n{}",
		"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nx",
		"HTTP/1.1 200 OK" + plainErrorHeaders + "fine",
		"some body bytes" + plainErrorHeaders,
	} {
		if _, ok := jsonProtocolError([]byte(in)); ok {
			t.Errorf("%q rewritten", in)
		}
	}
}
