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
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

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

// Manifest describes one function.
type Manifest struct {
	// Name identifies the function: letters, digits, '-', '_' and '.'.
	Name string `json:"name"`
	// Wasm is the path of the module, relative to the manifest's directory.
	Wasm string `json:"wasm"`
	// Settings is the JSON object the function reads through the SDK.
	Settings json.RawMessage `json:"settings,omitempty"`
	// Limits bound the function; zero fields take the runtime's defaults.
	Limits ManifestLimits `json:"limits,omitzero"`
	// OnError is the failure policy: "drop" (default) or "deliver".
	OnError FailurePolicy `json:"on_error,omitempty"`
	// Retries is how many times a RetryError is retried before the failure
	// policy applies (0: DefaultRetries; negative: none).
	Retries int `json:"retries,omitempty"`
}

// ManifestLimits are runtime.Limits as a manifest writes them (durations
// as strings such as "250ms").
type ManifestLimits struct {
	MemoryPages    uint32   `json:"memory_pages,omitempty"`
	HighWaterPages uint32   `json:"high_water_pages,omitempty"`
	Timeout        Duration `json:"timeout,omitzero"`
	MaxEventBytes  int      `json:"max_event_bytes,omitempty"`
	MaxLogBytes    int      `json:"max_log_bytes,omitempty"`
	PoolSize       int      `json:"pool_size,omitempty"`
}

// retries returns how many retries the manifest allows (Validate must have
// run: 0 there means the default, negative none).
func (m *Manifest) retries() int { return max(m.Retries, 0) }

// Runtime returns the limits for the runtime.
func (l ManifestLimits) Runtime() runtime.Limits {
	return runtime.Limits{MemoryPages: l.MemoryPages, HighWaterPages: l.HighWaterPages, Timeout: l.Timeout.Duration,
		MaxEventBytes: l.MaxEventBytes, MaxLogBytes: l.MaxLogBytes, PoolSize: l.PoolSize}
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Validate checks the manifest and fills in defaults.
func (m *Manifest) Validate() error {
	if !validName.MatchString(m.Name) {
		return fmt.Errorf("functions: manifest: name %q: use 1-128 letters, digits, '.', '-' or '_'", m.Name)
	}
	switch m.OnError {
	case "":
		m.OnError = PolicyDrop
	case PolicyDrop, PolicyDeliver:
	default:
		return fmt.Errorf("functions: manifest %s: on_error %q: want %q or %q", m.Name, m.OnError, PolicyDrop, PolicyDeliver)
	}
	if m.Retries == 0 {
		m.Retries = DefaultRetries
	}
	if len(m.Settings) > 0 {
		trimmed := bytes.TrimSpace(m.Settings)
		if !json.Valid(trimmed) || len(trimmed) == 0 || trimmed[0] != '{' {
			return fmt.Errorf("functions: manifest %s: settings must be a JSON object", m.Name)
		}
	}
	return nil
}

// LoadManifest reads a JSON manifest and the wasm it names.
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
	if err := m.Validate(); err != nil {
		return m, nil, fmt.Errorf("%w (in %s)", err, path)
	}
	if m.Wasm == "" {
		return m, nil, fmt.Errorf("functions: manifest %s: \"wasm\" is required", path)
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
