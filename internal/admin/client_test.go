package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"testing"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/runtime"
)

func TestClient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	wasm, other := verdicts(t), consentMatch(t)
	c := admin.Client{URL: e.srv.URL + "/", Token: token, HTTP: e.srv.Client()}

	v1, err := c.Deploy(ctx, functions.Manifest{Name: "f", Settings: functions.Settings(`{"version":"1"}`), OnError: functions.PolicyDeliver}, wasm)
	if err != nil || v1.Hash != runtime.Hash(wasm) || !v1.Active || v1.Manifest.OnError != functions.PolicyDeliver {
		t.Fatalf("deploy: %+v, %v", v1, err)
	}
	v2, err := c.Deploy(ctx, functions.Manifest{Name: "f", Wasm: "ignored.wasm"}, other)
	if err != nil || v2.Hash != runtime.Hash(other) {
		t.Fatalf("deploy 2: %+v, %v", v2, err)
	}

	_, err = c.Deploy(ctx, functions.Manifest{Name: "f"}, []byte("\x00asm\x01\x00\x00\x00"))
	var apiErr *admin.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnprocessableEntity || apiErr.Message == "" {
		t.Fatalf("broken deploy: %v", err)
	}

	fns, err := c.Functions(ctx)
	if err != nil || len(fns) != 1 || fns[0].Name != "f" || fns[0].Active != v2.Hash || len(fns[0].Versions) != 2 {
		t.Fatalf("functions: %+v, %v", fns, err)
	}

	back, err := c.Rollback(ctx, "f")
	if err != nil || back.Hash != v1.Hash || string(back.Manifest.Settings) != `{"version":"1"}` {
		t.Fatalf("rollback: %+v, %v", back, err)
	}
	if got := e.live("f"); got != "1" {
		t.Fatalf("live %q after rollback", got)
	}
	res, err := c.Test(ctx, "f", admin.TestRequest{Event: json.RawMessage(`{"type":"track","verdict":"drop"}`)})
	if err != nil || res.Verdict != "drop" || res.Reason != "asked to drop" || res.Version != v1.Hash {
		t.Fatalf("test: %+v, %v", res, err)
	}
	if _, err := c.Activate(ctx, "f", v2.Hash); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Rollback(ctx, "f"); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Fatalf("rollback of a deleted function: %v", err)
	}

	bad := admin.Client{URL: e.srv.URL, Token: "wrong-token-0123456789abcdef", HTTP: e.srv.Client()}
	if _, err := bad.Functions(ctx); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Message != "unauthorized" {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := (&admin.Client{Token: token}).Functions(ctx); err == nil {
		t.Fatal("no URL: no error")
	}
}

func TestServeStopsWithContext(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.admin.Serve(ctx, ln) }()
	c := admin.Client{URL: "http://" + ln.Addr().String(), Token: token}
	if fns, err := c.Functions(ctx); err != nil || len(fns) != 0 {
		t.Fatalf("functions: %v, %v", fns, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := c.Functions(context.Background()); err == nil {
		t.Fatal("still answering after shutdown")
	}
}
