// Package functions manages functions over their life: a manifest says what
// a function is (its wasm, settings, limits and failure policy); a
// [Registry] loads versions, identifies each by the hash of its wasm, swaps
// a function for a new version without failing events in flight, and runs
// an event through a function under its failure policy.
//
// The runtime knows nothing of HTTP and the server nothing of wazero: they
// meet here, where a function is something that turns an event into a
// verdict.
package functions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/insertfn/insertfn/runtime"
)

// FailurePolicy says what becomes of an event when its function fails (a
// function error, a sandbox failure, or retries used up).
type FailurePolicy string

// Failure policies.
const (
	// PolicyDrop drops the event: the privacy-safe default, since an event
	// whose consent could not be checked must not reach destinations.
	PolicyDrop FailurePolicy = "drop"
	// PolicyDeliver delivers the event unchanged, as if the function were not there.
	PolicyDeliver FailurePolicy = "deliver"
)

// DefaultRetries is how many times a RetryError is retried when the manifest
// does not say.
const DefaultRetries = 2

// Manifest describes one function. It is the one shape a function's
// definition takes from where it is written to the [Registry]: a JSON
// manifest (a file, the admin API's X-Insertfn-Manifest header, the version
// store) and an entry of the configuration's functions list decode into it
// alike, with the same keys.
type Manifest struct {
	// Name identifies the function: letters, digits, '-', '_' and '.'.
	Name string `json:"name" yaml:"name"`
	// Wasm is the path of the function's file, relative to the file the
	// manifest is written in (a JSON manifest, or the configuration): a
	// WebAssembly module, or a JavaScript file (see Runtime).
	Wasm string `json:"wasm" yaml:"wasm"`
	// Runtime says what the file is: "wasm" (a module built with an SDK),
	// or "js" (a Segment function file, run in the embedded JavaScript
	// engine). Empty: "js" for a file whose name ends in .js ([Manifest.Validate]
	// sets it), else "wasm".
	Runtime string `json:"runtime,omitempty" yaml:"runtime"`
	// Settings is the JSON object the function reads through the SDK.
	Settings Settings `json:"settings,omitempty" yaml:"settings"`
	// Limits bound the function; zero fields take the runtime's defaults.
	Limits ManifestLimits `json:"limits,omitzero" yaml:"limits"`
	// OnError is the failure policy: "drop" (default) or "deliver".
	OnError FailurePolicy `json:"on_error,omitempty" yaml:"on_error"`
	// Retries is how many times a RetryError is retried before the failure
	// policy applies (0: DefaultRetries; negative: none).
	Retries int `json:"retries,omitempty" yaml:"retries"`
	// Fetch says where a JavaScript function's fetch may go: nowhere
	// unless its allow-list says so.
	Fetch ManifestFetch `json:"fetch,omitzero" yaml:"fetch"`
}

// ManifestFetch is runtime.FetchPolicy as a manifest writes it.
type ManifestFetch struct {
	// Allow lists the URL prefixes fetch may reach
	// ("https://consent.internal/v1/"): scheme, host and port equal, the
	// path at or below the prefix's.
	Allow []string `json:"allow,omitempty" yaml:"allow"`
	// Timeout bounds one request (default 2s); the event's time limit
	// (limits.timeout) bounds it too.
	Timeout Duration `json:"timeout,omitzero" yaml:"timeout"`
	// MaxResponseBytes bounds a response's body (default 1 MiB).
	MaxResponseBytes int `json:"max_response_bytes,omitempty" yaml:"max_response_bytes"`
	// MaxRequests bounds the requests of one event (default 16).
	MaxRequests int `json:"max_requests,omitempty" yaml:"max_requests"`
}

// IsZero reports whether nothing is set (a manifest then leaves fetch out).
func (f ManifestFetch) IsZero() bool {
	return len(f.Allow) == 0 && f.Timeout.Duration == 0 && f.MaxResponseBytes == 0 && f.MaxRequests == 0
}

// Policy returns the fetch policy for the runtime.
func (f ManifestFetch) Policy() runtime.FetchPolicy {
	return runtime.FetchPolicy{Allow: f.Allow, Timeout: f.Timeout.Duration, MaxResponseBytes: f.MaxResponseBytes, MaxRequests: f.MaxRequests}
}

// ManifestLimits are runtime.Limits as a manifest writes them (durations
// as strings such as "250ms"). They are what a manifest may set; the
// registry hands them to the runtime with [ManifestLimits.Runtime].
type ManifestLimits struct {
	MemoryPages    uint32   `json:"memory_pages,omitempty" yaml:"memory_pages"`
	HighWaterPages uint32   `json:"high_water_pages,omitempty" yaml:"high_water_pages"`
	Timeout        Duration `json:"timeout,omitzero" yaml:"timeout"`
	MaxEventBytes  int      `json:"max_event_bytes,omitempty" yaml:"max_event_bytes"`
	MaxLogBytes    int      `json:"max_log_bytes,omitempty" yaml:"max_log_bytes"`
	PoolSize       int      `json:"pool_size,omitempty" yaml:"pool_size"`
}

// retries returns how many retries the manifest allows (Validate must have
// run: 0 there means the default, negative none).
func (m *Manifest) retries() int { return max(m.Retries, 0) }

// The values of Manifest.Runtime.
const (
	RuntimeWasm = "wasm"
	RuntimeJS   = "js"
)

// Language returns the runtime.Language of the manifest's file.
func (m *Manifest) Language() runtime.Language {
	if m.Runtime == RuntimeJS {
		return runtime.JavaScript
	}
	return runtime.WebAssembly
}

// File returns the name a JavaScript function's errors give its file: the
// base name of Wasm when it is a .js file, else NAME.js.
func (m *Manifest) File() string {
	if base := filepath.Base(m.Wasm); strings.HasSuffix(strings.ToLower(base), ".js") {
		return base
	}
	return m.Name + ".js"
}

// Runtime returns the limits for the runtime.
func (l ManifestLimits) Runtime() runtime.Limits {
	return runtime.Limits{MemoryPages: l.MemoryPages, HighWaterPages: l.HighWaterPages, Timeout: l.Timeout.Duration,
		MaxEventBytes: l.MaxEventBytes, MaxLogBytes: l.MaxLogBytes, PoolSize: l.PoolSize}
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ManifestError is a manifest key that is missing or out of range. Key is
// spelled as the manifest spells it, in JSON and YAML alike ("name",
// "on_error", "settings", "wasm"); a caller that nests manifests prefixes
// its own path ("functions[2]."+Key).
type ManifestError struct {
	// Name is the manifest's name ("" when the name is the problem).
	Name string
	// Key is the key at fault.
	Key string
	// Problem says what is wrong and what is wanted.
	Problem string
}

// ConfigKey returns the key at fault, below its section.
func (e *ManifestError) ConfigKey() string { return e.Key }

// ConfigProblem says what is wrong with the key.
func (e *ManifestError) ConfigProblem() string { return e.Problem }

// Error returns "functions: manifest NAME: KEY: PROBLEM".
func (e *ManifestError) Error() string {
	if e.Name == "" {
		return "functions: manifest: " + e.Key + ": " + e.Problem
	}
	return "functions: manifest " + e.Name + ": " + e.Key + ": " + e.Problem
}

// Validate checks the manifest and fills in defaults. The problem it
// reports is a [*ManifestError] naming the key.
func (m *Manifest) Validate() error {
	if !validName.MatchString(m.Name) {
		return &ManifestError{Key: "name", Problem: fmt.Sprintf("%q: use 1-128 letters, digits, '.', '-' or '_', starting with a letter or digit", m.Name)}
	}
	switch m.OnError {
	case "":
		m.OnError = PolicyDrop
	case PolicyDrop, PolicyDeliver:
	default:
		return &ManifestError{Name: m.Name, Key: "on_error", Problem: fmt.Sprintf("%q: want %q or %q", m.OnError, PolicyDrop, PolicyDeliver)}
	}
	if m.Retries == 0 {
		m.Retries = DefaultRetries
	}
	switch m.Runtime {
	case "":
		if strings.HasSuffix(strings.ToLower(m.Wasm), ".js") {
			m.Runtime = RuntimeJS
		}
	case RuntimeWasm, RuntimeJS:
	default:
		return &ManifestError{Name: m.Name, Key: "runtime", Problem: fmt.Sprintf("%q: want %q (a WebAssembly module) or %q (a JavaScript file)", m.Runtime, RuntimeWasm, RuntimeJS)}
	}
	if err := m.Fetch.Policy().Validate(); err != nil {
		key, problem := "fetch", err.Error()
		var se interface{ Setting() (string, string) }
		if errors.As(err, &se) {
			key, problem = se.Setting()
		}
		return &ManifestError{Name: m.Name, Key: key, Problem: problem}
	}
	if len(m.Fetch.Allow) > 0 && m.Runtime != RuntimeJS {
		return &ManifestError{Name: m.Name, Key: "fetch.allow", Problem: "only a JavaScript function (runtime: js) fetches"}
	}
	if len(m.Settings) > 0 {
		trimmed := bytes.TrimSpace(m.Settings)
		if !json.Valid(trimmed) || len(trimmed) == 0 || trimmed[0] != '{' {
			return &ManifestError{Name: m.Name, Key: "settings", Problem: "must be a JSON object"}
		}
	}
	return nil
}

// ValidateFile is [Manifest.Validate] for a manifest written in a file (a
// JSON manifest, or the configuration's functions): such a manifest must
// also name its module. It reports every problem it finds, each a
// [*ManifestError], joined.
func (m *Manifest) ValidateFile() error {
	err := m.Validate()
	if m.Wasm == "" {
		name := m.Name
		if !validName.MatchString(name) {
			name = ""
		}
		err = errors.Join(err, &ManifestError{Name: name, Key: "wasm",
			Problem: "required: the path of the compiled function (insertfn build DIR -o FILE.wasm)"})
	}
	return err
}

// LoadManifest reads a JSON manifest and the file (module or JavaScript) it
// names.
//
// # Results
//   - the validated manifest;
//   - the wasm's bytes;
//   - an error that names the file and the problem.
func LoadManifest(path string) (Manifest, []byte, error) {
	var m Manifest
	b, err := os.ReadFile(path)
	if err != nil {
		return m, nil, fmt.Errorf("functions: manifest: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, nil, fmt.Errorf("functions: manifest %s: %w", path, err)
	}
	if err := m.ValidateFile(); err != nil {
		return m, nil, fmt.Errorf("%w (in %s)", err, path)
	}
	wasmPath := m.Wasm
	if !filepath.IsAbs(wasmPath) {
		wasmPath = filepath.Join(filepath.Dir(path), wasmPath)
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return m, nil, fmt.Errorf("functions: manifest %s: wasm: %w", path, err)
	}
	return m, wasm, nil
}

// Duration is a time.Duration written as a string ("250ms", "2s") in JSON.
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string such as "250ms".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"250ms\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: want a positive duration such as \"250ms\"", s)
	}
	d.Duration = v
	return nil
}

// UnmarshalYAML reads a duration such as 250ms, as the configuration file
// writes durations.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error { return n.Decode(&d.Duration) }

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Settings is a function's settings: a JSON object, kept as its bytes. In
// JSON it is the object itself; in YAML (the configuration file) a mapping,
// turned into the same JSON.
type Settings []byte

// MarshalJSON returns the settings as they are ("null" when there are none).
func (s Settings) MarshalJSON() ([]byte, error) {
	if s == nil {
		return []byte("null"), nil
	}
	return s, nil
}

// UnmarshalJSON keeps a copy of the JSON value; [Manifest.Validate] checks
// that it is an object.
func (s *Settings) UnmarshalJSON(b []byte) error {
	*s = append((*s)[:0], b...)
	return nil
}

// UnmarshalYAML reads a mapping and keeps it as a JSON object.
func (s *Settings) UnmarshalYAML(n *yaml.Node) error {
	var v map[string]any
	if err := n.Decode(&v); err != nil {
		return err
	}
	if v == nil {
		*s = nil
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("line %d: settings: %w (write the settings as a mapping whose keys are strings)", n.Line, err)
	}
	*s = b
	return nil
}

// MarshalYAML writes the settings as a mapping.
func (s Settings) MarshalYAML() (any, error) {
	if s == nil {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(s, &v); err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	return v, nil
}
