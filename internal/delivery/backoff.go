package delivery

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Default values of [Backoff]'s fields, used where a field is zero.
const (
	DefaultBackoffInitial    = 500 * time.Millisecond
	DefaultBackoffMax        = 5 * time.Minute
	DefaultBackoffMultiplier = 2.0
	DefaultBackoffJitter     = 0.2
	// DefaultBackoffMaxAttempts gives a destination that is down about
	// four hours, as Segment retries, before its events become dead
	// letters: with the other defaults, ten delays of 0.5 s doubling (511.5
	// s), then 47 of 5 m (jitter averages out): 58 attempts, 4 h 3 m.
	DefaultBackoffMaxAttempts = 58
)

// Backoff is a retry policy: exponential delays with jitter, a ceiling, and
// a bound on attempts. The zero value is the default policy (500ms doubling
// up to 5m, ±20% jitter, 58 attempts: about four hours); each zero field
// takes its default.
//
// A Backoff is a value with no state: one policy serves every destination
// and goroutine.
type Backoff struct {
	// Initial is the delay after the first failed attempt. Default 500ms.
	Initial time.Duration `yaml:"initial" json:"initial"`
	// Max is the longest delay, jitter and Retry-After included. Default 5m.
	Max time.Duration `yaml:"max" json:"max"`
	// Multiplier is the factor between one delay and the next, at least 1
	// (1 gives a constant delay). Default 2.
	Multiplier float64 `yaml:"multiplier" json:"multiplier"`
	// Jitter spreads each delay uniformly over ±Jitter of itself, so that
	// destinations recovering together are not hit in step. From 0 to 1;
	// default 0.2; negative means no jitter.
	Jitter float64 `yaml:"jitter" json:"jitter"`
	// MaxAttempts is how many times a batch is tried in all, the first
	// attempt included, before the caller gives up on it (dead letters).
	// Default 58 (about four hours with the other defaults); negative
	// means no limit.
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts"`
}

// Validate reports the first field that is out of range, naming its key.
func (b Backoff) Validate() error {
	switch {
	case b.Initial < 0:
		return &ConfigError{Key: "initial", Problem: fmt.Sprintf("must not be negative, got %v", b.Initial)}
	case b.Max < 0:
		return &ConfigError{Key: "max", Problem: fmt.Sprintf("must not be negative, got %v", b.Max)}
	case b.Multiplier != 0 && (b.Multiplier < 1 || math.IsNaN(b.Multiplier) || math.IsInf(b.Multiplier, 0)):
		return &ConfigError{Key: "multiplier", Problem: fmt.Sprintf("must be at least 1, got %v", b.Multiplier)}
	case b.Jitter > 1 || math.IsNaN(b.Jitter):
		return &ConfigError{Key: "jitter", Problem: fmt.Sprintf("must be between 0 and 1, got %v", b.Jitter)}
	}
	if b.Max != 0 && b.Initial > b.Max {
		return &ConfigError{Key: "initial", Problem: fmt.Sprintf("%v is longer than max %v", b.Initial, b.Max)}
	}
	return nil
}

// withDefaults returns b with every zero field set to its default.
func (b Backoff) withDefaults() Backoff {
	if b.Initial == 0 {
		b.Initial = DefaultBackoffInitial
	}
	if b.Max == 0 {
		b.Max = DefaultBackoffMax
	}
	if b.Initial > b.Max {
		b.Initial = b.Max
	}
	if b.Multiplier < 1 || math.IsNaN(b.Multiplier) || math.IsInf(b.Multiplier, 0) {
		b.Multiplier = DefaultBackoffMultiplier
	}
	switch {
	case b.Jitter == 0:
		b.Jitter = DefaultBackoffJitter
	case b.Jitter < 0 || math.IsNaN(b.Jitter):
		b.Jitter = 0
	case b.Jitter > 1:
		b.Jitter = 1
	}
	if b.MaxAttempts == 0 {
		b.MaxAttempts = DefaultBackoffMaxAttempts
	}
	return b
}

// Delay returns how long to wait after the given failed attempt before the
// next one.
//
// # Parameters
//
//   - attempt: how many attempts have failed so far, from 1. Values below
//     1 count as 1.
//   - rnd: the source of jitter, or nil for math/rand/v2's goroutine-safe
//     top-level functions. A *rand.Rand is not safe for concurrent use, so
//     pass one only from a single goroutine (tests pass a seeded one).
//
// # Results
//
// The base delay is Initial·Multiplier^(attempt−1), capped at Max; the
// result is drawn uniformly from base·[1−Jitter, 1+Jitter] and capped at
// Max again, so it never exceeds Max and, ignoring jitter, never shrinks
// as attempt grows.
func (b Backoff) Delay(attempt int, rnd *rand.Rand) time.Duration {
	b = b.withDefaults()
	if attempt < 1 {
		attempt = 1
	}
	base := float64(b.Initial) * math.Pow(b.Multiplier, float64(attempt-1))
	if base > float64(b.Max) || math.IsInf(base, 0) || math.IsNaN(base) {
		base = float64(b.Max)
	}
	d := base
	if b.Jitter > 0 {
		var u float64
		if rnd != nil {
			u = rnd.Float64()
		} else {
			u = rand.Float64()
		}
		d = base * (1 - b.Jitter + 2*b.Jitter*u)
	}
	if d > float64(b.Max) {
		d = float64(b.Max)
	}
	return time.Duration(d)
}

// Next returns how long to wait after the given failed attempt that ended
// in err: [Backoff.Delay], or the destination's Retry-After ([RetryAfter])
// when that is longer, capped at Max either way (a destination asking for
// an hour is tried again after Max, and asked again). rnd is as for Delay.
func (b Backoff) Next(attempt int, err error, rnd *rand.Rand) time.Duration {
	d := b.Delay(attempt, rnd)
	if after, ok := RetryAfter(err); ok && after > d {
		d = min(after, b.withDefaults().Max)
	}
	return d
}

// Exhausted reports whether a batch that has failed attempts times has
// used up its attempts and should go to the dead letters: attempts ≥
// MaxAttempts (never, when MaxAttempts is negative).
func (b Backoff) Exhausted(attempts int) bool {
	b = b.withDefaults()
	return b.MaxAttempts > 0 && attempts >= b.MaxAttempts
}

// ShouldRetry combines the two questions a caller asks after a failed
// attempt: is err retryable at all ([Retryable]), and are attempts left
// ([Backoff.Exhausted])? attempts counts the failed attempts so far,
// the one that returned err included.
func (b Backoff) ShouldRetry(attempts int, err error) bool {
	return Retryable(err) && !b.Exhausted(attempts)
}

// ConfigError is a configuration value that is missing or out of range. Key
// is the offending key as the YAML spells it (relative to the struct being
// validated: a caller nesting the struct prefixes its own path, e.g.
// "destinations[2]."+Key).
type ConfigError struct {
	Key     string
	Problem string
}

// ConfigKey returns the key at fault, below its section.
func (e *ConfigError) ConfigKey() string { return e.Key }

// ConfigProblem says what is wrong with the key.
func (e *ConfigError) ConfigProblem() string { return e.Problem }

// Error returns "delivery config: KEY: PROBLEM".
func (e *ConfigError) Error() string {
	return "delivery config: " + e.Key + ": " + e.Problem
}
