package delivery

import (
	"fmt"
	"reflect"
	"strings"
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
