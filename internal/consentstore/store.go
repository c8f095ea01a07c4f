package consentstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/sdk/consent"
)

// Errors a [Store] and its backends return, to be tested with errors.Is.
var (
	// ErrNoID: an update, link or lookup without an id.
	ErrNoID = errors.New("consent store: record without an id")
	// ErrReadOnly: the backend only reads (the http backend); write to the
	// consent service itself.
	ErrReadOnly = errors.New("consent store: this backend is read-only")
	// ErrUnavailable: the backend failed or did not answer within its
	// timeout. The error wrapping it says which backend and why; the
	// caller may retry later.
	ErrUnavailable = errors.New("consent store: backend unavailable")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("consent store: closed")
	// ErrFutureTime: an update dates a decision later than the store's
	// clock plus [MaxFutureSkew]. The error wrapping it is a
	// [*FutureTimeError] that names the field.
	ErrFutureTime = errors.New("consent store: a decision time in the future")
)

// MaxFutureSkew is how far past its own clock [Store.Update] accepts a
// decision time (an entry's timestamp_unixtime_ms, or the record's
// updated_at_unixtime_ms): room for the clocks of the machines that
// write to the store (the admin API's callers, an import's source,
// several insertfn hosts on one Redis) to run a little ahead of this
// one. A later time is refused: under last-writer-wins, one decision
// dated in the future would outrank every real decision until then.
// Times taken from events are clamped to the event's receipt instead (see
// [UpdateFromSegment]).
const MaxFutureSkew = 5 * time.Minute

// FutureTimeError is the error of an update that dates a decision later
// than [MaxFutureSkew] past the store's clock. It matches [ErrFutureTime]
// with errors.Is.
type FutureTimeError struct {
	// ID is the id the update is about.
	ID string
	// Field names the time in the wire format:
	// "categoryPreferences.NAME.timestamp_unixtime_ms",
	// "consent_state.REGULATION.PURPOSE.timestamp_unixtime_ms" or
	// "updated_at_unixtime_ms".
	Field string
	// Time is the time the update gives (Unix milliseconds); Now is the
	// store's clock when it refused it.
	Time, Now int64
}

// Error says which field is in the future, by how much, and what to do.
func (e *FutureTimeError) Error() string {
	return fmt.Sprintf("consent store: update of %q: %s: %d (%s) is %s in the future (more than %v past this server's clock): date a decision when it was taken, or leave the time out for now",
		e.ID, e.Field, e.Time, time.UnixMilli(e.Time).UTC().Format(time.RFC3339Nano), aheadBy(e.Time-e.Now), MaxFutureSkew)
}

// Is reports whether target is [ErrFutureTime].
func (e *FutureTimeError) Is(target error) bool { return target == ErrFutureTime }

// aheadBy writes ms milliseconds, at least MaxFutureSkew, in the largest
// whole unit that fits: "73 years", "12 days", "3 hours", "6 minutes".
func aheadBy(ms int64) string {
	const minute = int64(time.Minute / time.Millisecond)
	const hour, day = 60 * minute, 24 * 60 * minute
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + one + "s"
	}
	switch {
	case ms >= 365*day:
		return unit(ms/(365*day), "year")
	case ms >= day:
		return unit(ms/day, "day")
	case ms >= hour:
		return unit(ms/hour, "hour")
	case ms >= minute:
		return unit(ms/minute, "minute")
	}
	return unit(ms/1000, "second")
}

// Update is a partial, timestamped change to one person's consent.
//
// Record.ID is the id the update is about (a userId or anonymousId);
// Record.Aliases are other ids of the same person, which become linked to it
// (see [Store.Link]). Record.Categories and Record.Purposes are the entries
// it changes, each merged last-writer-wins by its timestamp; the entries it
// does not name stay as they are. Source says where it came from, for the
// history: "admin", "import:FILE:LINE", "segment:MESSAGEID", ...
type Update struct {
	Record consent.Record
	Source string
	// RecordedAt is when the host received the update (Unix
	// milliseconds). [Store.Update] sets it; backends store it with each
	// point of the history.
	RecordedAt int64
	// ClampedFrom holds, for each entry whose decision time was clamped
	// (an event dated later than its receipt, see [UpdateFromSegment]),
	// the time the event claimed (Unix milliseconds), by the entry's
	// [Point.EntryKey]. Backends write it into those points' sources (see
	// [Update.Points] and [ClampNote]). Nil when nothing was clamped.
	ClampedFrom map[string]int64
}

// Points returns the decisions u carries as history points, as
// [PointsOf] does, with the source of each clamped entry noted (see
// [ClampNote]). Backends store these.
func (u *Update) Points() []Point {
	pts := PointsOf(&u.Record, u.Source, u.RecordedAt)
	if len(u.ClampedFrom) == 0 {
		return pts
	}
	for i := range pts {
		if from, ok := u.ClampedFrom[pts[i].EntryKey()]; ok {
			pts[i].Source = ClampNote(pts[i].Source, from)
		}
	}
	return pts
}

// ClampNote returns the history source of a decision whose time was
// clamped: source followed by " (clamped from TIME)", TIME being the time
// the event claimed in RFC 3339, UTC, to the millisecond; for example
// "segment:m1 (clamped from 2099-01-01T00:00:00.000Z)". The point's own
// timestamp is the time it was clamped to.
func ClampNote(source string, claimed int64) string {
	return source + " (clamped from " + time.UnixMilli(claimed).UTC().Format("2006-01-02T15:04:05.000Z07:00") + ")"
}

// Backend is where a [Store] keeps records: the embedded database, Redis,
// a company's consent service, or memory. Backends hold records in the
// consent-record contract's shape, find them by id or alias, merge updates
// with [MergeRecords] semantics (atomically: concurrent updates to one
// record lose nothing), and keep each record's history as a set of
// [Point]s (see [UpsertPoint]).
//
// A Store validates updates before a backend sees them: Record.ID is set,
// every entry has a name and a timestamp, RecordedAt is set, and the
// record is normalized. Backends must honour ctx and bound their own
// latency; a failure to reach the backend wraps [ErrUnavailable].
type Backend interface {
	// Get returns the record whose id or alias is id, or an error wrapping
	// [consent.ErrNotFound]. The record is shared: nobody changes it after.
	Get(ctx context.Context, id string) (*consent.Record, error)
	// Update merges u into the record its ids find (linking and merging
	// records when its ids find several), adds its points to the history
	// and returns the resulting record and the changes to stored values.
	Update(ctx context.Context, u *Update) (*consent.Record, []consent.Change, error)
	// Delete removes the record that id finds, its aliases and its history,
	// and returns the record as it was, or an error wrapping
	// [consent.ErrNotFound].
	Delete(ctx context.Context, id string) (*consent.Record, error)
	// History returns the record that id finds and the points of its
	// history, in any order.
	History(ctx context.Context, id string) (*consent.Record, []Point, error)
	// Scan calls fn with every record, in any order, until fn returns an
	// error, which Scan returns.
	Scan(ctx context.Context, fn func(*consent.Record) error) error
	// Close releases the backend. Calls after Close fail with ErrClosed.
	Close() error
}

// Options configure a [Store]. The zero value is a store without a cache
// that uses the system clock.
type Options struct {
	// Cache puts a bounded in-process cache in front of the backend; for
	// remote backends (Redis, http). The zero value is no cache.
	Cache CacheConfig
	// Now returns the current time; nil is time.Now.
	Now func() time.Time
	// Peers, in cluster mode, are the other hosts that cache the same
	// backend's records: every write this store makes is told to them, so
	// that they drop what it changed from their caches. nil: none.
	Peers Peers
}

// Peers are a store's other hosts (cluster mode), which keep caches of the
// same backend.
type Peers interface {
	// Forget tells every other host to drop ids from its cache (none:
	// everything), and returns once the message is with the cluster's bus,
	// or with the error that kept it from getting there.
	Forget(ctx context.Context, ids []string) error
}

// Store is the consent store the host uses: a [Backend], the optional
// cache in front of it, and the operations of the consent-record contract
// (Get, Update, Link, Delete, History, AsOf). It implements [consent.Store]
// for the runtime. A Store is safe for concurrent use.
type Store struct {
	b      Backend
	cache  *recordCache // nil without a cache
	peers  Peers        // nil: no other host
	now    func() time.Time
	closed atomic.Bool
}

var _ consent.AsOfStore = (*Store)(nil)

// New returns a Store over b. The Store owns b: [Store.Close] closes it.
func New(b Backend, opts Options) *Store {
	s := &Store{b: b, now: opts.Now, peers: opts.Peers}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.Cache.Size > 0 {
		s.cache = newRecordCache(opts.Cache)
	}
	return s
}

// Backend returns the backend the store reads and writes.
func (s *Store) Backend() Backend { return s.b }

// Get returns the record whose id or alias is id, or an error wrapping
// [consent.ErrNotFound]. With a cache, a hit (also a cached miss) does not
// reach the backend. The record is shared: treat it as read-only.
func (s *Store) Get(ctx context.Context, id string) (*consent.Record, error) {
	if id == "" {
		return nil, consent.ErrNotFound
	}
	if s.cache == nil {
		return s.b.Get(ctx, id)
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if rec, ok := s.cache.get(id); ok {
		if rec == nil {
			return nil, consent.ErrNotFound
		}
		return rec, nil
	}
	gen := s.cache.generation()
	rec, err := s.b.Get(ctx, id)
	switch {
	case err == nil:
		s.cache.put(gen, id, rec)
	case errors.Is(err, consent.ErrNotFound):
		s.cache.put(gen, id, nil)
	}
	return rec, err
}

// Update validates u, stamps entries without a timestamp with the current
// time, merges it (see [Backend.Update]) and returns the changes it made to
// stored values. Update keeps nothing of u.
//
// Update refuses an update that dates a decision (or the record's
// updated_at) more than [MaxFutureSkew] past the store's clock, with a
// [*FutureTimeError] naming the field; nothing of it is stored. This is
// the one rule every writer meets: the admin API, `insertfn consent set`
// and import. Updates taken from events never meet it: their times are
// clamped to the event's receipt first (see [UpdateFromSegment]).
func (s *Store) Update(ctx context.Context, u Update) ([]consent.Change, error) {
	now := s.now().UnixMilli()
	if err := prepare(&u, now); err != nil {
		return nil, err
	}
	if s.cache != nil {
		s.cache.beginWrite()
	}
	rec, changes, err := s.b.Update(ctx, &u)
	if s.cache != nil {
		var ids []string // nil: everything
		if err != nil {
			// The backend may have applied it (a reply lost to a
			// timeout) and merged records whose ids we do not know.
			s.cache.purge()
		} else {
			ids = append(u.Record.IDs(), rec.IDs()...)
			s.cache.invalidate(ids...)
		}
		if perr := s.tellPeers(ctx, ids); err == nil && perr != nil {
			return nil, perr
		}
	}
	return changes, err
}

// tellPeers has the other hosts drop ids (nil: everything) from their
// caches. Its error is the write's: the write is stored, but a host that
// was not told could judge events by the record it cached before for up
// to the cache's TTL, so the caller must not acknowledge the write (the
// client retries, and a write applied twice changes nothing).
func (s *Store) tellPeers(ctx context.Context, ids []string) error {
	if s.peers == nil {
		return nil
	}
	if err := s.peers.Forget(ctx, ids); err != nil {
		return fmt.Errorf("consent store: the write is stored, but the other hosts could not be told to drop their cached copies (retry it): %w", err)
	}
	return nil
}

// Forget drops ids (none: everything) from this host's cache: what the
// message of a peer's write does (see [Options.Peers]).
func (s *Store) Forget(ids ...string) {
	if s.cache == nil {
		return
	}
	if len(ids) == 0 {
		s.cache.purge()
		return
	}
	s.cache.invalidate(ids...)
}

// Link records that aliases are other ids of the person id names (an
// analytics alias call, an event carrying both userId and anonymousId).
// Records already stored under them are merged into one.
func (s *Store) Link(ctx context.Context, id string, aliases ...string) error {
	_, err := s.Update(ctx, Update{Record: consent.Record{ID: id, Aliases: aliases}, Source: "link"})
	return err
}

// Delete removes the record that id finds, with its aliases and its history
// (a person's erasure request). It reports whether there was one.
func (s *Store) Delete(ctx context.Context, id string) (bool, error) {
	if id == "" {
		return false, ErrNoID
	}
	if s.cache != nil {
		s.cache.beginWrite()
	}
	rec, err := s.b.Delete(ctx, id)
	if s.cache != nil {
		var ids []string // nil: everything
		switch {
		case err == nil:
			ids = append(rec.IDs(), id)
			s.cache.invalidate(ids...)
		case errors.Is(err, consent.ErrNotFound):
			ids = []string{id}
			s.cache.invalidate(id)
		default:
			s.cache.purge()
		}
		if perr := s.tellPeers(ctx, ids); perr != nil && (err == nil || errors.Is(err, consent.ErrNotFound)) {
			return false, perr
		}
	}
	if errors.Is(err, consent.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// History returns the record that id finds and its history, oldest decision
// first (see [History]).
func (s *Store) History(ctx context.Context, id string) (*consent.Record, []HistoryEntry, error) {
	rec, points, err := s.b.History(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	return rec, History(points), nil
}

// AsOf answers what the person id names had consented to at time at: for
// each category and purpose, the newest decision taken at or before at
// (see [AsOf]).
func (s *Store) AsOf(ctx context.Context, id string, at time.Time) (*consent.Record, error) {
	rec, points, err := s.b.History(ctx, id)
	if err != nil {
		return nil, err
	}
	return AsOf(rec, points, at.UnixMilli()), nil
}

// GetAsOf implements consent.AsOfStore: the record of id as it stood at
// at (Unix milliseconds), for judging an event by the consent of the
// moment it was received. When nothing was decided after at, that is the
// current record (the cached lookup of [Store.Get], the common case);
// otherwise it is rebuilt from the history ([Store.AsOf]). A backend that
// keeps no history (http) answers with the current record. An id with no
// decision by at is not found.
func (s *Store) GetAsOf(ctx context.Context, id string, at int64) (*consent.Record, error) {
	rec, err := s.Get(ctx, id)
	if err != nil || rec.UpdatedAt <= at {
		return rec, err
	}
	then, err := s.AsOf(ctx, id, time.UnixMilli(at))
	switch {
	case errors.Is(err, ErrReadOnly):
		return rec, nil
	case err != nil:
		return nil, err
	case len(then.Categories) == 0 && len(then.Purposes) == 0:
		return nil, fmt.Errorf("consent store: %q had decided nothing by %s: %w", id, time.UnixMilli(at).UTC().Format(time.RFC3339Nano), consent.ErrNotFound)
	}
	return then, nil
}

// Scan calls fn with every stored record until fn returns an error.
func (s *Store) Scan(ctx context.Context, fn func(*consent.Record) error) error {
	return s.b.Scan(ctx, fn)
}

// Close empties the cache and closes the backend. Later calls fail with
// [ErrClosed].
func (s *Store) Close() error {
	s.closed.Store(true)
	if s.cache != nil {
		s.cache.purge()
	}
	return s.b.Close()
}

// prepare validates an update and fills what the backends rely on.
func prepare(u *Update, now int64) error {
	r := &u.Record
	if r.ID == "" {
		return ErrNoID
	}
	r.Aliases = slices.Clone(r.Aliases)
	r.Categories = slices.Clone(r.Categories)
	r.Purposes = slices.Clone(r.Purposes)
	for i := range r.Categories {
		c := &r.Categories[i]
		if c.Name == "" {
			return fmt.Errorf("consent store: update of %q: a category without a name", r.ID)
		}
		if c.Timestamp < 0 {
			return fmt.Errorf("consent store: update of %q: category %q: negative timestamp %d", r.ID, c.Name, c.Timestamp)
		}
		if c.Timestamp == 0 {
			c.Timestamp = now
		}
		if c.Timestamp > now+MaxFutureSkew.Milliseconds() {
			return &FutureTimeError{ID: r.ID, Field: "categoryPreferences." + c.Name + ".timestamp_unixtime_ms", Time: c.Timestamp, Now: now}
		}
	}
	for i := range r.Purposes {
		p := &r.Purposes[i]
		if p.Regulation == "" || p.Name == "" {
			return fmt.Errorf("consent store: update of %q: a purpose needs a regulation and a name (got %q/%q)", r.ID, p.Regulation, p.Name)
		}
		if p.Timestamp < 0 {
			return fmt.Errorf("consent store: update of %q: purpose %s.%s: negative timestamp %d", r.ID, p.Regulation, p.Name, p.Timestamp)
		}
		if p.Timestamp == 0 {
			p.Timestamp = now
		}
		if p.Timestamp > now+MaxFutureSkew.Milliseconds() {
			return &FutureTimeError{ID: r.ID, Field: "consent_state." + p.Regulation + "." + p.Name + ".timestamp_unixtime_ms", Time: p.Timestamp, Now: now}
		}
	}
	if r.UpdatedAt > now+MaxFutureSkew.Milliseconds() {
		return &FutureTimeError{ID: r.ID, Field: "updated_at_unixtime_ms", Time: r.UpdatedAt, Now: now}
	}
	for _, a := range r.Aliases {
		if strings.TrimSpace(a) == "" {
			return fmt.Errorf("consent store: update of %q: an empty alias", r.ID)
		}
	}
	r.Normalize()
	if u.RecordedAt == 0 {
		u.RecordedAt = now
	}
	return nil
}

// MergeRecords computes what a backend stores when it applies u: base is
// the stored record that u.Record.ID finds (nil when none) and linked the
// other stored records that u's aliases find. They are merged into one
// record, linked ones in id order and u last, so that u wins equal
// timestamps. The result keeps base's id, or else u's id; every other id
// becomes an alias. UpdatedAt is the newest of the merged records' and
// entries' times. MergeRecords changes none of its arguments and returns
// the changes u made to stored values.
func MergeRecords(u *Update, base *consent.Record, linked []*consent.Record) (*consent.Record, []consent.Change) {
	merged := &consent.Record{ID: u.Record.ID}
	if base != nil {
		merged = base.Clone()
	}
	updatedAt := merged.UpdatedAt
	linked = slices.Clone(linked)
	slices.SortFunc(linked, func(a, b *consent.Record) int { return strings.Compare(a.ID, b.ID) })
	for _, r := range linked {
		merged.Merge(r)
		updatedAt = max(updatedAt, r.UpdatedAt)
	}
	changes := merged.Merge(&u.Record)
	merged.UpdatedAt = max(merged.UpdatedAt, updatedAt, u.Record.UpdatedAt)
	return merged, changes
}

// NumericIDHint returns, for an id that is a JSON number written other
// than JavaScript writes it ("123.0", "1.23e2"), a sentence saying under
// which id such a number is stored ("123"), to add to a "no record"
// message; "" for any other id. An id given as text (a URL path, a
// command-line argument) is a string and is looked up as written: the
// string "123.0" and the number 123.0 are different ids, as they are for
// analytics.js.
func NumericIDHint(id string) string {
	if !gjson.Valid(id) || gjson.Parse(id).Type != gjson.Number {
		return ""
	}
	canon, err := consent.NumberID(id)
	if err != nil {
		return fmt.Sprintf("(an id sent as the JSON number %s is refused: %v)", id, err)
	}
	if canon == id {
		return ""
	}
	return fmt.Sprintf("(an id sent as the JSON number %s is stored as %q, as JavaScript writes it)", id, canon)
}
