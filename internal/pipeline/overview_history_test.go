package pipeline

import (
	"encoding/json"
	"testing"
	"time"
)

// minuteOverview returns an overview on a settable clock, with counts for
// "web" at 10:00 and 10:02 and for "app" at 10:02.
func minuteOverview(t *testing.T) (*Overview, *time.Time) {
	t.Helper()
	o := NewOverview(time.Hour)
	now := time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)
	o.now = func() time.Time { return now }
	o.Add(Flow{Source: "web", Received: 10,
		Dropped:      []Drop{{Function: "consent-match", Reason: "Consent mismatch", Count: 3}},
		Destinations: []DestinationFlow{{Name: "ads", Delivered: 6, FilteredConsent: 1}}})
	now = now.Add(2 * time.Minute)
	o.Add(Flow{Source: "web", Received: 4, Destinations: []DestinationFlow{{Name: "ads", Delivered: 3, Failed: 1}}})
	o.Add(Flow{Source: "app", Received: 2})
	return o, &now
}

func TestOverviewMinutes(t *testing.T) {
	o, now := minuteOverview(t)
	got := o.Minutes("web", now.Add(-3*time.Minute), *now)
	if len(got) != 4 {
		t.Fatalf("%d minutes, want 4 (09:59 to 10:02)", len(got))
	}
	want := []uint64{0, 10, 0, 4}
	for i, f := range got {
		if f.Received != want[i] {
			t.Errorf("minute %d (%v): received %d, want %d", i, f.From, f.Received, want[i])
		}
		if f.From.Second() != 0 || f.To.Sub(f.From) != time.Minute-time.Nanosecond {
			t.Errorf("minute %d spans %v to %v, want one whole minute", i, f.From, f.To)
		}
	}
	if d := got[1].Destinations; len(d) != 1 || d[0].Delivered != 6 || d[0].FilteredConsent != 1 || got[1].Dropped[0].Count != 3 {
		t.Errorf("10:00: %+v", got[1])
	}
	if d := got[3].Destinations; len(d) != 1 || d[0].Failed != 1 {
		t.Errorf("10:02: %+v", got[3])
	}
	if o.Minutes("web", *now, now.Add(-time.Minute)) != nil {
		t.Error("a window that ends before it starts has minutes")
	}
}

// TestOverviewHistoryRestore: what one overview remembers, through JSON
// (as it is kept on disk), is what another answers after Restore; flows
// outside the window are left out.
func TestOverviewHistoryRestore(t *testing.T) {
	o, now := minuteOverview(t)
	h := o.History()
	if len(h) != 3 || h[0].Source != "web" || h[1].Source != "app" || h[2].Source != "web" {
		t.Fatalf("history: %+v, want web@10:00, app@10:02, web@10:02", h)
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var back []Flow
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	stale := Flow{Source: "web", From: now.Add(-2 * time.Hour), Received: 1000}
	future := Flow{Source: "web", From: now.Add(time.Hour), Received: 1000}
	r := NewOverview(time.Hour)
	r.now = func() time.Time { return *now }
	if n := r.Restore(append(back, stale, future)); n != 3 {
		t.Errorf("Restore kept %d flows, want 3", n)
	}
	for _, src := range []string{"web", "app"} {
		a, b := o.Flow(src, now.Add(-time.Hour), *now), r.Flow(src, now.Add(-time.Hour), *now)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Errorf("%s after restore:\n%s\nwant\n%s", src, jb, ja)
		}
	}
	if m := r.Minutes("web", now.Add(-2*time.Minute), *now); m[0].Received != 10 || m[2].Received != 4 {
		t.Errorf("restored minutes: %d, %d; want 10, 4", m[0].Received, m[2].Received)
	}
}
