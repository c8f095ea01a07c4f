package runtime_test

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/runtime"
	"github.com/tidwall/gjson"
)

// TestNoWayOut runs a guest that tries to read the host's files, list its
// directories, create a file, read its environment and open a connection:
// every attempt fails, and the host's files, environment and listening
// socket see nothing of it.
func TestNoWayOut(t *testing.T) {
	t.Setenv("INSERTFN_TEST_SECRET", "s3cret")
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	created := filepath.Join(dir, "escaped.txt")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	connected := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			connected <- struct{}{}
		}
	}()

	f := load(t, "escape", runtime.Options{})
	for _, target := range []struct{ read, list, create string }{
		{secret, dir, created},            // absolute paths
		{"../go.mod", ".", "escaped.txt"}, // relative to the test's working directory
		{"/etc/hostname", "/", "/tmp/insertfn-escaped.txt"},
	} {
		event, _ := json.Marshal(map[string]string{
			"type": "track", "read": target.read, "list": target.list, "create": target.create,
			"env": "INSERTFN_TEST_SECRET", "dial": ln.Addr().String(),
		})
		res, err := invoke(t, f, string(event))
		if err != nil || res.Verdict != runtime.Deliver {
			t.Fatalf("%s: %v %v %s", event, res.Verdict, err, res.Reason)
		}
		got := gjson.GetBytes(res.Event, "escape")
		for _, attempt := range []string{"read", "list", "create", "dial"} {
			if r := got.Get(attempt).String(); !strings.HasPrefix(r, "error: ") {
				t.Errorf("%s %q: the guest got %q, want an error", attempt, gjson.Get(string(event), attempt), r)
			}
		}
		if env := got.Get("env").String(); env != "" {
			t.Errorf("the guest read the environment: %q", env)
		}
		for _, p := range []string{created, "escaped.txt", "/tmp/insertfn-escaped.txt"} {
			if _, err := os.Stat(p); err == nil {
				os.Remove(p)
				t.Errorf("the guest created %s on the host", p)
			}
		}
	}
	select {
	case <-connected:
		t.Error("the guest connected to a socket of the host")
	case <-time.After(50 * time.Millisecond):
	}
	// The function still works after its attempts.
	if res, err := invoke(t, f, `{"type":"track"}`); err != nil || res.Verdict != runtime.Deliver {
		t.Errorf("after the attempts: %v %v", res.Verdict, err)
	}
}
