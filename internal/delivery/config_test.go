package delivery

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		key  string
		msg  string
	}{
		{"no type", Config{}, "type", "required"},
		{"unknown type", Config{Type: "kafka"}, "type", `unknown destination type "kafka"`},
		{"webhook without url", Config{Type: "webhook"}, "url", "required"},
		{"webhook bad scheme", Config{Type: "webhook", WebhookConfig: WebhookConfig{URL: "ftp://x/y"}}, "url", "http or https"},
		{"webhook no host", Config{Type: "webhook", WebhookConfig: WebhookConfig{URL: "http:///y"}}, "url", "no host"},
		{"webhook bad url", Config{Type: "webhook", WebhookConfig: WebhookConfig{URL: "http://a b/%zz"}}, "url", "not a valid URL"},
		{"negative timeout", Config{Type: "webhook", WebhookConfig: WebhookConfig{URL: "http://h", Timeout: -time.Second}}, "timeout", "negative"},
		{"bad mode", Config{Type: "webhook", WebhookConfig: WebhookConfig{URL: "http://h", Mode: "stream"}}, "mode", `"stream"`},
		{"negative max_conns", Config{Type: "webhook", WebhookConfig: WebhookConfig{URL: "http://h", MaxConns: -1}}, "max_conns", "negative"},
		{"header injection", Config{Type: "webhook", WebhookConfig: WebhookConfig{URL: "http://h", Headers: map[string]string{"X-Key": "a\r\nEvil: 1"}}}, "headers.X-Key", "line break"},
		{"bad header name", Config{Type: "webhook", WebhookConfig: WebhookConfig{URL: "http://h", Headers: map[string]string{"X Key": "a"}}}, "headers.X Key", "header name"},
		{"reserved header", Config{Type: "webhook", WebhookConfig: WebhookConfig{URL: "http://h", Headers: map[string]string{"content-length": "1"}}}, "headers.content-length", "set by the webhook sink"},
		{"webhook with file option", Config{Type: "webhook", WebhookConfig: WebhookConfig{URL: "http://h"}, FileConfig: FileConfig{MaxFiles: 3}}, "max_files", "option of file destinations"},
		{"file without path", Config{Type: "file"}, "path", "required"},
		{"file with webhook option", Config{Type: "file", FileConfig: FileConfig{Path: "x.ndjson"}, WebhookConfig: WebhookConfig{Headers: map[string]string{"a": "b"}}}, "headers", "option of webhook destinations"},
		{"stdout with url", Config{Type: "stdout", WebhookConfig: WebhookConfig{URL: "http://h"}}, "url", "not of type stdout"},
		{"stdout with path", Config{Type: "stdout", FileConfig: FileConfig{Path: "x"}}, "path", "not of type stdout"},
		{"webhook ok", Config{Type: "webhook", WebhookConfig: WebhookConfig{URL: "https://u:p@h:8443/p?q=1", Headers: map[string]string{"Authorization": "Bearer x", "Host": "virtual"}, Mode: ModeEvent}}, "", ""},
		{"file ok", Config{Type: "file", FileConfig: FileConfig{Path: "data/events.ndjson", MaxBytes: -1, MaxFiles: -1, NoSync: true}}, "", ""},
		{"stdout ok", Config{Type: "stdout"}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.key == "" {
				if err != nil {
					t.Fatalf("valid config rejected: %v", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *ConfigError for %q", err, c.key)
			}
			if ce.Key != c.key || !strings.Contains(ce.Problem, c.msg) {
				t.Fatalf("got key %q problem %q, want key %q and %q", ce.Key, ce.Problem, c.key, c.msg)
			}
			if !strings.HasPrefix(err.Error(), "delivery config: "+c.key+": ") {
				t.Fatalf("message %q does not start with the key", err)
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	src := `
- type: webhook
  url: http://127.0.0.1:9/hook
  headers: {Authorization: "Bearer abc"}
  timeout: 2s
  mode: event
  gzip: true
  max_conns: 4
- type: file
  path: PATH
  max_bytes: 1048576
  max_files: 3
  no_sync: true
- type: stdout
`
	src = strings.Replace(src, "PATH", filepath.Join(t.TempDir(), "out", "events.ndjson"), 1)
	var cfgs []Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfgs); err != nil {
		t.Fatal(err)
	}
	w := cfgs[0].WebhookConfig
	if w.URL != "http://127.0.0.1:9/hook" || w.Headers["Authorization"] != "Bearer abc" || w.Timeout != 2*time.Second || w.Mode != ModeEvent || !w.Gzip || w.MaxConns != 4 {
		t.Errorf("webhook decoded as %+v", w)
	}
	f := cfgs[1].FileConfig
	if f.MaxBytes != 1<<20 || f.MaxFiles != 3 || !f.NoSync || !strings.HasSuffix(f.Path, "events.ndjson") {
		t.Errorf("file decoded as %+v", f)
	}
	for i, want := range []string{"*delivery.Webhook", "*delivery.File", "*delivery.Stdout"} {
		s, err := Open(cfgs[i])
		if err != nil {
			t.Fatalf("Open %s: %v", cfgs[i].Type, err)
		}
		if got := typeName(s); got != want {
			t.Errorf("Open %s = %s", cfgs[i].Type, got)
		}
		s.Close()
	}
	var bad []Config
	dec = yaml.NewDecoder(strings.NewReader("- type: webhook\n  urll: http://x\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&bad); err == nil || !strings.Contains(err.Error(), "urll") {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := Open(Config{Type: "webhook"}); err == nil {
		t.Error("Open accepted an invalid config")
	}
}

func typeName(s Sink) string {
	switch s.(type) {
	case *Webhook:
		return "*delivery.Webhook"
	case *File:
		return "*delivery.File"
	case *Stdout:
		return "*delivery.Stdout"
	}
	return "?"
}

func TestOpenStdoutDelivers(t *testing.T) {
	s, err := Open(Config{Type: TypeStdout})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestSettingsValidateNamesEveryKey(t *testing.T) {
	s := Settings{Workers: -1, BatchBytes: -1, ThrottleBytes: -1, Backoff: Backoff{Jitter: 2}}
	err := s.Validate()
	var keys []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *ConfigError
		if !errors.As(e, &ce) {
			t.Fatalf("%v is not a *ConfigError", e)
		}
		keys = append(keys, ce.Key)
	}
	if got := strings.Join(keys, ","); got != "workers,batch_bytes,backoff.jitter" {
		t.Errorf("keys %s (%v), want workers,batch_bytes,backoff.jitter (a negative throttle_bytes means never)", got, err)
	}
	var ok Settings
	if err := yaml.Unmarshal([]byte("workers: 2\nthrottle_wait: 1s\nbackoff: {initial: 1s}\n"), &ok); err != nil || ok.Validate() != nil ||
		ok.Workers != 2 || ok.ThrottleWait != time.Second || ok.Backoff.Initial != time.Second {
		t.Errorf("settings %+v, %v", ok, err)
	}
}
