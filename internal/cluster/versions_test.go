package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/queue/jetstream/jstest"
	"github.com/insertfn/insertfn/internal/wasmbuild"
	"github.com/insertfn/insertfn/runtime"
)

var builder *wasmbuild.Builder

func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m, &builder)) }

// clusterHost is the function part of one host: a registry, its version
// store and the shared versions.
type clusterHost struct {
	reg   *functions.Registry
	store *functions.VersionStore
}

func startHost(t *testing.T, url string) *clusterHost {
	t.Helper()
	eng, err := runtime.NewEngine(runtime.Config{CacheDir: wasmbuild.CompilationCache()})
	if err != nil {
		t.Fatal(err)
	}
	reg := functions.NewRegistry(eng, nil)
	store, err := functions.NewVersionStore(t.TempDir(), reg)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := NewVersions(ctx, nc, "TEST", 1, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = v.Close()
		nc.Close()
		reg.Close(context.Background())
		eng.Close(context.Background())
	})
	return &clusterHost{reg: reg, store: store}
}

// live returns the settings of the host's live version of f, "" when it
// has none.
func (h *clusterHost) live() string {
	v, err := h.reg.Active("f")
	if errors.Is(err, functions.ErrNotFound) {
		return ""
	}
	if err != nil {
		return err.Error()
	}
	return string(v.Manifest.Settings)
}

func waitLive(t *testing.T, h *clusterHost, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for h.live() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the host runs %q, want %q", h.live(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestVersions: a deploy, rollback or deletion through one host's version
// store is made on every host; a host that starts later catches up.
func TestVersions(t *testing.T) {
	url := jstest.Start(t, 1).URL(0)
	wasm := builder.Build(t, "../../functions/testdata/verdicts")
	a, b := startHost(t, url), startHost(t, url)
	ctx := context.Background()
	deploy := func(h *clusterHost, settings string) {
		t.Helper()
		m := functions.Manifest{Name: "f", Settings: functions.Settings(settings)}
		if _, err := h.store.Deploy(ctx, m, wasm); err != nil {
			t.Fatal(err)
		}
	}
	deploy(a, `{"v":1}`)
	waitLive(t, b, `{"v":1}`)
	deploy(b, `{"v":2}`)
	waitLive(t, a, `{"v":2}`)
	if _, err := a.store.Rollback(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	waitLive(t, b, `{"v":1}`)
	if live := a.live(); live != `{"v":1}` {
		t.Errorf("host a runs %q after its rollback", live)
	}
	c := startHost(t, url) // a host that was not there: it catches up at start
	if live := c.live(); live != `{"v":1}` {
		t.Errorf("a new host runs %q, want the cluster's version", live)
	}
	if err := b.store.Delete(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	waitLive(t, a, "")
	waitLive(t, c, "")
}
