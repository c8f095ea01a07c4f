package runtime

import (
	"testing"
	"time"
)

type flag struct{ v uint64 }

// at returns a clock that reads t.
func at(t time.Duration) func() time.Duration { return func() time.Duration { return t } }

func (f *flag) Set(v uint64) { f.v = v }

// TestClockNeverEarly drives a clock's watchdog checks by hand: a call is
// stopped only once the watchdog has seen it for longer than its limit,
// and a new call (or a re-armed batch event) starts its own count.
func TestClockNeverEarly(t *testing.T) {
	var c clock
	var f flag
	c.interrupt = &f
	const ms = time.Millisecond

	c.arm(10 * ms)
	c.check(at(100 * ms)) // first seen: the count starts here, whatever the time
	c.check(at(110 * ms)) // exactly the limit: not over it
	if f.v != 0 || c.disarmWouldFire() {
		t.Fatal("stopped at its limit, not after it")
	}
	if !c.rearm(10 * ms) { // the next event of a batch
		t.Fatal("rearm refused before the limit")
	}
	c.check(at(111 * ms)) // a new word: counted from here
	c.check(at(120 * ms))
	if f.v != 0 {
		t.Fatal("the re-armed event was stopped on the previous one's count")
	}
	c.check(at(121*ms + 1))
	if f.v != 1 || !c.disarm() {
		t.Fatal("not stopped past its limit")
	}

	// A sub-millisecond limit counts as one millisecond; an idle clock is
	// never stopped.
	f.v = 0
	c.arm(time.Microsecond)
	c.check(at(0))
	c.check(at(ms))
	if f.v != 0 {
		t.Fatal("stopped within a millisecond")
	}
	if c.disarm() {
		t.Fatal("disarm reports a stop that did not happen")
	}
	c.check(at(time.Hour))
	c.check(at(2 * time.Hour))
	if f.v != 0 {
		t.Fatal("an idle clock was stopped")
	}
}

// TestClockWord checks the packing of a call's word and the wrap of
// generations, which skips noCall and expired.
func TestClockWord(t *testing.T) {
	var c clock
	if w := c.word(100 * time.Millisecond); w != 1<<limitBits|100 {
		t.Errorf("first word %#x", w)
	}
	c.gen = maxGen
	if w := c.word(MaxTimeout); w>>limitBits != 1 || w&limitMask != uint64(MaxTimeout/time.Millisecond) {
		t.Errorf("wrapped word %#x", w)
	}
	c.gen = maxGen - 1
	if w := c.word(0); w == expired || w == noCall || w>>limitBits != maxGen {
		t.Errorf("last word %#x", w)
	}
}

// disarmWouldFire peeks at whether the watchdog has stopped the call.
func (c *clock) disarmWouldFire() bool { return c.armed.Load() == expired }
