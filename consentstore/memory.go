// Package consentstore holds consent stores for the host: backends of the
// [consent.Store] interface that the runtime looks stored consent up in.
//
// [Memory] keeps every record in memory; [Load] and [LoadFile] fill one from
// a file of records in the wire format of the consent-record contract (a
// JSON array, a single object, or NDJSON).
package consentstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/insertfn/insertfn/sdk/consent"
)

// ErrNoID is returned by [Memory.Put] for a record without an id.
var ErrNoID = errors.New("consentstore: record without an id")

// Memory is an in-memory consent store, safe for concurrent use. Its zero
// value is an empty store ready to use.
//
// A record is found by its id or by any of its aliases. The records Get and
// Records return are shared and never changed afterwards: Put builds a new
// record (clone, merge, swap) instead of changing one already handed out.
type Memory struct {
	mu   sync.RWMutex
	ids  map[string]*consent.Record // every id and alias -> its record
	recs map[string]*consent.Record // primary id -> record
}

// NewMemory returns an empty store.
func NewMemory() *Memory { return &Memory{} }

var _ consent.Store = (*Memory)(nil)

// Get returns the record whose id or alias is id, or [consent.ErrNotFound].
// It does not keep id and allocates nothing. The record is shared: treat it
// as read-only.
func (m *Memory) Get(_ context.Context, id string) (*consent.Record, error) {
	m.mu.RLock()
	rec := m.ids[id]
	m.mu.RUnlock()
	if rec == nil {
		return nil, consent.ErrNotFound
	}
	return rec, nil
}

// Put merges rec into the store and returns the changes it made to stored
// values.
//
// rec is an update in the contract's sense: each of its categories and
// purposes is merged with [consent.Record.Merge], last writer wins by the
// entry's timestamp, and entries it does not name stay as they are. It is
// merged into the record that its id or one of its aliases already finds;
// when its ids find several records, they become linked and are merged into
// one (their ids becoming aliases), rec last so that it wins equal
// timestamps. The merged record keeps the id of the record that rec.ID
// finds, or else rec.ID. UpdatedAt becomes the newest of the merged
// records' UpdatedAt and entry timestamps.
//
// Put does not keep rec or any of its slices. It returns [ErrNoID] when
// rec has no id.
func (m *Memory) Put(rec *consent.Record) ([]consent.Change, error) {
	if rec == nil || rec.ID == "" {
		return nil, ErrNoID
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ids == nil {
		m.ids = make(map[string]*consent.Record)
		m.recs = make(map[string]*consent.Record)
	}

	// The stored records that rec's ids find: the one rec.ID finds first.
	base := m.ids[rec.ID]
	var linked []*consent.Record
	for _, a := range rec.Aliases {
		if r := m.ids[a]; r != nil && r != base && !slices.Contains(linked, r) {
			linked = append(linked, r)
		}
	}
	slices.SortFunc(linked, func(a, b *consent.Record) int { return strings.Compare(a.ID, b.ID) })

	merged := &consent.Record{ID: rec.ID}
	if base != nil {
		merged = base.Clone()
	}
	updatedAt := merged.UpdatedAt
	for _, r := range linked {
		merged.Merge(r)
		updatedAt = max(updatedAt, r.UpdatedAt)
	}
	changes := merged.Merge(rec)
	merged.UpdatedAt = max(merged.UpdatedAt, updatedAt, rec.UpdatedAt)

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
	m.ids[merged.ID] = merged
	for _, a := range merged.Aliases {
		m.ids[a] = merged
	}
	return changes, nil
}

// Delete removes the record that id or one of its aliases finds, with all
// its aliases (a person's erasure request). It reports whether there was
// one.
func (m *Memory) Delete(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := m.ids[id]
	if rec == nil {
		return false
	}
	delete(m.recs, rec.ID)
	for _, i := range rec.IDs() {
		delete(m.ids, i)
	}
	return true
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
