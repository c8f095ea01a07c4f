package runtime

import (
	stdruntime "runtime"
	"time"
)

// Limits bound one function. The zero value of each field takes its default.
type Limits struct {
	// MemoryPages caps the guest's linear memory, in 64 KiB pages.
	// Default 2048 (128 MiB).
	MemoryPages uint32
	// HighWaterPages recycles an instance whose memory has grown past this
	// many pages after an event (standard Go guests grow under load).
	// Default: half of MemoryPages.
	HighWaterPages uint32
	// Timeout is the time one event may take. Default 1s (Segment's is 5s).
	// The Engine's watchdog stops an event between Timeout and Timeout plus
	// 10 ms (two of its ticks); Timeout counts in whole milliseconds.
	Timeout time.Duration
	// StartTimeout is the time an instance's start-up (_initialize) may take.
	// Default 10s.
	StartTimeout time.Duration
	// MaxEventBytes caps the event after the function's changes.
	// Default 64 KiB (twice Segment's 32 KB per event).
	MaxEventBytes int
	// MaxLogBytes caps what one event may log. Default 4 KiB (Segment's cap
	// on test-run logs).
	MaxLogBytes int
	// PoolSize is the most instances running at once. Default GOMAXPROCS.
	PoolSize int
}

// Default limits.
const (
	DefaultMemoryPages   = 2048
	DefaultTimeout       = time.Second
	DefaultStartTimeout  = 10 * time.Second
	DefaultMaxEventBytes = 64 << 10
	DefaultMaxLogBytes   = 4 << 10
	// MaxTimeout caps Timeout and StartTimeout.
	MaxTimeout = 24 * time.Hour
)

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MemoryPages == 0 {
		l.MemoryPages = DefaultMemoryPages
	}
	if l.MemoryPages > 65536 {
		l.MemoryPages = 65536
	}
	if l.HighWaterPages == 0 || l.HighWaterPages > l.MemoryPages {
		l.HighWaterPages = l.MemoryPages / 2
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	if l.StartTimeout <= 0 {
		l.StartTimeout = DefaultStartTimeout
	}
	l.Timeout, l.StartTimeout = min(l.Timeout, MaxTimeout), min(l.StartTimeout, MaxTimeout)
	if l.MaxEventBytes <= 0 {
		l.MaxEventBytes = DefaultMaxEventBytes
	}
	if l.MaxLogBytes <= 0 {
		l.MaxLogBytes = DefaultMaxLogBytes
	}
	if l.PoolSize <= 0 {
		l.PoolSize = stdruntime.GOMAXPROCS(0)
	}
	return l
}
