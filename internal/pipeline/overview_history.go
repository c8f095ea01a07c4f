package pipeline

import (
	"cmp"
	"slices"
	"time"
)

// History returns everything o remembers, to be kept across a restart
// and given to [Overview.Restore]: one Flow per source and minute with
// counts, oldest first, its From the minute's start and its To the
// minute's end. The counts by event type and of consent updates, which
// only [Counters] reads, are not part of it.
func (o *Overview) History() []Flow {
	o.mu.Lock()
	minutes := make([]int64, 0, len(o.minutes))
	for m := range o.minutes {
		minutes = append(minutes, m)
	}
	slices.Sort(minutes)
	var out []Flow
	for _, m := range minutes {
		start := len(out)
		for source := range o.minutes[m] {
			f := o.sum(source, m, m)
			f.From, f.To = minuteStart(m), minuteStart(m+1).Add(-time.Nanosecond)
			out = append(out, f)
		}
		slices.SortFunc(out[start:], func(a, b Flow) int { return cmp.Compare(a.Source, b.Source) })
	}
	o.mu.Unlock()
	return out
}

// Restore adds flows, as [Overview.History] returned them, to the minutes
// their From falls in: after a restart, the history the previous process
// kept. Flows older than the window, or later than the current minute
// (a clock set back), are left out.
//
// # Results
//   - how many flows were added.
func (o *Overview) Restore(flows []Flow) int {
	now := o.now().Unix() / 60
	oldest := now - int64(o.window/time.Minute)
	n := 0
	for _, f := range flows {
		m := f.From.Unix() / 60
		if m < oldest || m > now || f.Source == "" {
			continue
		}
		o.addAt(m, f.batch())
		n++
	}
	return n
}
