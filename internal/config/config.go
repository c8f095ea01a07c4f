// Package config is insertfn's configuration file: one YAML document that
// says where the server listens, where its data lives, which consent store
// it uses, which functions run for which sources, and where events go.
//
// [Load] reads and validates a file; [Default] is the configuration a
// fresh machine runs with no file at all. Every error names the key at
// fault ("sources[0].functions[1]: no function called \"x\" is defined")
// and, for YAML syntax and unknown keys, the line.
//
// Relative paths in a file (wasm modules, the data directory, file
// destinations) are relative to the file's directory; in [Default], to the
// working directory.
package config

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/consentstore/storeconfig"
	"github.com/insertfn/insertfn/internal/delivery"
	"github.com/insertfn/insertfn/internal/ingest"
	"github.com/insertfn/insertfn/internal/pipeline"
	"github.com/insertfn/insertfn/internal/pipeline/destfilter"
	"github.com/insertfn/insertfn/internal/queue"
	"github.com/insertfn/insertfn/internal/queue/jetstream"
	"github.com/insertfn/insertfn/runtime"
)

// Config is the whole configuration.
type Config struct {
	// Listen is the address the server listens on (default
	// 127.0.0.1:8080); it overrides server.listen.
	Listen string `yaml:"listen"`
	// Data is the data directory: the embedded consent store, the durable
	// queue and the default file destination live there (default ./data).
	Data string `yaml:"data"`
	// Server holds the ingest's limits and timeouts.
	Server ingest.Config `yaml:"server"`
	// Admin is the admin API's listener (default 127.0.0.1:8081) and
	// token; without a token one is generated and kept in DATA/admin-token.
	Admin admin.Config `yaml:"admin"`
	// Consent chooses and configures the consent store. With the embedded
	// backend and no dir, the store lives in DATA/consent.
	Consent storeconfig.Config `yaml:"consent"`
	// Queue configures the durable queue: one host's in DATA/queue (the
	// default), or a cluster's on NATS JetStream.
	Queue Queue `yaml:"queue"`
	// Functions are the functions sources and destinations may name.
	Functions []Function `yaml:"functions"`
	// Sources are where events come from: write keys and source functions.
	Sources []Source `yaml:"sources"`
	// Destinations are where events go, with their consent categories.
	Destinations []Destination `yaml:"destinations"`
	// Delivery tunes processing and delivery.
	Delivery Delivery `yaml:"delivery"`
	// Runtime bounds what functions may cost the host together: the
	// memory budget of all their instances, the module limits checked
	// before compilation, and the compilation's time limit.
	Runtime Runtime `yaml:"runtime"`

	dir string // the file's directory, for relative paths
}

// Runtime is the runtime's engine-wide configuration (runtime.Config);
// zero fields take the runtime's defaults.
type Runtime struct {
	// MemoryBudget bounds the memory of all instances of all functions, in
	// bytes: each instance counts for its memory cap (limits.memory_pages)
	// plus runtime.InstanceOverhead. 0: half the machine's memory (or its
	// cgroup's limit); negative: no budget.
	MemoryBudget int64 `yaml:"memory_budget"`
	// CompileTimeout bounds one module's compilation (default 1m).
	CompileTimeout time.Duration `yaml:"compile_timeout"`
	// ModuleLimits are checked before a module is compiled; the runtime
	// owns them and validates them.
	runtime.ModuleLimits `yaml:",inline"`
}

// RuntimeConfig returns the runtime's engine configuration: the runtime
// section, and the compilation cache in DATA/compile-cache.
func (c *Config) RuntimeConfig() runtime.Config {
	r := c.Runtime
	return runtime.Config{
		CacheDir:       filepath.Join(c.DataDir(), "compile-cache"),
		MemoryBudget:   r.MemoryBudget,
		CompileTimeout: r.CompileTimeout,
		ModuleLimits:   r.ModuleLimits,
	}
}

// keyError is what each section's own validation returns for one key
// (functions.ManifestError, delivery.ConfigError, ingest.SourceError,
// runtime.LimitError): the key below the section, and what is wrong.
type keyError interface {
	error
	ConfigKey() string
	ConfigProblem() string
}

// Function is one function: its manifest, written in YAML with the keys
// of a JSON manifest (name, wasm, settings, limits, on_error, retries). It
// is the type the registry deploys; its wasm is relative to the
// configuration file.
type Function = functions.Manifest

// Source is one source of events.
type Source struct {
	ingest.Source `yaml:",inline"`
	// Functions are the source functions its events run through, in order.
	Functions []string `yaml:"functions"`
}

// Destination is one destination: its sink (type and options), the
// consent categories it is mapped to, and its own functions.
type Destination struct {
	// Destination is what the pipeline knows of it: name, categories,
	// functions.
	pipeline.Destination `yaml:",inline"`
	// Config is its sink: type and options.
	delivery.Config `yaml:",inline"`
}

// Delivery tunes processing and delivery: the delivery package's
// settings, as the pipeline takes them.
type Delivery = delivery.Settings

// Defaults of a configuration.
const (
	DefaultListen = "127.0.0.1:8080"
	DefaultData   = "data"
)

// ExampleFunction is the wasm [Default] runs: the consent-match example
// as `make examples` builds it.
const ExampleFunction = "bin/examples/consent-match.wasm"

// Load reads, defaults and validates the configuration file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.dir = abs
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a YAML configuration, refusing unknown keys, and fills in
// defaults. It does not validate: call [Config.Validate].
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // EOF: an empty file
		return nil, err
	}
	c.defaults()
	return &c, nil
}

// Default returns the configuration of a fresh machine: the server on
// 127.0.0.1:8080, everything under ./data, the embedded consent store,
// the consent-match example as the function of one source "default", and
// an NDJSON file destination data/events.ndjson. The write key is writeKey,
// or else the one [WriteKey] keeps in the data directory.
func Default(writeKey string) (*Config, error) {
	c := &Config{
		Functions: []Function{{Name: "consent-match", Wasm: ExampleFunction}},
		Sources:   []Source{{Source: ingest.Source{Name: "default"}, Functions: []string{"consent-match"}}},
		Destinations: []Destination{{Destination: pipeline.Destination{Name: "events-file"},
			Config: delivery.Config{Type: "file", FileConfig: delivery.FileConfig{Path: filepath.Join(DefaultData, "events.ndjson")}}}},
	}
	c.defaults()
	if writeKey == "" {
		k, err := WriteKey(c.Data)
		if err != nil {
			return nil, err
		}
		writeKey = k
	}
	c.Sources[0].WriteKeys = []string{writeKey}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// WriteKey returns the write key kept in dir/write-key, creating a random
// one on first use, so that a default server keeps its key across restarts.
func WriteKey(dir string) (string, error) {
	path := filepath.Join(dir, "write-key")
	if b, err := os.ReadFile(path); err == nil {
		if k := strings.TrimSpace(string(b)); k != "" {
			return k, nil
		}
	}
	var buf [16]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return "", fmt.Errorf("config: making a write key: %w", err)
	}
	k := hex.EncodeToString(buf[:])
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("config: data directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("config: saving the write key: %w", err)
	}
	return k, nil
}

func (c *Config) defaults() {
	if c.Data == "" {
		c.Data = DefaultData
	}
	if c.Listen == "" {
		c.Listen = c.Server.Listen
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	c.Server.Listen = c.Listen
}

// Path resolves a path from the configuration: relative paths are relative
// to the configuration file's directory (the working directory for
// [Default]).
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// DataDir returns the resolved data directory.
func (c *Config) DataDir() string { return c.Path(c.Data) }

// ConsentStore returns the consent store's configuration with its paths
// resolved: the embedded store defaults to DATA/consent.
func (c *Config) ConsentStore() storeconfig.Config {
	s := c.Consent
	if s.Dir == "" {
		s.Dir = filepath.Join(c.DataDir(), "consent")
	} else {
		s.Dir = c.Path(s.Dir)
	}
	return s
}

// The values of Queue.Backend.
const (
	QueuePebble    = "pebble"
	QueueJetStream = "jetstream"
)

// Queue configures the durable queue. Its keys beside backend and
// jetstream (sync, interval, max_bytes, ...) are the Pebble queue's;
// max_bytes bounds the JetStream queue too, unless jetstream.max_bytes
// says otherwise.
type Queue struct {
	queue.Options `yaml:",inline"`
	// Backend is "pebble" (the default: this host's queue, in
	// DATA/queue) or "jetstream" (cluster mode: every host of the cluster
	// shares one queue on a NATS JetStream cluster, and its consent store
	// must be one they share too, redis or http).
	Backend string `yaml:"backend"`
	// JetStream is the NATS JetStream queue's configuration (backend:
	// jetstream).
	JetStream jetstream.Options `yaml:"jetstream"`
}

// Cluster reports whether the configuration runs the host in cluster
// mode (the JetStream queue).
func (c *Config) Cluster() bool { return c.Queue.Backend == QueueJetStream }

// JetStream returns the JetStream queue's options, max_bytes filled in
// from queue.max_bytes when jetstream.max_bytes is not set.
func (c *Config) JetStream() jetstream.Options {
	o := c.Queue.JetStream
	if o.MaxBytes == 0 {
		o.MaxBytes = c.Queue.MaxBytes
	}
	return o
}

// QueuePath returns where the durable queue lives.
func (c *Config) QueuePath() string { return filepath.Join(c.DataDir(), queue.DirName) }

// Validate checks the whole configuration and reports every problem it
// finds, each naming its key. Each section is validated by the package it
// configures (the consent store, the runtime's limits, the functions'
// manifests, the ingest's sources and limits, the destinations' sinks, the
// delivery settings); Validate prefixes their keys with the section's path
// and itself checks what no section can alone: names defined twice, the
// functions sources and destinations name, write keys shared by sources.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	// under reports a section's error under key: a keyError names its own
	// key below it.
	var under func(key string, err error)
	under = func(key string, err error) {
		var ke keyError
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				under(key, e)
			}
		} else if errors.As(err, &ke) {
			bad(key+"."+ke.ConfigKey(), "%s", ke.ConfigProblem())
		} else if err != nil {
			bad(key, "%v", err)
		}
	}
	if err := c.Consent.Validate(); err != nil {
		bad("consent", "%v", err)
	}
	if c.Runtime.CompileTimeout < 0 {
		bad("runtime.compile_timeout", "%s is negative", c.Runtime.CompileTimeout)
	}
	under("runtime", c.Runtime.ModuleLimits.Validate())
	fns := make(map[string]bool)
	for i, f := range c.Functions {
		key := fmt.Sprintf("functions[%d]", i)
		if fns[f.Name] {
			bad(key+".name", "%q is defined twice", f.Name)
		}
		fns[f.Name] = true
		under(key, f.ValidateFile()) // f is a copy: the configuration keeps its zero fields
	}
	refs := func(key string, names []string) {
		for j, n := range names {
			if !fns[n] {
				bad(fmt.Sprintf("%s.functions[%d]", key, j), "no function called %q is defined under functions", n)
			}
		}
	}
	if len(c.Sources) == 0 {
		bad("sources", "at least one source is needed (name, write_keys, functions)")
	}
	srcs, keys := make(map[string]bool), make(map[string]string)
	for i, s := range c.Sources {
		key := fmt.Sprintf("sources[%d]", i)
		under(key, s.Source.Validate())
		if srcs[s.Name] {
			bad(key+".name", "%q is defined twice", s.Name)
		}
		srcs[s.Name] = true
		for j, k := range s.WriteKeys {
			if other, dup := keys[k]; dup && k != "" {
				bad(fmt.Sprintf("%s.write_keys[%d]", key, j), "already the write key of source %q", other)
			}
			keys[k] = s.Name
		}
		refs(key, s.Functions)
	}
	dests := make(map[string]bool)
	for i, d := range c.Destinations {
		key := fmt.Sprintf("destinations[%d]", i)
		switch {
		case d.Name == "" || d.Name == "All":
			bad(key+".name", "%q: a destination needs a name other than All (as events' integrations objects spell it)", d.Name)
		case dests[d.Name]:
			bad(key+".name", "%q is defined twice", d.Name)
		}
		dests[d.Name] = true
		for j, cat := range d.Categories {
			if cat == "" {
				bad(fmt.Sprintf("%s.categories[%d]", key, j), "empty")
			}
		}
		refs(key, d.Functions)
		if _, err := destfilter.Compile(d.Filters); err != nil {
			under(key, err)
		}
		under(key, d.Config.Validate())
	}
	if err := c.Server.Validate(); err != nil {
		errs = append(errs, err) // its errors name their server.* keys
	}
	under("delivery", c.Delivery.Validate())
	if c.Queue.Interval < 0 {
		bad("queue.interval", "must not be negative (0 means the default)")
	}
	switch c.Queue.Backend {
	case "", QueuePebble:
	case QueueJetStream:
		under("queue.jetstream", c.Queue.JetStream.Validate())
		if b := c.ConsentStore().WithDefaults().Backend; b != storeconfig.Redis && b != storeconfig.HTTP {
			bad("consent.backend", "%q keeps consent on one host; in cluster mode (queue.backend: jetstream) the hosts must share their consent store: use redis or http", b)
		}
	default:
		bad("queue.backend", "%q: want %q (this host's queue, the default) or %q (cluster mode)", c.Queue.Backend, QueuePebble, QueueJetStream)
	}
	return errors.Join(errs...)
}
