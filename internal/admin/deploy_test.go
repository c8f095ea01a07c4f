package admin_test

import (
	"net/http"
	"testing"
)

// TestDeployUnchanged: uploading the live version again with its manifest
// answers 200 with "unchanged": true instead of 201, and changes nothing:
// rollback still goes back to the version before it. Another manifest for
// the same wasm is a change (201).
func TestDeployUnchanged(t *testing.T) {
	e := newEnv(t)
	wasm := verdicts(t)
	first := e.deploy(http.StatusCreated, "f", wasm, `{"settings":{"version":"1"}}`)
	if first.Get("unchanged").Exists() {
		t.Fatalf("first deploy: %s; want no \"unchanged\"", first.Raw)
	}
	e.deploy(http.StatusCreated, "f", wasm, `{"settings":{"version":"2"}}`)
	same := e.deploy(http.StatusOK, "f", wasm, `{"settings": {"version": "2"}}`)
	if !same.Get("unchanged").Bool() || !same.Get("active").Bool() || same.Get("manifest.settings.version").String() != "2" {
		t.Fatalf("deploy of the live version: %s; want it unchanged and active", same.Raw)
	}
	back := e.want(http.StatusOK, http.MethodPost, "/admin/functions/f/rollback", nil)
	if back.Get("manifest.settings.version").String() != "1" || e.live("f") != "1" {
		t.Fatalf("rollback after an unchanged deploy: %s, live %q; want version 1", back.Raw, e.live("f"))
	}
}
