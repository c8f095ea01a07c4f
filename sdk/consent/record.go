// Package consent holds the stored consent record of one person, in the wire
// format of the project's consent-record contract: Segment's category
// preferences joined with mParticle's per-regulation purposes, each entry
// with its own timestamp, merged last-writer-wins by timestamp.
//
// The package depends only on the standard library and is shared by the host
// (stores, runtime) and by the guest SDK's native test harness.
package consent

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Category is one entry of categoryPreferences.
type Category struct {
	Name      string // category name, matched case-sensitively ("Advertising", "C0004")
	Consented bool
	Timestamp int64 // timestamp_unixtime_ms of the decision
}

// Purpose is one entry of consent_state: a purpose under a regulation.
// For CCPA the purpose is "data_sale_opt_out" and Consented means the
// person opted out of sale.
type Purpose struct {
	Regulation string // "gdpr", "ccpa", ...
	Name       string // purpose name ("location_collection", "data_sale_opt_out")
	Consented  bool
	Timestamp  int64  // timestamp_unixtime_ms
	Document   string // optional: the document the person agreed to
	Location   string // optional: where the decision was collected
	HardwareID string // optional: the device it was collected on
}

// Record is the stored consent of one person. Categories are sorted by Name
// and Purposes by Regulation then Name; [Record.Normalize] restores that
// order after the slices are changed by hand. A Record returned by a store is
// shared: treat it as read-only and [Record.Clone] it to change it.
type Record struct {
	ID         string
	Aliases    []string
	Categories []Category
	Purposes   []Purpose
	UpdatedAt  int64 // updated_at_unixtime_ms
}

// Category returns the category entry called name.
func (r *Record) Category(name string) (Category, bool) {
	if i := r.CategoryIndex(name); i >= 0 {
		return r.Categories[i], true
	}
	return Category{}, false
}

// CategoryIndex returns the index of the category called name in
// Categories, or -1. Categories must be sorted (see Normalize).
func (r *Record) CategoryIndex(name string) int {
	if len(r.Categories) <= 8 { // a short scan beats the search
		for i := range r.Categories {
			if r.Categories[i].Name == name {
				return i
			}
		}
		return -1
	}
	i, ok := slices.BinarySearchFunc(r.Categories, name, func(c Category, n string) int { return strings.Compare(c.Name, n) })
	if !ok {
		return -1
	}
	return i
}

// PurposeIndex returns the index of a regulation's purpose in Purposes, or
// -1. Purposes must be sorted (see Normalize).
func (r *Record) PurposeIndex(regulation, name string) int {
	i, ok := slices.BinarySearchFunc(r.Purposes, Purpose{Regulation: regulation, Name: name}, comparePurposeKey)
	if !ok {
		return -1
	}
	return i
}

// Purpose returns the purpose entry of a regulation.
func (r *Record) Purpose(regulation, name string) (Purpose, bool) {
	if i := r.PurposeIndex(regulation, name); i >= 0 {
		return r.Purposes[i], true
	}
	return Purpose{}, false
}

// CategoryMap flattens the categories to booleans.
func (r *Record) CategoryMap() map[string]bool {
	m := make(map[string]bool, len(r.Categories))
	for _, c := range r.Categories {
		m[c.Name] = c.Consented
	}
	return m
}

// IDs returns the record's id followed by its aliases.
func (r *Record) IDs() []string {
	return append([]string{r.ID}, r.Aliases...)
}

// Clone returns a deep copy of r.
func (r *Record) Clone() *Record {
	c := *r
	c.Aliases = slices.Clone(r.Aliases)
	c.Categories = slices.Clone(r.Categories)
	c.Purposes = slices.Clone(r.Purposes)
	return &c
}

// Normalize sorts categories and purposes, removes duplicate aliases and the
// id from its own aliases, keeping for a duplicated entry the newest one.
func (r *Record) Normalize() {
	// Sort newest first within equal names so that Compact keeps the newest.
	slices.SortStableFunc(r.Categories, func(a, b Category) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return cmp.Compare(b.Timestamp, a.Timestamp)
	})
	r.Categories = slices.CompactFunc(r.Categories, func(a, b Category) bool { return a.Name == b.Name })
	slices.SortStableFunc(r.Purposes, func(a, b Purpose) int {
		if c := comparePurposeKey(a, b); c != 0 {
			return c
		}
		return cmp.Compare(b.Timestamp, a.Timestamp)
	})
	r.Purposes = slices.CompactFunc(r.Purposes, func(a, b Purpose) bool {
		return a.Regulation == b.Regulation && a.Name == b.Name
	})
	r.Aliases = slices.DeleteFunc(r.Aliases, func(a string) bool { return a == "" || a == r.ID })
	slices.Sort(r.Aliases)
	r.Aliases = slices.Compact(r.Aliases)
}

// Merge applies an update to r, entry by entry, last writer wins by the
// entry's timestamp: an update entry older than the stored one changes
// nothing; an equal timestamp lets the update win (replays are harmless).
// Entries the update does not name stay as they are; the update's aliases
// are added. Merge returns the changes that altered a stored value.
func (r *Record) Merge(u *Record) []Change {
	var changes []Change
	for _, uc := range u.Categories {
		i, found := slices.BinarySearchFunc(r.Categories, uc.Name, func(c Category, n string) int { return strings.Compare(c.Name, n) })
		if !found {
			r.Categories = slices.Insert(r.Categories, i, uc)
			changes = append(changes, Change{Kind: "category", Name: uc.Name, New: &Entry{Consented: uc.Consented, Timestamp: uc.Timestamp}})
			continue
		}
		old := r.Categories[i]
		if uc.Timestamp < old.Timestamp {
			continue
		}
		r.Categories[i] = uc
		if old.Consented != uc.Consented {
			changes = append(changes, Change{Kind: "category", Name: uc.Name,
				Old: &Entry{Consented: old.Consented, Timestamp: old.Timestamp},
				New: &Entry{Consented: uc.Consented, Timestamp: uc.Timestamp}})
		}
	}
	for _, up := range u.Purposes {
		i, found := slices.BinarySearchFunc(r.Purposes, up, comparePurposeKey)
		if !found {
			r.Purposes = slices.Insert(r.Purposes, i, up)
			changes = append(changes, Change{Kind: "purpose", Regulation: up.Regulation, Name: up.Name, New: &Entry{Consented: up.Consented, Timestamp: up.Timestamp}})
			continue
		}
		old := r.Purposes[i]
		if up.Timestamp < old.Timestamp {
			continue
		}
		r.Purposes[i] = up
		if old.Consented != up.Consented {
			changes = append(changes, Change{Kind: "purpose", Regulation: up.Regulation, Name: up.Name,
				Old: &Entry{Consented: old.Consented, Timestamp: old.Timestamp},
				New: &Entry{Consented: up.Consented, Timestamp: up.Timestamp}})
		}
	}
	r.Aliases = append(r.Aliases, u.Aliases...)
	if u.ID != "" && u.ID != r.ID {
		r.Aliases = append(r.Aliases, u.ID)
	}
	r.Normalize()
	r.UpdatedAt = max(r.UpdatedAt, u.UpdatedAt)
	for _, c := range r.Categories {
		r.UpdatedAt = max(r.UpdatedAt, c.Timestamp)
	}
	for _, p := range r.Purposes {
		r.UpdatedAt = max(r.UpdatedAt, p.Timestamp)
	}
	return changes
}

func comparePurposeKey(a, b Purpose) int {
	if c := strings.Compare(a.Regulation, b.Regulation); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// Entry is one value in a [Change].
type Entry struct {
	Consented bool  `json:"consented"`
	Timestamp int64 `json:"timestamp_unixtime_ms"`
}

// Change is one altered value: a category or a purpose, its old value (nil
// when it was not stored) and its new value.
type Change struct {
	Kind       string `json:"kind"` // "category" or "purpose"
	Regulation string `json:"regulation,omitempty"`
	Name       string `json:"name"`
	Old        *Entry `json:"old,omitempty"`
	New        *Entry `json:"new"`
}

// wire types: the JSON shape of the consent-record contract.
type wireRecord struct {
	ID                  string                            `json:"id"`
	Aliases             []string                          `json:"aliases,omitempty"`
	CategoryPreferences map[string]wireCategory           `json:"categoryPreferences,omitempty"`
	ConsentState        map[string]map[string]wirePurpose `json:"consent_state,omitempty"`
	UpdatedAt           int64                             `json:"updated_at_unixtime_ms,omitempty"`
}

type wireCategory struct {
	Consented bool  `json:"consented"`
	Timestamp int64 `json:"timestamp_unixtime_ms"`
}

// UnmarshalJSON accepts both the full entry and a bare boolean (timestamp 0).
func (c *wireCategory) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch string(b) {
	case "true":
		*c = wireCategory{Consented: true}
		return nil
	case "false":
		*c = wireCategory{}
		return nil
	}
	type plain wireCategory
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("category entry %.40s: want true, false or {\"consented\": bool, \"timestamp_unixtime_ms\": int}", b)
	}
	*c = wireCategory(p)
	return nil
}

type wirePurpose struct {
	Consented  *bool  `json:"consented"`
	Timestamp  int64  `json:"timestamp_unixtime_ms"`
	Document   string `json:"document,omitempty"`
	Location   string `json:"location,omitempty"`
	HardwareID string `json:"hardware_id,omitempty"`
}

// MarshalJSON writes the record in the wire format.
func (r *Record) MarshalJSON() ([]byte, error) {
	w := wireRecord{ID: r.ID, Aliases: r.Aliases, UpdatedAt: r.UpdatedAt}
	if len(r.Categories) > 0 {
		w.CategoryPreferences = make(map[string]wireCategory, len(r.Categories))
		for _, c := range r.Categories {
			w.CategoryPreferences[c.Name] = wireCategory{Consented: c.Consented, Timestamp: c.Timestamp}
		}
	}
	if len(r.Purposes) > 0 {
		w.ConsentState = make(map[string]map[string]wirePurpose)
		for _, p := range r.Purposes {
			if w.ConsentState[p.Regulation] == nil {
				w.ConsentState[p.Regulation] = make(map[string]wirePurpose)
			}
			consented := p.Consented
			w.ConsentState[p.Regulation][p.Name] = wirePurpose{Consented: &consented, Timestamp: p.Timestamp,
				Document: p.Document, Location: p.Location, HardwareID: p.HardwareID}
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a record in the wire format. Category entries may also
// be bare booleans ({"Advertising": true}), which get timestamp 0. A purpose
// without "consented" is an error.
func (r *Record) UnmarshalJSON(b []byte) error {
	var w wireRecord
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("consent record: %w", err)
	}
	*r = Record{ID: w.ID, Aliases: w.Aliases, UpdatedAt: w.UpdatedAt}
	for name, c := range w.CategoryPreferences {
		r.Categories = append(r.Categories, Category{Name: name, Consented: c.Consented, Timestamp: c.Timestamp})
	}
	for reg, purposes := range w.ConsentState {
		for name, p := range purposes {
			if p.Consented == nil {
				return fmt.Errorf("consent record %q: consent_state.%s.%s: \"consented\" is required", w.ID, reg, name)
			}
			r.Purposes = append(r.Purposes, Purpose{Regulation: reg, Name: name, Consented: *p.Consented,
				Timestamp: p.Timestamp, Document: p.Document, Location: p.Location, HardwareID: p.HardwareID})
		}
	}
	r.Normalize()
	return nil
}

// ErrNotFound is returned by a [Store] that has no record for an id.
var ErrNotFound = errors.New("consent: no record for this id")

// Store is where the host looks stored consent up. Get returns the record
// whose id or alias is id, or an error wrapping [ErrNotFound]. Get must not
// keep id after it returns (the host may pass a view into a buffer it
// reuses), and the record it returns must not be changed afterwards by
// anyone (readers share it without copying). The host calls Get inside a
// function's call, where the time limit cannot interrupt it: a store that
// can be slow (a network backend) must bound its own latency, honour ctx,
// and fail with an error rather than wait.
type Store interface {
	Get(ctx context.Context, id string) (*Record, error)
}

// AsOfStore is a [Store] that also answers what was decided by a given
// time. The host asks it for the consent as of the moment an event was
// received: an event stamped with the person's choice of that moment is
// judged by that choice, however long it waited in the queue while the
// person changed their mind (the change itself, received later, is judged
// by the new choice).
type AsOfStore interface {
	Store
	// GetAsOf returns the record whose id or alias is id, as it stood at
	// at (milliseconds since the Unix epoch): entries decided after at
	// are left out. It returns an error wrapping [ErrNotFound] when no
	// entry was decided by then. The rules of Get apply.
	GetAsOf(ctx context.Context, id string, at int64) (*Record, error)
}
