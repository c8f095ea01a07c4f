package consentstore

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/insertfn/insertfn/sdk/consent"
)

// Kinds of [Point] and [consent.Change].
const (
	KindCategory = "category" // an entry of categoryPreferences
	KindPurpose  = "purpose"  // a purpose of consent_state, under a regulation
)

// Point is one decision a person made about one category or purpose, as a
// backend stores it in the record's history: the value, the time of the
// decision (the entry's timestamp) and where the update came from.
//
// A record's history is the set of its points, one per entry and
// timestamp: the same decision written twice (a replayed event, a
// re-imported file) is stored once, and a different value with the same
// timestamp replaces the point (the update wins, as in the merge rule).
// Points are kept whatever their arrival order, also those too old to
// change the current record: [AsOf] needs them to answer for any time.
type Point struct {
	Kind       string `json:"kind"`                 // KindCategory or KindPurpose
	Regulation string `json:"regulation,omitempty"` // purposes only: "gdpr", "ccpa", ...
	Name       string `json:"name"`                 // category or purpose name
	Consented  bool   `json:"consented"`
	Timestamp  int64  `json:"timestamp_unixtime_ms"` // when the person decided
	Document   string `json:"document,omitempty"`    // purposes only, optional
	Location   string `json:"location,omitempty"`    // purposes only, optional
	HardwareID string `json:"hardware_id,omitempty"` // purposes only, optional
	Source     string `json:"source,omitempty"`      // where the update came from
	RecordedAt int64  `json:"recorded_at_unixtime_ms,omitempty"`
}

// EntryKey returns the key of the entry p is a decision about:
// "category\x00NAME" or "purpose\x00REGULATION\x00NAME".
func (p *Point) EntryKey() string {
	if p.Kind == KindPurpose {
		return KindPurpose + "\x00" + p.Regulation + "\x00" + p.Name
	}
	return KindCategory + "\x00" + p.Name
}

// Key returns the key a backend stores p under within its record: the
// entry key, a NUL and the timestamp in decimal. Two points with the same
// key are the same decision or a conflict the later write wins.
func (p *Point) Key() string {
	return p.EntryKey() + "\x00" + strconv.FormatInt(p.Timestamp, 10)
}

// SameDecision reports whether p and q record the same value for the same
// entry and time (their sources and recording times may differ).
func (p *Point) SameDecision(q *Point) bool {
	return p.Kind == q.Kind && p.Regulation == q.Regulation && p.Name == q.Name &&
		p.Consented == q.Consented && p.Timestamp == q.Timestamp &&
		p.Document == q.Document && p.Location == q.Location && p.HardwareID == q.HardwareID
}

// UpsertPoint merges the new point p into a record's history held as a map
// from [Point.Key]: an unknown key is added; the same decision is kept as
// first recorded (a replay adds nothing); a different value for the same
// key replaces the old point. It reports whether the map changed.
func UpsertPoint(points map[string]Point, p Point) bool {
	k := p.Key()
	if old, ok := points[k]; ok && old.SameDecision(&p) {
		return false
	}
	points[k] = p
	return true
}

// HistoryEntry is one decision in a record's history as [History] returns
// it: the point, the value in effect for that entry just before it (nil
// when there was none), and whether it changed that value.
type HistoryEntry struct {
	Point
	Old     *consent.Entry `json:"old,omitempty"`
	Changed bool           `json:"changed"`
}

// History orders points as a history: by decision time, then entry, and
// derives each one's previous value from the point before it for the same
// entry. It does not change points.
func History(points []Point) []HistoryEntry {
	out := make([]HistoryEntry, len(points))
	for i := range points {
		out[i].Point = points[i]
	}
	slices.SortFunc(out, func(a, b HistoryEntry) int {
		if c := cmp.Compare(a.Timestamp, b.Timestamp); c != 0 {
			return c
		}
		return strings.Compare(a.EntryKey(), b.EntryKey())
	})
	last := make(map[string]*consent.Entry)
	for i := range out {
		k := out[i].EntryKey()
		prev := last[k]
		out[i].Old = prev
		out[i].Changed = prev == nil || prev.Consented != out[i].Consented
		last[k] = &consent.Entry{Consented: out[i].Consented, Timestamp: out[i].Timestamp}
	}
	return out
}

// AsOf rebuilds what a person had consented to at time at (Unix
// milliseconds) from the points of their history: for each entry the
// newest decision taken at or before at. The result has rec's id and
// aliases; entries decided only after at are absent, and UpdatedAt is the
// newest timestamp kept (0 when none).
func AsOf(rec *consent.Record, points []Point, at int64) *consent.Record {
	out := &consent.Record{ID: rec.ID, Aliases: slices.Clone(rec.Aliases)}
	newest := make(map[string]int) // entry key -> index in points
	for i := range points {
		p := &points[i]
		if p.Timestamp > at {
			continue
		}
		k := p.EntryKey()
		if j, ok := newest[k]; !ok || points[j].Timestamp < p.Timestamp {
			newest[k] = i
		}
	}
	for _, i := range newest {
		p := &points[i]
		if p.Kind == KindPurpose {
			out.Purposes = append(out.Purposes, consent.Purpose{Regulation: p.Regulation, Name: p.Name,
				Consented: p.Consented, Timestamp: p.Timestamp, Document: p.Document, Location: p.Location, HardwareID: p.HardwareID})
		} else {
			out.Categories = append(out.Categories, consent.Category{Name: p.Name, Consented: p.Consented, Timestamp: p.Timestamp})
		}
		out.UpdatedAt = max(out.UpdatedAt, p.Timestamp)
	}
	out.Normalize()
	return out
}

// PointsOf returns the decisions an update carries, one point per category
// and purpose, with source and recording time (Unix milliseconds).
func PointsOf(u *consent.Record, source string, recordedAt int64) []Point {
	pts := make([]Point, 0, len(u.Categories)+len(u.Purposes))
	for _, c := range u.Categories {
		pts = append(pts, Point{Kind: KindCategory, Name: c.Name, Consented: c.Consented, Timestamp: c.Timestamp,
			Source: source, RecordedAt: recordedAt})
	}
	for _, p := range u.Purposes {
		pts = append(pts, Point{Kind: KindPurpose, Regulation: p.Regulation, Name: p.Name, Consented: p.Consented,
			Timestamp: p.Timestamp, Document: p.Document, Location: p.Location, HardwareID: p.HardwareID,
			Source: source, RecordedAt: recordedAt})
	}
	return pts
}
