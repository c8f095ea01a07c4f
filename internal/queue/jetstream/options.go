package jetstream

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/insertfn/insertfn/internal/queue"
)

// Defaults of [Options].
const (
	DefaultURL             = "nats://127.0.0.1:4222"
	DefaultPrefix          = "INSERTFN"
	DefaultAckWait         = 30 * time.Second
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultTimeout         = 5 * time.Second
	// DefaultReplicas is the replicas of a clustered server's streams
	// when Options.Replicas is 0; a server that is not in a cluster gets 1.
	DefaultReplicas = 3
	// MaxReplicas is the most replicas NATS keeps of a stream.
	MaxReplicas = 5
)

// Storage values of [Options.Storage].
const (
	StorageFile   = "file"
	StorageMemory = "memory"
)

// Options configure a JetStream queue. The zero value connects to a
// server on 127.0.0.1:4222 without credentials and uses the defaults
// below; in a configuration file they are the keys under
// queue.jetstream (the yaml tags).
type Options struct {
	// URLs are NATS servers' URLs ("nats://host:4222", "tls://..."),
	// any of the cluster's: the client learns the others from the one it
	// reaches, and reconnects to another when its server goes away.
	// Empty: DefaultURL.
	URLs []string `json:"urls" yaml:"urls"`

	// CredentialsFile is a NATS credentials file (a user JWT and its
	// NKey seed, as nsc writes it). At most one of CredentialsFile,
	// User (with Password) and Token.
	CredentialsFile string `json:"credentials_file" yaml:"credentials_file"`
	// User and Password authenticate with a user name and password.
	User     string `json:"user" yaml:"user"`
	Password string `json:"password" yaml:"password"`
	// Token authenticates with a token.
	Token string `json:"token" yaml:"token"`

	// TLS configures TLS to the servers; a tls:// URL or a CA file turns
	// it on.
	TLS TLSOptions `json:"tls" yaml:"tls"`

	// Replicas is how many servers keep each stream (1 to 5): 3 keeps
	// every acknowledged item through the loss of one server. 0:
	// DefaultReplicas on a clustered server, 1 on a lone one. A change
	// takes effect on the streams at the next Open (NATS scales them).
	Replicas int `json:"replicas" yaml:"replicas"`

	// Prefix begins the names of the queue's streams and subjects
	// (letters, digits, '-' and '_'; at most 32): the queues of several
	// insertfn clusters may share one NATS system under different
	// prefixes. Empty: DefaultPrefix. Changing it starts an empty queue.
	Prefix string `json:"prefix" yaml:"prefix"`

	// MaxBytes bounds the bytes the queue's streams hold together (items,
	// dead letters, as the servers count them: data, subject, headers
	// and about 30 bytes a message): Append fails with an error wrapping
	// queue.ErrFull beyond it, which the server answers with 503. Each
	// stream is also created with it as its own limit, which the servers
	// enforce (a write past it is refused, "discard new"). 0:
	// queue.DefaultMaxBytes; negative: no bound.
	MaxBytes int64 `json:"max_bytes" yaml:"max_bytes"`

	// AckWait is how long an item handed out stays with its host without
	// word from it: a host keeps the items it holds alive (every third of
	// AckWait), so this is how long the items of a host that died wait
	// before the other hosts get them. 0: DefaultAckWait.
	AckWait time.Duration `json:"ack_wait" yaml:"ack_wait"`

	// DuplicateWindow is how long a stream remembers the message ids of
	// a Move's items, so that a Move replayed after a crash (its items
	// came back after AckWait) adds nothing twice. It must exceed
	// AckWait. The servers keep each id in memory for that long. 0:
	// DefaultDuplicateWindow.
	DuplicateWindow time.Duration `json:"duplicate_window" yaml:"duplicate_window"`

	// Storage is where the streams keep their messages: "file" (the
	// default) or "memory" (lost when a server stops; for tests).
	Storage string `json:"storage" yaml:"storage"`

	// Compression is how items are stored: "s2" (the default) compresses
	// each message's data with S2 when that makes it an eighth smaller
	// or more, "none" stores it as it is. Each host reads both, whatever
	// its own setting. See encoding.go.
	Compression string `json:"compression" yaml:"compression"`

	// Timeout bounds each request to the servers (a publish's
	// acknowledgement, a stream's information) when the caller's context
	// has no earlier deadline. 0: DefaultTimeout.
	Timeout time.Duration `json:"timeout" yaml:"timeout"`

	// Name is the connection's name in the servers' monitoring. Empty:
	// "insertfn".
	Name string `json:"name" yaml:"name"`
}

// TLSOptions configure TLS to the NATS servers.
type TLSOptions struct {
	// CAFile is a PEM file of the certificate authorities that sign the
	// servers' certificates; empty: the system's.
	CAFile string `json:"ca_file" yaml:"ca_file"`
	// CertFile and KeyFile are the client's certificate and key (PEM),
	// for servers that verify clients; both or neither.
	CertFile string `json:"cert_file" yaml:"cert_file"`
	KeyFile  string `json:"key_file" yaml:"key_file"`
}

// KeyError is the error of one key of Options: Validate returns them
// joined. Its ConfigKey is the key below queue.jetstream ("replicas");
// its Error names the whole key ("queue.jetstream.replicas: ...").
type KeyError struct {
	Key     string
	Problem string
}

func (e *KeyError) Error() string { return "queue.jetstream." + e.Key + ": " + e.Problem }

// ConfigKey returns the key below queue.jetstream.
func (e *KeyError) ConfigKey() string { return e.Key }

// ConfigProblem returns what is wrong with it.
func (e *KeyError) ConfigProblem() string { return e.Problem }

// Validate checks the options without connecting and reports every
// problem it finds, each a *KeyError naming its key.
func (o *Options) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &KeyError{Key: key, Problem: fmt.Sprintf(format, args...)})
	}
	dur := func(key string, d time.Duration) {
		switch {
		case d < 0:
			bad(key, "negative (%v)", d)
		case d > 0 && d < time.Millisecond:
			bad(key, "%v is less than a millisecond: a number without a unit is nanoseconds; write e.g. \"30s\"", d)
		}
	}
	for i, u := range o.URLs {
		if strings.TrimSpace(u) == "" {
			bad(fmt.Sprintf("urls[%d]", i), "empty; want e.g. nats://host:4222")
		}
	}
	auth := 0
	if o.CredentialsFile != "" {
		auth++
	}
	if o.User != "" || o.Password != "" {
		auth++
		if o.User == "" {
			bad("user", "empty while a password is set")
		}
	}
	if o.Token != "" {
		auth++
	}
	if auth > 1 {
		bad("credentials_file", "set with user/password or token: choose one way to authenticate")
	}
	for _, f := range []struct{ key, path string }{
		{"credentials_file", o.CredentialsFile}, {"tls.ca_file", o.TLS.CAFile},
		{"tls.cert_file", o.TLS.CertFile}, {"tls.key_file", o.TLS.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			bad(f.key, "%v", err)
		}
	}
	if (o.TLS.CertFile == "") != (o.TLS.KeyFile == "") {
		bad("tls.key_file", "tls.cert_file and tls.key_file go together")
	}
	if o.Replicas < 0 || o.Replicas > MaxReplicas {
		bad("replicas", "%d is not between 1 and %d (0: %d in a cluster, 1 on a lone server)", o.Replicas, MaxReplicas, DefaultReplicas)
	}
	if err := checkPrefix(o.Prefix); err != nil {
		bad("prefix", "%v", err)
	}
	dur("ack_wait", o.AckWait)
	dur("duplicate_window", o.DuplicateWindow)
	dur("timeout", o.Timeout)
	if o.AckWait >= time.Millisecond && o.AckWait < 100*time.Millisecond {
		bad("ack_wait", "%v is too short for a host to keep its items (at least 100ms; 30s is usual)", o.AckWait)
	}
	if d := o.duplicateWindow(); d <= o.ackWait() {
		bad("duplicate_window", "%v must exceed ack_wait (%v): a Move replayed after a crash must still find the ids of its first try", d, o.ackWait())
	}
	switch o.Compression {
	case "", CompressionS2, CompressionNone:
	default:
		bad("compression", "unknown compression %q; want s2 or none", o.Compression)
	}
	switch o.Storage {
	case "", StorageFile, StorageMemory:
	default:
		bad("storage", "unknown storage %q; want file or memory", o.Storage)
	}
	return errors.Join(errs...)
}

// checkPrefix checks a stream name prefix ("" is the default's).
func checkPrefix(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > 32 {
		return fmt.Errorf("%q is %d bytes, the most is 32", p, len(p))
	}
	for _, c := range []byte(p) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%q: only letters, digits, '-' and '_' may name streams and subjects", p)
		}
	}
	return nil
}

func (o *Options) prefix() string {
	if o.Prefix == "" {
		return DefaultPrefix
	}
	return o.Prefix
}

func (o *Options) urls() string {
	if len(o.URLs) == 0 {
		return DefaultURL
	}
	return strings.Join(o.URLs, ",")
}

func (o *Options) maxBytes() int64 {
	if o.MaxBytes == 0 {
		return queue.DefaultMaxBytes
	}
	return o.MaxBytes
}

func (o *Options) ackWait() time.Duration {
	if o.AckWait <= 0 {
		return DefaultAckWait
	}
	return o.AckWait
}

func (o *Options) duplicateWindow() time.Duration {
	if o.DuplicateWindow <= 0 {
		return max(DefaultDuplicateWindow, 2*o.ackWait())
	}
	return o.DuplicateWindow
}

func (o *Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}
