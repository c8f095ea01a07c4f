// Package boltstore is the embedded consent store backend: every record,
// its aliases and its history in one bbolt file, consent.db, in a data
// directory. It is the default backend of a single insertfn host.
//
// Every update is one bbolt read-write transaction, synced to disk before
// Update returns, so an acknowledged update survives a crash or kill -9.
// Concurrent updates are coalesced into shared transactions (bbolt's
// Batch), one fsync for many writers. Lookups read a bbolt snapshot and
// decode a compact binary encoding of the record (not JSON), behind a
// small in-process cache of decoded records that the store's own writes
// keep exact.
//
// Layout of the file:
//
//	records:  primary id -> record
//	ids:      id or alias -> primary id (a record's primary id maps to itself)
//	history:  primary id -> bucket of points, Point.Key() -> point
//	meta:     "format" -> layout version
package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/insertfn/insertfn/consentstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

// FileName is the name of the database file in the data directory.
const FileName = "consent.db"

// Defaults of [Options].
const (
	DefaultLockTimeout = 2 * time.Second
	DefaultBatchDelay  = 2 * time.Millisecond
	DefaultBatchSize   = 1000
	DefaultCacheSize   = 100_000
)

// Options configure the embedded store. The zero value is the defaults:
// synced writes, a 2s wait for the file lock, a 2ms batch window.
type Options struct {
	// LockTimeout is how long Open waits for the database file's lock,
	// held by another process that has the same data directory open.
	// 0 means DefaultLockTimeout; negative means do not wait.
	LockTimeout time.Duration `json:"lock_timeout" yaml:"lock_timeout"`
	// BatchDelay is how long a write waits for other writes to share its
	// transaction and fsync when several run at once (a lone write does not
	// wait). 0 means DefaultBatchDelay.
	BatchDelay time.Duration `json:"batch_delay" yaml:"batch_delay"`
	// BatchSize is the most writes one transaction takes. 0 means
	// DefaultBatchSize.
	BatchSize int `json:"batch_size" yaml:"batch_size"`
	// CacheSize is the most decoded records kept in memory for lookups;
	// the store's own writes keep it exact. 0 means DefaultCacheSize;
	// negative disables the cache.
	CacheSize int `json:"cache_size" yaml:"cache_size"`
	// NoSync skips the fsync of each transaction: an acknowledged write
	// may be lost in a crash. For tests only.
	NoSync bool `json:"no_sync" yaml:"no_sync"`
}

// Store is the embedded [consentstore.Backend]. It is safe for concurrent
// use by many goroutines; only one process may have a data directory open.
type Store struct {
	db       *bolt.DB
	path     string
	closed   atomic.Bool
	inflight atomic.Int32 // updates running now: a lone one does not wait for a batch
	cache    *cache       // nil when disabled
	closeMu  sync.Mutex
}

var (
	_ consentstore.Backend = (*Store)(nil)
	_ consent.Store        = (*Store)(nil)
)

var (
	bucketRecords = []byte("records")
	bucketIDs     = []byte("ids")
	bucketHistory = []byte("history")
	bucketMeta    = []byte("meta")
	keyFormat     = []byte("format")
)

// layoutVersion is the meta/format value of the layout above.
const layoutVersion = "1"

// Open opens the store in dir, creating dir (mode 0700) and dir/consent.db
// when they do not exist. Only one process may have dir open: Open fails
// after opts.LockTimeout when another holds it.
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("consent store: bolt: no data directory configured")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("consent store: bolt: create data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	timeout := opts.LockTimeout
	switch {
	case timeout == 0:
		timeout = DefaultLockTimeout
	case timeout < 0:
		timeout = time.Nanosecond // bbolt: 0 would wait forever
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      timeout,
		NoSync:       opts.NoSync,
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("consent store: bolt: %s is locked by another process (another insertfn?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("consent store: bolt: open %s: %w", path, err)
	}
	db.MaxBatchDelay = opts.BatchDelay
	if db.MaxBatchDelay <= 0 {
		db.MaxBatchDelay = DefaultBatchDelay
	}
	db.MaxBatchSize = opts.BatchSize
	if db.MaxBatchSize <= 0 {
		db.MaxBatchSize = DefaultBatchSize
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketRecords, bucketIDs, bucketHistory, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keyFormat); {
		case v == nil:
			return meta.Put(keyFormat, []byte(layoutVersion))
		case string(v) != layoutVersion:
			return fmt.Errorf("layout version %q, this insertfn reads %q (written by a newer insertfn?)", v, layoutVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("consent store: bolt: open %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	size := opts.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	if size > 0 {
		s.cache = newCache(size)
	}
	return s, nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// start checks that a call may begin: the store is open and ctx is live.
func (s *Store) start(ctx context.Context) error {
	if s.closed.Load() {
		return consentstore.ErrClosed
	}
	return ctx.Err()
}

// dbErr turns an error of bbolt into the store's: ErrClosed after Close,
// ErrUnavailable for failures of the database itself.
func (s *Store) dbErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bolt.ErrDatabaseNotOpen) || s.closed.Load() && errors.Is(err, bolt.ErrTxClosed):
		return consentstore.ErrClosed
	case errors.Is(err, ErrCorrupt), errors.Is(err, consentstore.ErrNoID), errors.Is(err, consent.ErrNotFound),
		errors.Is(err, bolt.ErrKeyTooLarge), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("consent store: bolt: %s: %w", what, err)
	}
	return fmt.Errorf("consent store: bolt: %s: %w: %w", what, consentstore.ErrUnavailable, err)
}

// Get returns the record whose id or alias is id, or
// [consent.ErrNotFound]. The record is shared: treat it as read-only.
func (s *Store) Get(ctx context.Context, id string) (*consent.Record, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	var gen uint64
	if s.cache != nil {
		var rec *consent.Record
		if rec, gen = s.cache.get(id); rec != nil {
			return rec, nil
		}
	}
	var rec *consent.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = find(tx, []byte(id))
		return err
	})
	if err != nil {
		return nil, s.dbErr(fmt.Sprintf("get %q", id), err)
	}
	if rec == nil {
		return nil, consent.ErrNotFound
	}
	if s.cache != nil {
		s.cache.put(gen, id, rec)
	}
	return rec, nil
}

// find returns the record that id finds in tx, or nil.
func find(tx *bolt.Tx, id []byte) (*consent.Record, error) {
	primary := tx.Bucket(bucketIDs).Get(id)
	if primary == nil {
		return nil, nil
	}
	v := tx.Bucket(bucketRecords).Get(primary)
	if v == nil {
		return nil, fmt.Errorf("%w: id %q points to record %q, which is missing", ErrCorrupt, id, primary)
	}
	rec, err := decodeRecord(v)
	if err != nil {
		return nil, fmt.Errorf("record %q: %w", primary, err)
	}
	return rec, nil
}

// Update merges u into the record its ids find, linking records when they
// find several, as [consentstore.MergeRecords] says, and adds u's decisions
// to the history; all in one transaction, synced before Update returns.
// Updates running at the same time share a transaction. ctx is checked
// before the update starts; once started it completes.
func (s *Store) Update(ctx context.Context, u *consentstore.Update) (*consent.Record, []consent.Change, error) {
	if err := s.start(ctx); err != nil {
		return nil, nil, err
	}
	if err := check(u); err != nil {
		return nil, nil, err
	}
	var (
		rec     *consent.Record
		changes []consent.Change
		touched []string
	)
	// Batch may run fn more than once (when another update of the batch
	// fails, the rest run again): fn recomputes everything from tx.
	fn := func(tx *bolt.Tx) error {
		var err error
		touched = touched[:0]
		rec, changes, touched, err = apply(tx, u, touched)
		return err
	}
	var err error
	if s.inflight.Add(1) == 1 {
		err = s.db.Update(fn)
	} else {
		err = s.db.Batch(fn)
	}
	s.inflight.Add(-1)
	s.invalidate(touched)
	if err != nil {
		return nil, nil, s.dbErr(fmt.Sprintf("update %q", u.Record.ID), err)
	}
	return rec, changes, nil
}

// UpdateMany applies updates in order in one transaction and one fsync,
// for bulk imports: all of them or, on error, none. Each update must be
// prepared as [consentstore.Store.Update] prepares one (validated,
// timestamps stamped, RecordedAt set). It returns the changes of each.
// Keep batches to a few thousand updates: the transaction is held in memory
// until it commits.
func (s *Store) UpdateMany(ctx context.Context, updates []*consentstore.Update) ([][]consent.Change, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	for i, u := range updates {
		if err := check(u); err != nil {
			return nil, fmt.Errorf("update %d of %d: %w", i+1, len(updates), err)
		}
	}
	all := make([][]consent.Change, len(updates))
	var touched []string
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i, u := range updates {
			if i%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			var err error
			_, all[i], touched, err = apply(tx, u, touched)
			if err != nil {
				return fmt.Errorf("update %d of %d (%q): %w", i+1, len(updates), u.Record.ID, err)
			}
		}
		return nil
	})
	s.invalidate(touched)
	if err != nil {
		return nil, s.dbErr("update many", err)
	}
	return all, nil
}

// check refuses updates bbolt cannot store, before they join a batch
// (where a failing update makes the others run again).
func check(u *consentstore.Update) error {
	if u == nil || u.Record.ID == "" {
		return consentstore.ErrNoID
	}
	for _, id := range u.Record.IDs() {
		if len(id) > bolt.MaxKeySize {
			return fmt.Errorf("consent store: bolt: update of %.40q...: an id of %d bytes, the most is %d", id, len(id), bolt.MaxKeySize)
		}
	}
	return nil
}

// apply is one update inside tx. It appends to touched every id whose
// lookup may have changed.
func apply(tx *bolt.Tx, u *consentstore.Update, touched []string) (*consent.Record, []consent.Change, []string, error) {
	ids, records, history := tx.Bucket(bucketIDs), tx.Bucket(bucketRecords), tx.Bucket(bucketHistory)

	base, err := find(tx, []byte(u.Record.ID))
	if err != nil {
		return nil, nil, touched, err
	}
	var linked []*consent.Record
	for _, a := range u.Record.Aliases {
		r, err := find(tx, []byte(a))
		if err != nil {
			return nil, nil, touched, err
		}
		if r == nil || base != nil && r.ID == base.ID ||
			slices.ContainsFunc(linked, func(l *consent.Record) bool { return l.ID == r.ID }) {
			continue
		}
		linked = append(linked, r)
	}
	merged, changes := consentstore.MergeRecords(u, base, linked)
	olds := linked
	if base != nil {
		olds = append(olds, base)
	}

	// History: the merged record's keeps every point of the records merged
	// into it, then u's.
	hist, err := history.CreateBucketIfNotExists([]byte(merged.ID))
	if err != nil {
		return nil, nil, touched, err
	}
	for _, old := range olds {
		if old.ID == merged.ID {
			continue
		}
		if ob := history.Bucket([]byte(old.ID)); ob != nil {
			err := ob.ForEach(func(k, v []byte) error {
				p, err := decodePoint(v)
				if err != nil {
					return fmt.Errorf("history of %q: point %q: %w", old.ID, k, err)
				}
				return upsertPoint(hist, &p)
			})
			if err != nil {
				return nil, nil, touched, err
			}
			if err := history.DeleteBucket([]byte(old.ID)); err != nil {
				return nil, nil, touched, err
			}
		}
	}
	for _, p := range consentstore.PointsOf(&u.Record, u.Source, u.RecordedAt) {
		if err := upsertPoint(hist, &p); err != nil {
			return nil, nil, touched, fmt.Errorf("history of %q: %w", merged.ID, err)
		}
	}

	// Swap: forget the old records and their ids, index the merged one.
	for _, old := range olds {
		if err := records.Delete([]byte(old.ID)); err != nil {
			return nil, nil, touched, err
		}
		for _, id := range old.IDs() {
			if err := ids.Delete([]byte(id)); err != nil {
				return nil, nil, touched, err
			}
			touched = append(touched, id)
		}
	}
	if err := records.Put([]byte(merged.ID), encodeRecord(merged)); err != nil {
		return nil, nil, touched, err
	}
	primary := []byte(merged.ID)
	for _, id := range merged.IDs() {
		if err := ids.Put([]byte(id), primary); err != nil {
			return nil, nil, touched, err
		}
		touched = append(touched, id)
	}
	return merged, changes, touched, nil
}

// upsertPoint is [consentstore.UpsertPoint] on a history bucket: an unknown
// key is added, the same decision is kept as first recorded, a different
// value for the same key replaces the stored point.
func upsertPoint(hist *bolt.Bucket, p *consentstore.Point) error {
	key := []byte(p.Key())
	if v := hist.Get(key); v != nil {
		old, err := decodePoint(v)
		if err != nil {
			return fmt.Errorf("point %q: %w", key, err)
		}
		if old.SameDecision(p) {
			return nil
		}
	}
	return hist.Put(key, encodePoint(p))
}

// Delete removes the record that id or one of its aliases finds, with all
// its aliases and its history (a person's erasure request), and returns it.
func (s *Store) Delete(ctx context.Context, id string) (*consent.Record, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	var rec *consent.Record
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if rec, err = find(tx, []byte(id)); err != nil || rec == nil {
			return err
		}
		if err := tx.Bucket(bucketRecords).Delete([]byte(rec.ID)); err != nil {
			return err
		}
		ids := tx.Bucket(bucketIDs)
		for _, i := range rec.IDs() {
			if err := ids.Delete([]byte(i)); err != nil {
				return err
			}
		}
		err = tx.Bucket(bucketHistory).DeleteBucket([]byte(rec.ID))
		if errors.Is(err, bolt.ErrBucketNotFound) {
			err = nil
		}
		return err
	})
	if rec != nil {
		s.invalidate(append(rec.IDs(), id))
	}
	if err != nil {
		return nil, s.dbErr(fmt.Sprintf("delete %q", id), err)
	}
	if rec == nil {
		return nil, fmt.Errorf("consent store: delete %q: %w", id, consent.ErrNotFound)
	}
	return rec, nil
}

// History returns the record that id finds and the points of its history,
// ordered by key.
func (s *Store) History(ctx context.Context, id string) (*consent.Record, []consentstore.Point, error) {
	if err := s.start(ctx); err != nil {
		return nil, nil, err
	}
	var (
		rec    *consent.Record
		points []consentstore.Point
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if rec, err = find(tx, []byte(id)); err != nil || rec == nil {
			return err
		}
		hist := tx.Bucket(bucketHistory).Bucket([]byte(rec.ID))
		if hist == nil {
			return nil
		}
		points = make([]consentstore.Point, 0, hist.Stats().KeyN)
		return hist.ForEach(func(k, v []byte) error {
			p, err := decodePoint(v)
			if err != nil {
				return fmt.Errorf("history of %q: point %q: %w", rec.ID, k, err)
			}
			points = append(points, p)
			return nil
		})
	})
	if err != nil {
		return nil, nil, s.dbErr(fmt.Sprintf("history of %q", id), err)
	}
	if rec == nil {
		return nil, nil, fmt.Errorf("consent store: history of %q: %w", id, consent.ErrNotFound)
	}
	return rec, points, nil
}

// scanChunk is how many records Scan reads per read transaction. fn runs
// outside the transaction, so that it may write to the store (a long read
// transaction would stop the file from growing).
const scanChunk = 256

// Scan calls fn with every record, in id order, until fn returns an error,
// which Scan returns. It is not a snapshot: a record written during the
// scan may or may not be seen.
func (s *Store) Scan(ctx context.Context, fn func(*consent.Record) error) error {
	var after []byte
	for {
		if err := s.start(ctx); err != nil {
			return err
		}
		chunk := make([]*consent.Record, 0, scanChunk)
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketRecords).Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(chunk) < scanChunk; k, v = c.Next() {
				rec, err := decodeRecord(v)
				if err != nil {
					return fmt.Errorf("record %q: %w", k, err)
				}
				chunk = append(chunk, rec)
			}
			return nil
		})
		if err != nil {
			return s.dbErr("scan", err)
		}
		for _, rec := range chunk {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		if len(chunk) < scanChunk {
			return nil
		}
		after = []byte(chunk[len(chunk)-1].ID)
	}
}

// Close closes the database file, after the transactions running now end.
// Later calls fail with [consentstore.ErrClosed]. Close is idempotent.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("consent store: bolt: close %s: %w", s.path, err)
	}
	return nil
}

func (s *Store) invalidate(ids []string) {
	if s.cache != nil && len(ids) > 0 {
		s.cache.invalidate(ids)
	}
}
