package pipeline

import (
	"testing"
	"time"
)

func TestOverviewWindows(t *testing.T) {
	o := NewOverview(time.Hour)
	now := time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)
	o.now = func() time.Time { return now }
	batch := func(received uint64, delivered uint64) flowBatch {
		b := make(flowBatch)
		c := b.source("web")
		c.received = received
		addDrop(&c.dropped, "consent-match", "Consent mismatch", 1)
		c.dest("ads").delivered = delivered
		return b
	}
	o.add(batch(10, 9))
	o.add(batch(5, 4))
	now = now.Add(30 * time.Minute)
	o.add(batch(7, 6))

	all := o.Flow("web", now.Add(-time.Hour), now)
	if all.Received != 22 || all.Dropped[0].Count != 3 || all.Destinations[0].Delivered != 19 {
		t.Errorf("whole window: %+v", all)
	}
	recent := o.Flow("web", now.Add(-time.Minute), now)
	if recent.Received != 7 || recent.Destinations[0].Delivered != 6 {
		t.Errorf("last minute: %+v", recent)
	}
	if other := o.Flow("mobile", now.Add(-time.Hour), now); other.Received != 0 || len(other.Destinations) != 0 {
		t.Errorf("unknown source: %+v", other)
	}
	// Minutes older than the window are forgotten when a new minute starts.
	now = now.Add(45 * time.Minute)
	o.add(batch(1, 1))
	if f := o.Flow("web", now.Add(-3*time.Hour), now); f.Received != 8 {
		t.Errorf("after the window moved: received %d, want 8 (7 + 1)", f.Received)
	}
}

func TestReasonsAreBounded(t *testing.T) {
	c := NewCounters()
	var m map[[2]string]uint64
	for i := range MaxReasons + 50 {
		reason := string(rune('a'+i%26)) + string(rune('a'+i/26))
		c.drop(reason, 1)
		c.destination("d").dropped(reason, 1)
		addDrop(&m, "f", reason, 1)
	}
	s := c.Snapshot()
	if len(s.Dropped) != MaxReasons+1 || s.Dropped[OtherReason] != 50 {
		t.Errorf("%d source reasons, %d other; want %d and 50", len(s.Dropped), s.Dropped[OtherReason], MaxReasons+1)
	}
	if d := s.Destinations["d"].Dropped; len(d) != MaxReasons+1 || d[OtherReason] != 50 {
		t.Errorf("%d destination reasons, %d other", len(d), d[OtherReason])
	}
	if len(m) != MaxReasons+1 || m[[2]string{"f", OtherReason}] != 50 {
		t.Errorf("overview: %d reasons", len(m))
	}
}
