package ingest

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Defaults applied by [New] to the zero fields of a [Config].
const (
	// DefaultListen is the address [Server.ListenAndServe] listens on: the
	// loopback interface only, so a default install is not reachable from
	// the network until the operator says so.
	DefaultListen = "127.0.0.1:8080"
	// DefaultMaxEventBytes bounds one event: the body of a single call, or
	// one element of a batch (Segment's 32 KB).
	DefaultMaxEventBytes = 32 << 10
	// DefaultMaxBatchBytes bounds the body of /v1/batch and /v1/import
	// after decompression (Segment's 500 KB).
	DefaultMaxBatchBytes = 500 << 10
	// DefaultMaxBatchEvents bounds the number of events in one batch
	// (Segment's 2500).
	DefaultMaxBatchEvents = 2500
	// DefaultMaxHeaderBytes bounds a request's line and headers (as
	// nginx's large_client_header_buffers does by default).
	DefaultMaxHeaderBytes = 8 << 10
	// DrainFactor times the larger body limit is how much of an oversized
	// body is read and discarded before its 413 (see
	// [Config.MaxBatchBytes]).
	DrainFactor = 16
	// DefaultReadTimeout, DefaultWriteTimeout and DefaultIdleTimeout bound
	// slow clients and idle keep-alive connections.
	DefaultReadTimeout  = 10 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	DefaultIdleTimeout  = 60 * time.Second
	// DefaultDedupeWindow is how many recent messageIds each source
	// remembers to drop client retries of events it already accepted.
	DefaultDedupeWindow = 100_000
	// DefaultRetryAfter is the Retry-After of a 429 answered because the
	// [Accepter] reported [ErrBackpressure].
	DefaultRetryAfter = time.Second
	// MaxMessageIDLength is the longest messageId accepted, in characters
	// (Segment: "under 100 characters").
	MaxMessageIDLength = 100
)

// Config is the server's configuration. The zero value is usable: [New]
// fills every zero field with its default.
type Config struct {
	// Listen is the address ListenAndServe listens on (host:port).
	// Default [DefaultListen].
	Listen string `yaml:"listen" json:"listen"`

	// MaxEventBytes bounds one event: the decompressed body of a single
	// call (/v1/track and the like; over it the answer is 413), and each
	// element of a batch as it appears in the batch (over it that element
	// is rejected, see [Config.StrictBatch]). Default [DefaultMaxEventBytes].
	MaxEventBytes int `yaml:"max_event_bytes" json:"max_event_bytes"`
	// MaxBatchBytes bounds the decompressed body of /v1/batch and
	// /v1/import; over it the answer is 413. Default [DefaultMaxBatchBytes].
	//
	// The limits also bound decompression: a gzip body is inflated only up
	// to the limit of its route, so a small "gzip bomb" costs no more than
	// an honest body of the largest accepted size. A gzip body as sent on
	// the wire may be at most max(MaxEventBytes, MaxBatchBytes) plus 64
	// KiB (room for gzip's framing of incompressible data).
	//
	// A body over its limit is answered with the JSON 413 after it has
	// been read and discarded, up to [DrainFactor] times
	// max(MaxEventBytes, MaxBatchBytes) (8 MiB by default): most clients
	// write the whole body before they read the answer, and one answered
	// and disconnected mid-body sees a reset connection instead, which it
	// cannot tell from a network fault. A body longer still (by its
	// Content-Length, or once that much is read) gets the same 413, and
	// the connection is closed without reading the rest: a client still
	// writing may then see the reset.
	MaxBatchBytes int `yaml:"max_batch_bytes" json:"max_batch_bytes"`
	// MaxBatchEvents bounds the number of events in one batch; over it the
	// whole batch is refused with 413 and nothing is accepted.
	// Default [DefaultMaxBatchEvents].
	MaxBatchEvents int `yaml:"max_batch_events" json:"max_batch_events"`

	// MaxHeaderBytes bounds the request line and headers of one request
	// (cookies included, for a first-party endpoint); over it the answer
	// is 431. Each connection holds a read buffer of this size.
	// Default [DefaultMaxHeaderBytes].
	MaxHeaderBytes int `yaml:"max_header_bytes" json:"max_header_bytes"`

	// ReadTimeout bounds reading one request, headers and body.
	// Default [DefaultReadTimeout].
	ReadTimeout time.Duration `yaml:"read_timeout" json:"read_timeout"`
	// WriteTimeout bounds writing one response. Default [DefaultWriteTimeout].
	WriteTimeout time.Duration `yaml:"write_timeout" json:"write_timeout"`
	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request. Default [DefaultIdleTimeout].
	IdleTimeout time.Duration `yaml:"idle_timeout" json:"idle_timeout"`

	// DedupeWindow is how many recent messageIds each source remembers:
	// an event whose messageId is among them is answered 200 but not
	// handed to the [Accepter] again (clients retry whole batches after a
	// timeout, so the same event can arrive twice). The oldest id is
	// forgotten first. Zero means [DefaultDedupeWindow]; a negative value
	// turns deduplication off. Memory: about 40 bytes per remembered id.
	DedupeWindow int `yaml:"dedupe_window" json:"dedupe_window"`

	// StrictBatch chooses what a batch with some invalid events does.
	//
	// False (the default, what loses least): the valid events are accepted
	// and the answer is 200 {"success":true,"rejected":[{"index":i,
	// "error":"..."}]} naming each invalid one; a retry of the same batch
	// has the same effect (duplicates are dropped by messageId). If no
	// event is valid the answer is the first one's error (400 or 413).
	// Clients treat any 4xx as a failure of the whole batch: analytics-go
	// v3.3.0 retries every status >= 300 ten times and then drops the
	// batch, analytics-node drops it at once; so refusing a batch for one
	// bad event would lose every good event in it, while the bad one can
	// never succeed anyway.
	//
	// True: one invalid event refuses the whole batch (400, or 413 for an
	// oversized event) naming its index and reason, and nothing in it is
	// accepted.
	StrictBatch bool `yaml:"strict_batch" json:"strict_batch"`

	// RetryAfter is the Retry-After (rounded up to whole seconds) of a 429
	// answered when the [Accepter] reports [ErrBackpressure].
	// Default [DefaultRetryAfter].
	RetryAfter time.Duration `yaml:"retry_after" json:"retry_after"`
}

// wireLimit is the longest body read as sent: a gzip body of the largest
// route, with room for gzip's framing of incompressible data.
func (cfg Config) wireLimit() int { return max(cfg.MaxBatchBytes, cfg.MaxEventBytes) + 64<<10 }

// drainLimit is how much of an oversized body is read and discarded
// before its 413.
func (cfg Config) drainLimit() int { return DrainFactor * max(cfg.MaxBatchBytes, cfg.MaxEventBytes) }

// Source is one source of events: the name events are accepted under and
// the write keys that authenticate its clients.
type Source struct {
	// Name is passed to [Accepter.Accept] with the source's events.
	Name string `yaml:"name" json:"name"`
	// WriteKeys are the keys a client may send (as the HTTP Basic user
	// name, or as writeKey in the body). Several keys allow rotation.
	WriteKeys []string `yaml:"write_keys" json:"write_keys"`
	// AllowedOrigins are the browser origins (the Origin header) whose
	// pages may send this source's events: "https://shop.example.com",
	// "https://*.example.com" for its subdomains, or "*". Empty (the
	// default) accepts any origin, as Segment does: a write key is public
	// in every page that uses it, so an origin list is a guard against
	// other sites spending a key, not authentication. A browser request
	// from another origin is answered 403, with the CORS headers that let
	// the page read why; a request without an Origin header (a server's
	// library) is not restricted.
	AllowedOrigins []string `yaml:"allowed_origins" json:"allowed_origins"`
}

// Validate reports every field of cfg that makes no sense, each named by
// its configuration key (server.max_event_bytes, ...).
func (cfg Config) Validate() error {
	_, err := cfg.withDefaults()
	return err
}

// withDefaults returns cfg with every zero field set to its default, or an
// error naming every field that makes no sense.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&cfg.MaxEventBytes, DefaultMaxEventBytes)
	setInt(&cfg.MaxBatchBytes, DefaultMaxBatchBytes)
	setInt(&cfg.MaxBatchEvents, DefaultMaxBatchEvents)
	setInt(&cfg.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setInt(&cfg.DedupeWindow, DefaultDedupeWindow)
	setDur(&cfg.ReadTimeout, DefaultReadTimeout)
	setDur(&cfg.WriteTimeout, DefaultWriteTimeout)
	setDur(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDur(&cfg.RetryAfter, DefaultRetryAfter)
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max_event_bytes", cfg.MaxEventBytes},
		{"max_batch_bytes", cfg.MaxBatchBytes},
		{"max_batch_events", cfg.MaxBatchEvents},
		{"max_header_bytes", cfg.MaxHeaderBytes},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("server.%s is %d; it must be positive (or 0 for the default)", f.name, f.v))
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"read_timeout", cfg.ReadTimeout},
		{"write_timeout", cfg.WriteTimeout},
		{"idle_timeout", cfg.IdleTimeout},
		{"retry_after", cfg.RetryAfter},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("server.%s is %v; it must be positive (or 0 for the default)", f.name, f.v))
		}
	}
	return cfg, errors.Join(errs...)
}

// SourceError is a problem with one field of a [Source], named by its
// configuration key below the source ("name", "write_keys[1]",
// "allowed_origins[0]").
type SourceError struct {
	Key, Problem string
}

// ConfigKey returns the key at fault, below its section.
func (e *SourceError) ConfigKey() string { return e.Key }

// ConfigProblem says what is wrong with the key.
func (e *SourceError) ConfigProblem() string { return e.Problem }

func (e *SourceError) Error() string { return e.Key + ": " + e.Problem }

// sourceName is what a source may be called: it names the source in
// metrics, logs and the overview page.
var sourceName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// Validate reports every problem of the source on its own, each a
// [*SourceError], joined; what concerns several sources (a name or a
// write key used twice) is [New]'s to check.
func (s *Source) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &SourceError{Key: key, Problem: fmt.Sprintf(format, args...)})
	}
	if !sourceName.MatchString(s.Name) {
		bad("name", "%q: want 1-128 letters, digits, '-', '_' or '.'", s.Name)
	}
	if len(s.WriteKeys) == 0 {
		bad("write_keys", "at least one write key is needed")
	}
	for j, k := range s.WriteKeys {
		if k == "" {
			bad(fmt.Sprintf("write_keys[%d]", j), "empty")
		}
	}
	for j, o := range s.AllowedOrigins {
		if err := CheckOrigin(o); err != nil {
			bad(fmt.Sprintf("allowed_origins[%d]", j), "%v", err)
		}
	}
	return errors.Join(errs...)
}

// checkSources reports each source's own problems ([Source.Validate]) and
// those between sources: names used twice, write keys shared.
func checkSources(sources []Source) error {
	var errs []error
	names := make(map[string]bool, len(sources))
	keys := make(map[string]string)
	for i := range sources {
		src := &sources[i]
		if err := src.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("server: sources[%d]: %w", i, err))
		}
		if names[src.Name] {
			errs = append(errs, fmt.Errorf("server: source %q is defined twice; source names must be unique", src.Name))
		}
		names[src.Name] = true
		for _, k := range src.WriteKeys {
			switch other, dup := keys[k]; {
			case k == "":
			case dup && other == src.Name:
				errs = append(errs, fmt.Errorf("server: source %q lists a write key twice", src.Name))
			case dup:
				errs = append(errs, fmt.Errorf("server: sources %q and %q share a write key; each key must name one source", other, src.Name))
			}
			keys[k] = src.Name
		}
	}
	return errors.Join(errs...)
}
