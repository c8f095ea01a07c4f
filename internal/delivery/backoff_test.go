package delivery

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestBackoffDelayBounds(t *testing.T) {
	policies := []Backoff{
		{}, // defaults: 500ms ×2 up to 5m, ±20%
		{Initial: 100 * time.Millisecond, Max: 3 * time.Second, Multiplier: 1.5, Jitter: 0.5},
		{Initial: time.Second, Max: time.Second, Multiplier: 3},
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, p := range policies {
		d := p.withDefaults()
		for attempt := 1; attempt <= 40; attempt++ {
			base := float64(d.Initial)
			for range attempt - 1 {
				base *= d.Multiplier
			}
			base = min(base, float64(d.Max))
			lo := time.Duration(base * (1 - d.Jitter))
			hi := min(time.Duration(base*(1+d.Jitter)), d.Max)
			for range 50 {
				got := p.Delay(attempt, rnd)
				if got < lo-1 || got > hi+1 {
					t.Fatalf("%+v attempt %d: delay %v outside [%v, %v]", p, attempt, got, lo, hi)
				}
			}
			if got := p.Delay(attempt, nil); got > d.Max || got < lo-1 {
				t.Fatalf("%+v attempt %d with global rand: %v", p, attempt, got)
			}
		}
	}
}

func TestBackoffWithoutJitterIsMonotoneToMax(t *testing.T) {
	p := Backoff{Initial: 10 * time.Millisecond, Max: time.Second, Jitter: -1}
	want := []time.Duration{10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000}
	for i, w := range want {
		if got := p.Delay(i+1, nil); got != w*time.Millisecond {
			t.Errorf("attempt %d: %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := p.Delay(0, nil); got != 10*time.Millisecond {
		t.Errorf("attempt 0 counts as 1: got %v", got)
	}
	if got := p.Delay(1<<30, nil); got != time.Second {
		t.Errorf("huge attempt: got %v, want Max", got)
	}
}

func TestBackoffDefaultSequence(t *testing.T) {
	// The defaults, with jitter: the lower bound of attempt n+1 passes the
	// upper bound of attempt n until Max, so the sequence grows.
	var prevHi time.Duration
	rnd := rand.New(rand.NewPCG(3, 4))
	for attempt := 1; attempt <= 12; attempt++ {
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 200 {
			d := Backoff{}.Delay(attempt, rnd)
			lo, hi = min(lo, d), max(hi, d)
		}
		if hi > DefaultBackoffMax {
			t.Fatalf("attempt %d: %v over Max", attempt, hi)
		}
		if attempt == 1 && (lo < 400*time.Millisecond || hi > 600*time.Millisecond) {
			t.Fatalf("first delay in [%v, %v], want within 500ms ±20%%", lo, hi)
		}
		if hi < DefaultBackoffMax*8/10 && attempt > 1 && lo < prevHi*11/10 {
			t.Fatalf("attempt %d: lowest %v not above attempt %d's highest %v by the doubling", attempt, lo, attempt-1, prevHi)
		}
		prevHi = hi
	}
}

func TestBackoffNextHonoursRetryAfter(t *testing.T) {
	p := Backoff{Initial: time.Second, Max: time.Minute, Jitter: -1}
	e429 := fmt.Errorf("wrapped: %w", &Error{Sink: "webhook", Status: 429, After: 20 * time.Second})
	if got := p.Next(1, e429, nil); got != 20*time.Second {
		t.Errorf("Retry-After 20s over a 1s delay: %v", got)
	}
	if got := p.Next(7, e429, nil); got != time.Minute {
		t.Errorf("delay 64s capped at Max over Retry-After 20s: %v", got)
	}
	long := &Error{Sink: "webhook", Status: 503, After: time.Hour}
	if got := p.Next(1, long, nil); got != time.Minute {
		t.Errorf("Retry-After 1h: %v, want capped at Max", got)
	}
	if got := p.Next(2, errors.New("eof"), nil); got != 2*time.Second {
		t.Errorf("plain error: %v", got)
	}
}

func TestBackoffAttempts(t *testing.T) {
	var p Backoff
	if p.Exhausted(DefaultBackoffMaxAttempts-1) || !p.Exhausted(DefaultBackoffMaxAttempts) {
		t.Errorf("default MaxAttempts %d: Exhausted(%d)=%v Exhausted(%d)=%v", DefaultBackoffMaxAttempts,
			DefaultBackoffMaxAttempts-1, p.Exhausted(DefaultBackoffMaxAttempts-1), DefaultBackoffMaxAttempts, p.Exhausted(DefaultBackoffMaxAttempts))
	}
	// The default gives a destination that is down about four hours (as
	// Segment does) before its events become dead letters.
	var total time.Duration
	noJitter := Backoff{Jitter: -1}
	for attempt := 1; attempt < DefaultBackoffMaxAttempts; attempt++ {
		total += noJitter.Delay(attempt, nil)
	}
	if total < 4*time.Hour || total > 4*time.Hour+10*time.Minute {
		t.Errorf("the default policy retries for %v; want about four hours", total)
	}
	if (Backoff{MaxAttempts: -1}).Exhausted(1 << 20) {
		t.Error("negative MaxAttempts should never exhaust")
	}
	perm := &Error{Permanent: true}
	if p.ShouldRetry(1, perm) || !p.ShouldRetry(1, errors.New("x")) || p.ShouldRetry(DefaultBackoffMaxAttempts, errors.New("x")) || p.ShouldRetry(1, nil) {
		t.Error("ShouldRetry does not combine Retryable and Exhausted")
	}
}

func TestRetryableClassification(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("disk full"), true},
		{ErrClosed, true},
		{&Error{Status: 500}, true},
		{&Error{Status: 400, Permanent: true}, false},
		{fmt.Errorf("pipeline: %w", &Error{Status: 404, Permanent: true}), false},
	}
	for _, c := range cases {
		if got := Retryable(c.err); got != c.want {
			t.Errorf("Retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if _, ok := RetryAfter(errors.New("x")); ok {
		t.Error("RetryAfter of a plain error")
	}
}

func TestRejectedClassification(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("disk full"), false},
		{&Error{Status: 503}, false},
		{&Error{Status: 400, Permanent: true}, true},
		{&Error{Status: 413, Permanent: true}, true},
		{fmt.Errorf("pipeline: %w", &Error{Status: 422, Permanent: true}), true},
		{&Error{Permanent: true, Event: 3}, true}, // an event the sink cannot write
		{&Error{Status: 401, Permanent: true}, false},
		{&Error{Status: 404, Permanent: true}, false},
		{&Error{Status: 301, Permanent: true}, false},
	} {
		if got := Rejected(c.err); got != c.want {
			t.Errorf("Rejected(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestBackoffValidate(t *testing.T) {
	cases := []struct {
		b   Backoff
		key string
	}{
		{Backoff{}, ""},
		{Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 1, Jitter: -1, MaxAttempts: -1}, ""},
		{Backoff{Initial: -1}, "initial"},
		{Backoff{Max: -1}, "max"},
		{Backoff{Multiplier: 0.5}, "multiplier"},
		{Backoff{Jitter: 1.5}, "jitter"},
		{Backoff{Initial: time.Hour, Max: time.Minute}, "initial"},
	}
	for _, c := range cases {
		err := c.b.Validate()
		if c.key == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.b, err)
			}
			continue
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != c.key || !strings.Contains(err.Error(), c.key+": ") {
			t.Errorf("%+v: got %v, want an error naming %q", c.b, err, c.key)
		}
	}
}
