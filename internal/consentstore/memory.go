// Package consentstore is the consent store of the host: every person's
// stored consent in the shape of the consent-record contract, merged
// last-writer-wins per entry, with history, behind the [consent.Store]
// interface the runtime looks consent up in.
//
// A [Store] is a [Backend] (where records live) plus an optional cache and
// the contract's operations: Get, Update, Link, Delete, History and AsOf.
// The backends are [Memory] (this package), the embedded database
// (boltstore), Redis (redisstore) and a company's own consent service
// (httpstore); storeconfig opens the one a configuration names. Every
// backend passes the same behavioural suite (storetest).
//
// [Load] and [LoadFile] fill a [Memory] from a file of records (a JSON
// array, a single object, or NDJSON).
package consentstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/insertfn/insertfn/sdk/consent"
)

// Memory is an in-memory [Backend], safe for concurrent use: for tests,
// `insertfn test`, and hosts that load their records from a file at start.
// Its zero value is an empty store ready to use.
//
// The records Get returns are shared and never changed afterwards: Update
// builds a new record (clone, merge, swap) instead of changing one already
// handed out.
type Memory struct {
	mu      sync.RWMutex
	closed  bool
	ids     map[string]*consent.Record  // every id and alias -> its record
	recs    map[string]*consent.Record  // primary id -> record
	history map[string]map[string]Point // primary id -> Point.Key -> point
}

// NewMemory returns an empty store.
func NewMemory() *Memory { return &Memory{} }

var (
	_ consent.Store = (*Memory)(nil)
	_ Backend       = (*Memory)(nil)
)

// Get returns the record whose id or alias is id, or [consent.ErrNotFound].
// It does not keep id and allocates nothing. The record is shared: treat it
// as read-only.
func (m *Memory) Get(_ context.Context, id string) (*consent.Record, error) {
	m.mu.RLock()
	rec, closed := m.ids[id], m.closed
	m.mu.RUnlock()
	if rec == nil {
		if closed {
			return nil, ErrClosed
		}
		return nil, consent.ErrNotFound
	}
	return rec, nil
}

// Put merges rec into the store as an update from source "import" and
// returns the changes it made to stored values; see [Memory.Update].
func (m *Memory) Put(rec *consent.Record) ([]consent.Change, error) {
	if rec == nil || rec.ID == "" {
		return nil, ErrNoID
	}
	u := Update{Record: *rec.Clone(), Source: "import"}
	u.Record.Normalize()
	_, changes, err := m.Update(context.Background(), &u)
	return changes, err
}

// Update merges u into the record its ids find, as [MergeRecords] says,
// and adds its decisions to the record's history. When u's ids find several
// records they are linked into one, with their histories.
func (m *Memory) Update(_ context.Context, u *Update) (*consent.Record, []consent.Change, error) {
	if u.Record.ID == "" {
		return nil, nil, ErrNoID
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, nil, ErrClosed
	}
	if m.ids == nil {
		m.ids = make(map[string]*consent.Record)
		m.recs = make(map[string]*consent.Record)
		m.history = make(map[string]map[string]Point)
	}

	base := m.ids[u.Record.ID]
	var linked []*consent.Record
	for _, a := range u.Record.Aliases {
		if r := m.ids[a]; r != nil && r != base && !slices.Contains(linked, r) {
			linked = append(linked, r)
		}
	}
	merged, changes := MergeRecords(u, base, linked)

	// History: the merged record's keeps every point of the records merged
	// into it, then u's.
	hist := m.history[merged.ID]
	if hist == nil {
		hist = make(map[string]Point)
	}
	for _, old := range append(linked, base) {
		if old == nil || old.ID == merged.ID {
			continue
		}
		for _, p := range m.history[old.ID] {
			UpsertPoint(hist, p)
		}
		delete(m.history, old.ID)
	}
	for _, p := range u.Points() {
		UpsertPoint(hist, p)
	}

	// Swap: forget the old records and their ids, index the merged one.
	for _, old := range append(linked, base) {
		if old == nil {
			continue
		}
		delete(m.recs, old.ID)
		for _, id := range old.IDs() {
			delete(m.ids, id)
		}
	}
	m.recs[merged.ID] = merged
	m.history[merged.ID] = hist
	for _, id := range merged.IDs() {
		m.ids[id] = merged
	}
	return merged, changes, nil
}

// Delete removes the record that id or one of its aliases finds, with all
// its aliases and its history (a person's erasure request), and returns it.
func (m *Memory) Delete(_ context.Context, id string) (*consent.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	rec := m.ids[id]
	if rec == nil {
		return nil, fmt.Errorf("consent store: delete %q: %w", id, consent.ErrNotFound)
	}
	delete(m.recs, rec.ID)
	delete(m.history, rec.ID)
	for _, i := range rec.IDs() {
		delete(m.ids, i)
	}
	return rec, nil
}

// History returns the record that id finds and the points of its history.
func (m *Memory) History(_ context.Context, id string) (*consent.Record, []Point, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, nil, ErrClosed
	}
	rec := m.ids[id]
	if rec == nil {
		return nil, nil, fmt.Errorf("consent store: history of %q: %w", id, consent.ErrNotFound)
	}
	points := make([]Point, 0, len(m.history[rec.ID]))
	for _, p := range m.history[rec.ID] {
		points = append(points, p)
	}
	return rec, points, nil
}

// Scan calls fn with every record, sorted by id, until fn returns an error.
func (m *Memory) Scan(ctx context.Context, fn func(*consent.Record) error) error {
	m.mu.RLock()
	closed := m.closed
	m.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	for _, r := range m.Records() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Close empties the store; later calls that write fail with [ErrClosed].
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.ids, m.recs, m.history = nil, nil, nil
	return nil
}

// Len returns the number of records (not counting aliases).
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.recs)
}

// Records returns every record, sorted by id. The records are shared:
// treat them as read-only.
func (m *Memory) Records() []*consent.Record {
	m.mu.RLock()
	out := make([]*consent.Record, 0, len(m.recs))
	for _, r := range m.recs {
		out = append(out, r)
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b *consent.Record) int { return strings.Compare(a.ID, b.ID) })
	return out
}
