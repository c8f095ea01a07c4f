// Package boltstore is the embedded consent store backend: every record,
// its aliases and its history in one bbolt file, consent.db, in a data
// directory. It is the default backend of a single insertfn host.
//
// Every update is one bbolt read-write transaction, synced to disk before
// Update returns, so an acknowledged update survives a crash or kill -9.
// Concurrent updates are coalesced into shared transactions (group
// commit), one fsync for many writers. Lookups read a bbolt snapshot and
// decode a compact binary encoding of the record (not JSON), behind a
// small in-process cache of decoded records that the store's own writes
// keep exact.
//
// Layout of the file:
//
//	ids:     id or alias -> primary id (a record's primary id maps to itself)
//	people:  P -> record, P + Point.Key() -> point of its history
//	meta:    "format" -> layout version
//
// where P is the primary id prefixed with its length (a uvarint), so that
// one person's keys are contiguous and no person's keys are a prefix of
// another's. A record and its history share leaf pages: an update usually
// rewrites one page of people, and none of ids unless it adds an id. (Apart
// buckets for records and history, or a nested bucket per person, cost two
// to four dirty pages per update, and the pages written per transaction
// bound the update rate more than the fsync does.)
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

// FileName is the name of the database file in the data directory.
const FileName = "consent.db"

// Defaults of [Options].
const (
	DefaultLockTimeout = 2 * time.Second
	DefaultBatchSize   = 1000
	DefaultCacheSize   = 100_000
)

// Options configure the embedded store. The zero value is the defaults:
// synced writes, a 2s wait for the file lock, a cache of 100k records.
type Options struct {
	// LockTimeout is how long Open waits for the database file's lock,
	// held by another process that has the same data directory open.
	// 0 means DefaultLockTimeout; negative means do not wait.
	LockTimeout time.Duration `json:"lock_timeout" yaml:"lock_timeout"`
	// BatchDelay is how long the committer waits for more updates to join
	// a transaction that has fewer than BatchSize, before it starts it. 0
	// (the default) does not wait: the updates that arrive while one
	// transaction commits share the next, which batches well under load
	// and lets a lone update commit at once.
	BatchDelay time.Duration `json:"batch_delay" yaml:"batch_delay"`
	// BatchSize is the most updates one transaction takes: the updates
	// that arrive while a transaction commits share the next one. 0 means
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
	db    *bolt.DB
	path  string
	cache *cache // nil when disabled

	reqs          chan *writeReq // to the committer
	batchSize     int
	batchDelay    time.Duration
	committerDone chan struct{}

	closeMu sync.RWMutex // held to send on reqs; Close takes it to close reqs
	closed  atomic.Bool
}

var (
	_ consentstore.Backend = (*Store)(nil)
	_ consent.Store        = (*Store)(nil)
)

var (
	bucketIDs    = []byte("ids")
	bucketPeople = []byte("people")
	bucketMeta   = []byte("meta")
	keyFormat    = []byte("format")
)

// personKey returns P, the key of the record of primary id: the id prefixed
// with its length. The keys of its history points start with P.
func personKey(primary []byte) []byte {
	k := make([]byte, 0, binary.MaxVarintLen64+len(primary))
	k = binary.AppendUvarint(k, uint64(len(primary)))
	return append(k, primary...)
}

// isRecordKey reports whether k is a record's key P rather than the key of
// a history point.
func isRecordKey(k []byte) bool {
	n, l := binary.Uvarint(k)
	return l > 0 && uint64(len(k)-l) == n
}

// pointKey returns the key of point p in the history of the person whose
// record key is pk.
func pointKey(pk []byte, p *consentstore.Point) []byte {
	return append(slices.Clip(pk), p.Key()...)
}

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
		Timeout: timeout,
		NoSync:  opts.NoSync,
		// The free list is rebuilt from the file at open rather than
		// written by every commit (as etcd does): less to write per
		// transaction, and nothing to trust after a crash.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("consent store: bolt: %s is locked by another process (another insertfn?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("consent store: bolt: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketIDs, bucketPeople, bucketMeta} {
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
	s := &Store{db: db, path: path, batchSize: opts.BatchSize, batchDelay: opts.BatchDelay, committerDone: make(chan struct{})}
	if s.batchSize <= 0 {
		s.batchSize = DefaultBatchSize
	}
	s.reqs = make(chan *writeReq, s.batchSize)
	go s.committer()
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
		rec, _, err = find(tx, []byte(id))
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

// find returns the record that id finds in tx and its key P, or nil.
func find(tx *bolt.Tx, id []byte) (*consent.Record, []byte, error) {
	primary := tx.Bucket(bucketIDs).Get(id)
	if primary == nil {
		return nil, nil, nil
	}
	pk := personKey(primary)
	v := tx.Bucket(bucketPeople).Get(pk)
	if v == nil {
		return nil, nil, fmt.Errorf("%w: id %q points to record %q, which is missing", ErrCorrupt, id, primary)
	}
	rec, err := decodeRecord(v)
	if err != nil {
		return nil, nil, fmt.Errorf("record %q: %w", primary, err)
	}
	return rec, pk, nil
}

// Update merges u into the record its ids find, linking records when they
// find several, as [consentstore.MergeRecords] says, and adds u's decisions
// to the history; all in one transaction, synced before Update returns.
// Updates running at the same time share a transaction. ctx is checked
// before the update is queued; once queued it completes.
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
	// fn may run more than once (see writeReq): it recomputes everything
	// from tx.
	err := s.write(func(tx *bolt.Tx) error {
		var err error
		rec, changes, touched, err = apply(tx, u, touched[:0])
		return err
	})
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
	ids, people := tx.Bucket(bucketIDs), tx.Bucket(bucketPeople)
	ids.FillPercent, people.FillPercent = fillPercent, fillPercent

	base, basePK, err := find(tx, []byte(u.Record.ID))
	if err != nil {
		return nil, nil, touched, err
	}
	var (
		linked   []*consent.Record
		linkedPK [][]byte
	)
	for _, a := range u.Record.Aliases {
		if base != nil && slices.Contains(base.Aliases, a) {
			continue // linked already (the usual userId + anonymousId event)
		}
		r, pk, err := find(tx, []byte(a))
		if err != nil {
			return nil, nil, touched, err
		}
		if r == nil || base != nil && r.ID == base.ID ||
			slices.ContainsFunc(linked, func(l *consent.Record) bool { return l.ID == r.ID }) {
			continue
		}
		linked, linkedPK = append(linked, r), append(linkedPK, pk)
	}
	merged, changes := consentstore.MergeRecords(u, base, linked)
	pk := basePK
	if base == nil {
		pk = personKey([]byte(merged.ID))
	}

	// History: the merged record's keeps every point of the records merged
	// into it, then u's. The records linked into it go, with their ids'
	// old entries (every id of theirs is an id of merged now).
	for i, old := range linked {
		var moved []consentstore.Point
		err := forPrefix(people, linkedPK[i], func(k, v []byte) error {
			if len(k) == len(linkedPK[i]) {
				return nil // the record
			}
			p, err := decodePoint(v)
			if err != nil {
				return fmt.Errorf("history of %q: point %q: %w", old.ID, k[len(linkedPK[i]):], err)
			}
			moved = append(moved, p)
			return nil
		})
		if err != nil {
			return nil, nil, touched, err
		}
		if err := deletePrefix(people, linkedPK[i]); err != nil {
			return nil, nil, touched, err
		}
		for _, p := range moved {
			if err := upsertPoint(people, pk, &p); err != nil {
				return nil, nil, touched, fmt.Errorf("history of %q: %w", merged.ID, err)
			}
		}
		touched = append(touched, old.IDs()...)
	}
	for _, p := range u.Points() {
		if err := upsertPoint(people, pk, &p); err != nil {
			return nil, nil, touched, fmt.Errorf("history of %q: %w", merged.ID, err)
		}
	}
	if err := people.Put(pk, encodeRecord(merged)); err != nil {
		return nil, nil, touched, err
	}
	primary := []byte(merged.ID)
	for _, id := range merged.IDs() {
		touched = append(touched, id)
		if base != nil && (id == base.ID || slices.Contains(base.Aliases, id)) {
			continue // finds base already, whose id merged keeps
		}
		if bytes.Equal(ids.Get([]byte(id)), primary) {
			continue // unchanged: leave its page clean
		}
		if err := ids.Put([]byte(id), primary); err != nil {
			return nil, nil, touched, err
		}
	}
	return merged, changes, touched, nil
}

// forPrefix calls fn with every key and value of b that starts with prefix.
func forPrefix(b *bolt.Bucket, prefix []byte, fn func(k, v []byte) error) error {
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// deletePrefix deletes every key of b that starts with prefix.
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	var keys [][]byte
	forPrefix(b, prefix, func(k, _ []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	})
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// upsertPoint is [consentstore.UpsertPoint] on the history of the person
// whose record key is pk: an unknown key is added, the same decision is
// kept as first recorded, a different value for the same key replaces the
// stored point.
func upsertPoint(people *bolt.Bucket, pk []byte, p *consentstore.Point) error {
	key := pointKey(pk, p)
	if v := people.Get(key); v != nil {
		old, err := decodePoint(v)
		if err != nil {
			return fmt.Errorf("point %q: %w", key[len(pk):], err)
		}
		if old.SameDecision(p) {
			return nil
		}
	}
	return people.Put(key, encodePoint(p))
}

// Delete removes the record that id or one of its aliases finds, with all
// its aliases and its history (a person's erasure request), and returns it.
func (s *Store) Delete(ctx context.Context, id string) (*consent.Record, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	var rec *consent.Record
	err := s.db.Update(func(tx *bolt.Tx) error {
		var (
			pk  []byte
			err error
		)
		if rec, pk, err = find(tx, []byte(id)); err != nil || rec == nil {
			return err
		}
		ids := tx.Bucket(bucketIDs)
		for _, i := range rec.IDs() {
			if err := ids.Delete([]byte(i)); err != nil {
				return err
			}
		}
		return deletePrefix(tx.Bucket(bucketPeople), pk)
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
		var (
			pk  []byte
			err error
		)
		if rec, pk, err = find(tx, []byte(id)); err != nil || rec == nil {
			return err
		}
		points = points[:0]
		return forPrefix(tx.Bucket(bucketPeople), pk, func(k, v []byte) error {
			if len(k) == len(pk) {
				return nil // the record
			}
			p, err := decodePoint(v)
			if err != nil {
				return fmt.Errorf("history of %q: point %q: %w", rec.ID, k[len(pk):], err)
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

// Scan calls fn with every record, in no particular order, until fn returns an error,
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
			c := tx.Bucket(bucketPeople).Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(chunk) < scanChunk; k, v = c.Next() {
				if !isRecordKey(k) {
					continue // a point of the history of the record before
				}
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
		after = personKey([]byte(chunk[len(chunk)-1].ID))
	}
}

// Close closes the database file, after the updates already queued and
// the transactions running now end.
// Later calls fail with [consentstore.ErrClosed]. Close is idempotent.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed.Swap(true) {
		s.closeMu.Unlock()
		<-s.committerDone
		return nil
	}
	close(s.reqs)
	s.closeMu.Unlock()
	<-s.committerDone // the queued updates commit
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

// fillPercent is how full bbolt fills a page before it splits it (bbolt's
// default is half): fuller pages mean fewer pages, and fewer pages to
// rewrite per transaction.
const fillPercent = 0.9
