package redisstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

// How records and history points are stored in Redis hashes; the layout
// is described in scripts.go.

const tsLen = 20 // length of a ts20

// ts20 encodes a timestamp so that byte order is time order.
func ts20(ts int64) string {
	return fmt.Sprintf("%020d", uint64(ts)^(1<<63))
}

// parseTS20 decodes the ts20 at the start of s.
func parseTS20(s string) (int64, error) {
	if len(s) < tsLen {
		return 0, fmt.Errorf("timestamp %q: too short", s)
	}
	u, err := strconv.ParseUint(s[:tsLen], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("timestamp %q: %w", s[:tsLen], err)
	}
	return int64(u ^ (1 << 63)), nil
}

// entry is the JSON after the ts20 of a stored category or purpose.
type entry struct {
	Consented  bool   `json:"c"`
	Regulation string `json:"r,omitempty"`
	Name       string `json:"n"`
	Document   string `json:"d,omitempty"`
	Location   string `json:"l,omitempty"`
	HardwareID string `json:"h,omitempty"`
}

func categoryField(name string) string { return "c:" + name }

func purposeField(regulation, name string) string {
	return "p:" + strconv.Itoa(len(regulation)) + ":" + regulation + name
}

func encodeEntry(ts int64, e *entry) (string, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	return ts20(ts) + string(b), nil
}

// pointMeta is what a history value holds after its decision.
type pointMeta struct {
	Source     string `json:"s,omitempty"`
	RecordedAt int64  `json:"t,omitempty"`
}

// encodePoint returns the history value of p: the decision (the point
// without source and recording time) as JSON, a newline, and the source
// and recording time as JSON. JSON has no raw newline, so the scripts
// compare decisions by the text before the first newline.
func encodePoint(p consentstore.Point) (string, error) {
	meta := pointMeta{Source: p.Source, RecordedAt: p.RecordedAt}
	p.Source, p.RecordedAt = "", 0
	d, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	m, err := json.Marshal(meta)
	if err != nil {
		return "", err
	}
	return string(d) + "\n" + string(m), nil
}

func decodePoint(v string) (consentstore.Point, error) {
	var p consentstore.Point
	d, m, ok := strings.Cut(v, "\n")
	if !ok {
		return p, fmt.Errorf("history point %.60q: no newline", v)
	}
	if err := json.Unmarshal([]byte(d), &p); err != nil {
		return p, fmt.Errorf("history point %.60q: %w", v, err)
	}
	var meta pointMeta
	if err := json.Unmarshal([]byte(m), &meta); err != nil {
		return p, fmt.Errorf("history point %.60q: %w", v, err)
	}
	p.Source, p.RecordedAt = meta.Source, meta.RecordedAt
	return p, nil
}

// updateArgs returns the update script's arguments after P.
func updateArgs(u *consentstore.Update) ([]any, error) {
	r := &u.Record
	args := make([]any, 0, 5+len(r.Aliases)+2*(len(r.Categories)+len(r.Purposes))*2)
	args = append(args, r.ID, len(r.Aliases))
	for _, a := range r.Aliases {
		args = append(args, a)
	}
	args = append(args, len(r.Categories)+len(r.Purposes))
	for _, c := range r.Categories {
		v, err := encodeEntry(c.Timestamp, &entry{Consented: c.Consented, Name: c.Name})
		if err != nil {
			return nil, err
		}
		args = append(args, categoryField(c.Name), v)
	}
	for _, p := range r.Purposes {
		v, err := encodeEntry(p.Timestamp, &entry{Consented: p.Consented, Regulation: p.Regulation, Name: p.Name,
			Document: p.Document, Location: p.Location, HardwareID: p.HardwareID})
		if err != nil {
			return nil, err
		}
		args = append(args, purposeField(p.Regulation, p.Name), v)
	}
	points := u.Points()
	args = append(args, len(points))
	for _, p := range points {
		v, err := encodePoint(p)
		if err != nil {
			return nil, err
		}
		args = append(args, p.Key(), v)
	}
	return append(args, ts20(max(r.UpdatedAt, 0))), nil
}

// decodeRecord builds the record with primary id id from the fields of
// its hash (field, value, field, value, ...).
func decodeRecord(id string, fields []any) (*consent.Record, error) {
	if len(fields)%2 != 0 {
		return nil, fmt.Errorf("record %q: odd number of hash fields", id)
	}
	r := &consent.Record{ID: id}
	for i := 0; i < len(fields); i += 2 {
		f, ok1 := fields[i].(string)
		v, ok2 := fields[i+1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("record %q: hash field %d is not a string", id, i/2)
		}
		switch {
		case f == "u":
			ts, err := parseTS20(v)
			if err != nil {
				return nil, fmt.Errorf("record %q: updated_at: %w", id, err)
			}
			r.UpdatedAt = ts
		case strings.HasPrefix(f, "a:"):
			r.Aliases = append(r.Aliases, f[2:])
		case strings.HasPrefix(f, "c:"), strings.HasPrefix(f, "p:"):
			ts, err := parseTS20(v)
			if err != nil {
				return nil, fmt.Errorf("record %q: entry %q: %w", id, f, err)
			}
			var e entry
			if err := json.Unmarshal([]byte(v[tsLen:]), &e); err != nil {
				return nil, fmt.Errorf("record %q: entry %q: %w", id, f, err)
			}
			if f[0] == 'c' {
				r.Categories = append(r.Categories, consent.Category{Name: e.Name, Consented: e.Consented, Timestamp: ts})
			} else {
				r.Purposes = append(r.Purposes, consent.Purpose{Regulation: e.Regulation, Name: e.Name, Consented: e.Consented,
					Timestamp: ts, Document: e.Document, Location: e.Location, HardwareID: e.HardwareID})
			}
		default:
			return nil, fmt.Errorf("record %q: unknown hash field %.60q", id, f)
		}
	}
	r.Normalize()
	return r, nil
}

// decodeHistory decodes the fields of a history hash.
func decodeHistory(id string, fields []any) ([]consentstore.Point, error) {
	if len(fields)%2 != 0 {
		return nil, fmt.Errorf("history of %q: odd number of hash fields", id)
	}
	points := make([]consentstore.Point, 0, len(fields)/2)
	for i := 1; i < len(fields); i += 2 {
		v, ok := fields[i].(string)
		if !ok {
			return nil, fmt.Errorf("history of %q: hash value %d is not a string", id, i/2)
		}
		p, err := decodePoint(v)
		if err != nil {
			return nil, fmt.Errorf("history of %q: %w", id, err)
		}
		points = append(points, p)
	}
	return points, nil
}
