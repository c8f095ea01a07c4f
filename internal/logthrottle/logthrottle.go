// Package logthrottle keeps a problem that repeats on every event or
// request to one log line per key and interval, so that logs say "this is
// wrong" once, with a count, instead of once per event.
package logthrottle

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Throttle keeps a problem that repeats on every event (a consent store
// down, a destination refusing) to one log line per key and interval: the
// first occurrence is logged at once, later ones are counted and reported
// with the next line after the interval ("repeated": how many were not
// logged). It is safe for concurrent use.
type Throttle struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*throttled
}

type throttled struct {
	last       time.Time
	suppressed int
}

// New returns a Throttle that logs to log at most once per key and every.
func New(log *slog.Logger, every time.Duration) *Throttle {
	return &Throttle{log: log, every: every, now: time.Now, keys: make(map[string]*throttled)}
}

// Log logs msg at level unless key was logged less than the interval ago.
func (t *Throttle) Log(level slog.Level, key, msg string, attrs ...any) {
	now := t.now()
	t.mu.Lock()
	k := t.keys[key]
	if k == nil {
		k = &throttled{}
		t.keys[key] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < t.every {
		k.suppressed++
		t.mu.Unlock()
		return
	}
	repeated := k.suppressed
	k.last, k.suppressed = now, 0
	t.mu.Unlock()
	if repeated > 0 {
		attrs = append(attrs, "repeated", repeated)
	}
	t.log.Log(context.Background(), level, msg, attrs...)
}
