package redisstore_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/consentstore/redisstore"
	"github.com/insertfn/insertfn/internal/testkit/redistest"
)

// redisServer is the server the tests of this package share; each test
// uses its own key prefix.
var redisServer redistest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	redisServer.Close()
	os.Exit(code)
}

var prefixes atomic.Int64

// freshConfig returns a configuration for the shared server with a key
// prefix no other test uses. Its timeout is generous: the tests of
// behaviour must not fail because a noisy machine under -race stalled a
// call for 200ms; the tests of timeouts set their own.
func freshConfig(t testing.TB) redisstore.Config {
	t.Helper()
	srv := redisServer.Server(t)
	return redisstore.Config{
		Addrs:     []string{srv.Addr},
		KeyPrefix: fmt.Sprintf("test%d:%s:", prefixes.Add(1), t.Name()),
		Timeout:   5 * time.Second,
	}
}

// open returns a store over cfg, closed when t ends.
func open(t testing.TB, cfg redisstore.Config) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
