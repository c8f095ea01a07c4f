package delivery

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Destination types a [Config] can name.
const (
	TypeWebhook = "webhook"
	TypeFile    = "file"
	TypeStdout  = "stdout"
)

// Config describes one destination's sink as the YAML configuration spells
// it: a type and that type's options side by side.
//
//	type: webhook
//	url: https://collector.example.com/v1/batch
//	headers: {Authorization: "Bearer ..."}
//	timeout: 5s
//
//	type: file
//	path: ./data/events.ndjson
//	max_bytes: 104857600
//
// The options of the other types must be left out; [Config.Validate] says
// so if they are not. A caller embedding Config in a larger struct uses
// `yaml:",inline"` to keep the options at the destination's level.
type Config struct {
	// Type is "webhook", "file" or "stdout".
	Type string `yaml:"type" json:"type"`
	// WebhookConfig holds the options of type webhook.
	WebhookConfig `yaml:",inline"`
	// FileConfig holds the options of type file.
	FileConfig `yaml:",inline"`
}

// Validate checks the type and its options and reports the first problem
// as a [*ConfigError] naming the key ("type", "url", "headers.X-Key",
// "max_bytes"...).
func (c *Config) Validate() error {
	switch c.Type {
	case TypeWebhook:
		if err := c.WebhookConfig.Validate(); err != nil {
			return err
		}
		return otherOptions(c.Type, "file", &c.FileConfig)
	case TypeFile:
		if err := c.FileConfig.Validate(); err != nil {
			return err
		}
		return otherOptions(c.Type, "webhook", &c.WebhookConfig)
	case TypeStdout:
		if err := otherOptions(c.Type, "webhook", &c.WebhookConfig); err != nil {
			return err
		}
		return otherOptions(c.Type, "file", &c.FileConfig)
	case "":
		return &ConfigError{Key: "type", Problem: "required: webhook, file or stdout"}
	default:
		return &ConfigError{Key: "type", Problem: fmt.Sprintf("unknown destination type %q (want webhook, file or stdout)", c.Type)}
	}
}

// otherOptions returns an error naming the first non-zero field of opts,
// options of another type than typ.
func otherOptions(typ, other string, opts any) error {
	v := reflect.ValueOf(opts).Elem()
	t := v.Type()
	for i := range t.NumField() {
		if v.Field(i).IsZero() {
			continue
		}
		key := t.Field(i).Tag.Get("yaml")
		if j := strings.IndexByte(key, ','); j >= 0 {
			key = key[:j]
		}
		return &ConfigError{Key: key, Problem: fmt.Sprintf("is an option of %s destinations, not of type %s", other, typ)}
	}
	return nil
}

// Open validates cfg and opens its sink: a [*Webhook], a [*File], or a
// [*Stdout] writing to os.Stdout. The caller closes it.
func Open(cfg Config) (Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch cfg.Type {
	case TypeWebhook:
		return NewWebhook(cfg.WebhookConfig)
	case TypeFile:
		return NewFile(cfg.FileConfig)
	default:
		return NewStdout(nil), nil
	}
}

// Settings tune processing and delivery: the configuration's delivery
// section, as the pipeline takes it (pipeline.Options). Zero fields take
// the pipeline's defaults.
//
//	workers: 8
//	batch_size: 500
//	batch_bytes: 510976
//	throttle_bytes: 4194304
//	throttle_wait: 1s
//	backoff: {initial: 500ms, max: 5m, multiplier: 2, jitter: 0.2, max_attempts: 58}
type Settings struct {
	// Workers process the inbox (default 8).
	Workers int `yaml:"workers" json:"workers"`
	// BatchSize is the most events one delivery carries, and how many
	// accepted requests (each one item in the inbox) a worker processes
	// at once (default 500).
	BatchSize int `yaml:"batch_size" json:"batch_size"`
	// BatchBytes bounds the bytes of the events delivered at once, and of
	// the requests processed at once (default 1 KB under Segment's 500 KB
	// /v1/batch limit, so that a webhook's batch body stays within it).
	BatchBytes int `yaml:"batch_bytes" json:"batch_bytes"`
	// ThrottleBytes is the backlog (events waiting to be processed, and
	// what the backlogs of destinations that are up grew by) above which
	// ingest waits for the pipeline to catch up (default 4 MiB;
	// negative: never).
	ThrottleBytes int64 `yaml:"throttle_bytes" json:"throttle_bytes"`
	// ThrottleWait is the longest a request waits so before its events
	// are accepted all the same (default 1s).
	ThrottleWait time.Duration `yaml:"throttle_wait" json:"throttle_wait"`
	// Backoff is the retry policy of deliveries.
	Backoff Backoff `yaml:"backoff" json:"backoff"`
}

// Validate reports every field out of range, each a [*ConfigError] naming
// its key ("workers", "backoff.initial"...), joined.
func (s *Settings) Validate() error {
	var errs []error
	for _, n := range []struct {
		key      string
		negative bool
	}{
		{"workers", s.Workers < 0},
		{"batch_size", s.BatchSize < 0},
		{"batch_bytes", s.BatchBytes < 0},
		{"throttle_wait", s.ThrottleWait < 0},
	} {
		if n.negative {
			errs = append(errs, &ConfigError{Key: n.key, Problem: "must not be negative (0 means the default)"})
		}
	}
	if err := s.Backoff.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			err = &ConfigError{Key: "backoff." + ce.Key, Problem: ce.Problem}
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
