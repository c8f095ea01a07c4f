package admin

import (
	"bufio"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/pipeline/tap"
)

// TestTailKeepAlive: a stream with nothing to send sends keep-alive
// comments.
func TestTailKeepAlive(t *testing.T) {
	h := &tailHandler{tap: tap.New(), slots: make(chan struct{}, 1), keepAlive: time.Millisecond}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || sc.Text() != ": keep-alive" || !sc.Scan() || sc.Text() != "" {
		t.Fatalf("first lines %q, %v; want a keep-alive comment and a blank line", sc.Text(), sc.Err())
	}
}

// TestTailLineLimit: a line longer than the client's limit is an error
// that says so, not a record cut short.
func TestTailLineLimit(t *testing.T) {
	long := "data: {\"payload\":\"" + strings.Repeat("x", maxTailLine) + "\"}\n\n"
	err := readTail(strings.NewReader(long), func(TailMessage) error {
		t.Error("a record from a line over the limit")
		return nil
	}, func() {})
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("readTail: %v, want an error about the line's length", err)
	}
}
