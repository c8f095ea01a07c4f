package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleFile: the documented example configuration loads and says
// what it seems to say.
func TestExampleFile(t *testing.T) {
	c, err := Load("../../docs/insertfn.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8080" || len(c.Sources) != 1 || len(c.Destinations) != 3 || len(c.Functions) != 1 {
		t.Errorf("loaded %+v", c)
	}
	if got := c.Destinations[0]; got.Name != "Google Ads" || got.Type != "webhook" || got.Categories[0] != "Advertising" ||
		len(got.Filters) != 3 || got.Filters[1].Fields["context.traits"][0] != "email" || got.Filters[2].Percent != 0.1 {
		t.Errorf("destination 0 = %+v", got)
	}
	abs, _ := filepath.Abs("../../data")
	if c.DataDir() != abs {
		t.Errorf("data dir %q, want %q (relative to the file)", c.DataDir(), abs)
	}
	if c.Functions[0].Limits.Timeout.String() != "250ms" {
		t.Errorf("timeout %v", c.Functions[0].Limits.Timeout)
	}
	m := c.Functions[0] // the manifest the registry deploys
	err = m.Validate()
	if err != nil || string(m.Settings) != `{"missingConsent":"pass","missingRecord":"pass"}` || m.Limits.MemoryPages != 256 ||
		m.OnError != "drop" || m.Retries != 2 {
		t.Errorf("manifest %+v, %v", m, err)
	}
	rc := c.RuntimeConfig()
	if rc.CompileTimeout.String() != "1m0s" || rc.ModuleLimits.MaxModuleBytes != 32<<20 || rc.ModuleLimits.MaxTables != 16 ||
		rc.ModuleLimits.MaxSectionItems != 1_000_000 || rc.MemoryBudget != 0 || rc.CacheDir != filepath.Join(abs, "compile-cache") {
		t.Errorf("runtime config %+v", rc)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"sources: []\n", "sources: at least one source"},
		{"runtime: {max_tables: -1, compile_timeout: -1s}\nsources: []\n", "runtime.max_tables: -1 is negative"},
		{"runtime: {compile_timeout: -1s}\nsources: []\n", "runtime.compile_timeout: -1s is negative"},
		{"sources:\n  - {name: web, write_keys: [k], functions: [x]}\n", `sources[0].functions[0]: no function called "x"`},
		{"sources:\n  - {name: web, write_keys: [k]}\n  - {name: app, write_keys: [k]}\n", `sources[1].write_keys[0]: already the write key of source "web"`},
		{"sources:\n  - {name: web, write_keys: [k], allowed_origins: [\"https://a.example/\"]}\n", `sources[0].allowed_origins[0]: "https://a.example/": an origin is scheme://host[:port]`},
		{"sources:\n  - {name: web, write_keys: [k]}\ndestinations:\n  - {name: d, type: webhook}\n", "destinations[0].url"},
		{"sources:\n  - {name: web, write_keys: [k]}\ndestinations:\n  - {name: d, type: ftp}\n", "destinations[0].type"},
		{"sources:\n  - {name: web, write_keys: [k]}\nconsent: {backend: mongo}\n", "consent"},
		{"sources:\n  - {name: web, write_keys: [k]}\nfunctions:\n  - {name: f}\n", "functions[0].wasm: required"},
		{"sources:\n  - {name: web, write_keys: [k]}\nfunctions:\n  - {name: f, wasm: f.wasm, on_error: explode}\n", `functions[0].on_error: "explode": want "drop" or "deliver"`},
		{"sources:\n  - {name: web, write_keys: [k]}\nfunctions:\n  - {name: \"bad name\", wasm: f.wasm}\n", `functions[0].name: "bad name": use 1-128`},
		{"sources:\n  - {name: web, write_keys: [k]}\nfunctions:\n  - {name: f, wasm: f.wasm}\n  - {name: f, wasm: g.wasm}\n", `functions[1].name: "f" is defined twice`},
		{"sources:\n  - {name: web, write_keys: [k]}\nfunctions:\n  - {name: f, wasm: f.wasm, settings: [1]}\n", "line 4"},
		{"sources:\n  - {name: web, write_keys: [k]}\nfunctions:\n  - {name: f, wasm: f.wasm, limits: {timeout: soon}}\n", "line 4"},
		{"sources:\n  - {name: web, write_keys: [k]}\nfunctions:\n  - {name: f, wasm: f.wasm, limits: {timout: 1s}}\n", "timout"},
		{"sources:\n  - {name: web, write_keys: [k]}\ndestinations:\n  - {name: d, type: webhook, url: \"http://h\"}\n  - {name: d, type: stdout}\n", `destinations[1].name: "d" is defined twice`},
		{"sources:\n  - {name: web, write_keys: [k]}\ndestinations:\n  - {name: d, type: file, path: x, url: \"http://h\"}\n", "destinations[0].url: is an option of webhook destinations"},
		{"sources:\n  - {name: web, write_keys: [k]}\ndelivery: {backoff: {multiplier: 0.5}}\n", "delivery.backoff.multiplier: must be at least 1"},
		{"sources:\n  - {name: web, write_keys: [k]}\ndelivery: {throttle_wait: -1s}\n", "delivery.throttle_wait: must not be negative"},
		{"sources:\n  - {name: web, write_keys: [k]}\nserver: {max_event_bytes: -5}\n", "server.max_event_bytes is -5"},
		{"sources:\n  - {name: web, write_keys: [k]}\nserver: {read_timeout: -1s}\n", "server.read_timeout is -1s"},
		{"sources:\n  - {name: web, write_keys: [k]}\ndelivery: {batch_bytes: -1}\n", "delivery.batch_bytes: must not be negative"},
		{"sources:\n  - {name: web, write_keys: [k]}\ndelivery: {workers: -2}\n", "delivery.workers: must not be negative"},
		{"sources:\n  - {name: web, write_keys: [k]}\nqueue: {interval: -1s}\n", "queue.interval: must not be negative"},
		{"sources:\n  - {name: web, write_keys: [k]}\nqueue: {sync: sometimes}\n", "sometimes"},
		{"sources:\n  - {name: web, write_keys: [k]}\ndestinations:\n  - {name: d, type: stdout, filters: [{name: a, if: \"type =\", action: drop}]}\n", "destinations[0].filters[0].if: fql: at position 6: expected a value"},
		{"sources:\n  - {name: web, write_keys: [k]}\ndestinations:\n  - {name: d, type: stdout, filters: [{name: a, action: sample, percent: 5}]}\n", "destinations[0].filters[0].percent: 5: want the share kept"},
	} {
		cfg, err := Parse([]byte(c.yaml))
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.yaml, err, c.want)
		}
	}
}

func TestUnknownKeysAndSyntax(t *testing.T) {
	for _, y := range []string{"listn: x\n", "sources:\n  - name: web\n    writekeys: [k]\n", "listen: [\n"} {
		if _, err := Parse([]byte(y)); err == nil {
			t.Errorf("%q: accepted", y)
		}
	}
	_, err := Parse([]byte("sources:\n  - name: web\n    writekeys: [k]\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "writekeys") {
		t.Errorf("unknown key error %v, want line 3 and the key", err)
	}
}

func TestEmptyFileIsDefaultsButNeedsASource(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen || c.Data != DefaultData {
		t.Errorf("defaults %q %q", c.Listen, c.Data)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "sources") {
		t.Errorf("an empty file validated: %v", err)
	}
}

func TestDefault(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	os.Chdir(dir)
	defer os.Chdir(wd)
	c, err := Default("")
	if err != nil {
		t.Fatal(err)
	}
	k := c.Sources[0].WriteKeys[0]
	if b, err := os.ReadFile(filepath.Join(dir, DefaultData, "write-key")); err != nil || strings.TrimSpace(string(b)) != k {
		t.Errorf("write key %q not kept in data/write-key (%q, %v)", k, b, err)
	}
	if c.Functions[0].Wasm != ExampleFunction || c.Destinations[0].Type != "file" || c.ConsentStore().Backend != "" && c.ConsentStore().Backend != "embedded" {
		t.Errorf("default config %+v", c)
	}
}

// TestClusterMode: queue.backend jetstream runs the host in cluster mode,
// whose hosts must share their consent store; each mistake names its key.
func TestClusterMode(t *testing.T) {
	base := "sources: [{name: web, write_keys: [k]}]\n"
	c, err := Parse([]byte(base + "queue: {backend: jetstream, max_bytes: 1048576, jetstream: {urls: [nats://a:4222], replicas: 3}}\nconsent: {backend: redis, redis: {addrs: [r:6379]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || !c.Cluster() {
		t.Fatalf("a cluster configuration: %v (cluster %v)", err, c.Cluster())
	}
	if js := c.JetStream(); js.MaxBytes != 1<<20 || js.Replicas != 3 || js.URLs[0] != "nats://a:4222" {
		t.Errorf("JetStream options %+v, want queue.max_bytes carried over", js)
	}
	for _, tc := range []struct{ yaml, key string }{
		{"queue: {backend: jetstream}\n", "consent.backend"},
		{"queue: {backend: kafka}\n", "queue.backend"},
		{"queue: {backend: jetstream, jetstream: {replicas: 7}}\nconsent: {backend: redis, redis: {addrs: [r:6379]}}\n", "queue.jetstream.replicas"},
	} {
		c, err := Parse([]byte(base + tc.yaml))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: %v, want an error naming %s", tc.yaml, err, tc.key)
		}
	}
	if c, err := Parse([]byte(base)); err != nil || c.Cluster() {
		t.Errorf("the default queue is the host's own: %v %v", err, c.Cluster())
	}
}

// TestClusterPageConfiguration: the three-host configuration of
// docs/cluster.md is valid, in cluster mode.
func TestClusterPageConfiguration(t *testing.T) {
	page, err := os.ReadFile("../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(page), "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in docs/cluster.md")
	}
	c, err := Parse([]byte(block))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || !c.Cluster() || c.JetStream().Replicas != 3 {
		t.Errorf("the page's configuration: %v (cluster %v)", err, c.Cluster())
	}
}
