package queue

import (
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
)

// FileName is the conventional name of the queue file in a data
// directory.
const FileName = "queue.db"

// Defaults of [Options].
const (
	DefaultMaxBytes     = 1 << 30 // 1 GiB
	DefaultSyncInterval = 100 * time.Millisecond
	DefaultLockTimeout  = 2 * time.Second
)

// Limits.
const (
	// MaxTopicLen is the longest topic name, in bytes.
	MaxTopicLen = 255
	// MaxItemLen is the largest item, in bytes.
	MaxItemLen = 64 << 20
	// ItemOverhead is what each stored item counts against
	// [Options.MaxBytes] on top of its data: its key, header and bbolt's
	// element header, rounded up.
	ItemOverhead = 32
)

// maxOpsPerCommit bounds how many writes share one transaction.
const maxOpsPerCommit = 1024

// pageSize is the bbolt page size of a new file. Four times the usual
// 4 KiB: items of about 1 KiB fill pages better (15 to a page rather than
// 3, the rest of a 4 KiB page being too small for a fourth) and a commit
// writes a quarter of the pages, which measured 1.3 to 1.5 times the
// Append throughput (BenchmarkAppend). The cost: a write that changes
// one item rewrites 16 KiB.
const pageSize = 16 << 10

// Errors of the queue. Test for them with errors.Is: the errors returned
// wrap them with details.
var (
	// ErrFull: an Append would take the stored items over
	// [Options.MaxBytes]. Consumers are not keeping up, typically a
	// destination that is down; the server answers 503.
	ErrFull = errors.New("queue: full")
	// ErrClosed: the queue was closed.
	ErrClosed = errors.New("queue: closed")
	// ErrLocked: another process has the queue file open.
	ErrLocked = errors.New("queue: file locked by another process")
	// ErrNotInFlight: an item passed to Ack, Retry, Dead or Move is not
	// in flight on that consumer: it was already settled, or was handed
	// out by another topic's consumer or before a restart.
	ErrNotInFlight = errors.New("queue: item not in flight")
	// ErrNotFound: a dead letter or topic named in a call does not exist.
	ErrNotFound = errors.New("queue: not found")
)

// SyncPolicy says when the queue's writes reach the disk. Its text form
// (for configuration files) is "always", "interval" or "never".
type SyncPolicy int

const (
	// SyncAlways, the default: every write returns only after its
	// transaction is fsynced. Nothing acknowledged is lost to a kill -9,
	// an OS crash or a power loss. Concurrent writes share one fsync
	// (group commit).
	SyncAlways SyncPolicy = iota
	// SyncInterval: writes return once committed to the OS page cache;
	// the file is fsynced every [Options.Interval]. A process crash
	// (kill -9) loses nothing, since the page cache survives it; an OS
	// crash or power loss loses up to the last Interval of writes, and
	// because bbolt then cannot order its page writes before its meta
	// page, it may also leave the file damaged. Use it only where the
	// disk's fsync is too slow and losing that window is acceptable.
	SyncInterval
	// SyncNever: no fsync at all, not even at Close. For tests and
	// benchmarks.
	SyncNever
)

// String returns the policy's text form.
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// MarshalText implements encoding.TextMarshaler.
func (p SyncPolicy) MarshalText() ([]byte, error) {
	if p < SyncAlways || p > SyncNever {
		return nil, fmt.Errorf("queue: unknown sync policy %d", int(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler: "always" (or empty),
// "interval" or "never".
func (p *SyncPolicy) UnmarshalText(b []byte) error {
	switch string(b) {
	case "always", "":
		*p = SyncAlways
	case "interval":
		*p = SyncInterval
	case "never":
		*p = SyncNever
	default:
		return fmt.Errorf("queue: unknown sync policy %q: want always, interval or never", b)
	}
	return nil
}

// Options configure a queue. The zero value is the safe defaults: fsync
// on every write, a 1 GiB bound, a 2s wait for the file lock.
type Options struct {
	// Sync is when writes reach the disk; see [SyncPolicy].
	Sync SyncPolicy `json:"sync" yaml:"sync"`
	// Interval is the fsync period of [SyncInterval]; 0 means
	// DefaultSyncInterval. Ignored by the other policies.
	Interval time.Duration `json:"interval" yaml:"interval"`
	// MaxBytes bounds the stored items of all topics, each counted as its
	// data plus ItemOverhead; Append fails with ErrFull beyond it. 0 means
	// DefaultMaxBytes; negative means no bound.
	MaxBytes int64 `json:"max_bytes" yaml:"max_bytes"`
	// LockTimeout is how long Open waits for the file lock held by
	// another process before failing with ErrLocked. 0 means
	// DefaultLockTimeout; negative means do not wait.
	LockTimeout time.Duration `json:"lock_timeout" yaml:"lock_timeout"`
}

// Queue is a durable queue of named topics in one bbolt file. It is safe
// for concurrent use by many goroutines. Only one process may have the
// file open.
type Queue struct {
	db       *bolt.DB
	path     string
	sync     SyncPolicy
	maxBytes int64 // < 0: no bound
	used     atomic.Int64

	topicsMu sync.RWMutex
	topics   map[string]*topic

	closeMu    sync.RWMutex // held for reading while sending to ops
	closed     bool
	isClosed   atomic.Bool
	done       chan struct{} // closed by Close
	ops        chan *op
	opPool     sync.Pool
	commitDone chan struct{}
	syncDone   chan struct{} // nil unless SyncInterval
	closeOnce  sync.Once
	closeErr   error
}

// op is one write waiting for the committer.
type op struct {
	fn   func(tx *bolt.Tx) error
	done chan error
}

// Bucket names. The root holds "meta" (the layout version) and "topics",
// which holds one bucket per topic, each with the buckets "items" and
// "dead", keyed by sequence number.
var (
	bucketMeta   = []byte("meta")
	bucketTopics = []byte("topics")
	bucketItems  = []byte("items")
	bucketDead   = []byte("dead")
	keyFormat    = []byte("format")
)

// layoutVersion is the meta/format value of the layout above.
const layoutVersion = "1"

// Open opens the queue file at path, creating it (mode 0600) and its
// directory (mode 0700) when they do not exist, and loads the state of
// every topic: items not acknowledged before the last Close or crash are
// ready again, items retried are ready again at their time.
//
// # Results
//
// An error wrapping [ErrLocked] when another process holds the file
// after opts.LockTimeout; an error wrapping [ErrCorrupt] for a file of an
// unknown layout.
func Open(path string, opts Options) (*Queue, error) {
	if path == "" {
		return nil, errors.New("queue: no file path configured")
	}
	if opts.Sync < SyncAlways || opts.Sync > SyncNever {
		return nil, fmt.Errorf("queue: unknown sync policy %d", int(opts.Sync))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("queue: create the directory of %s: %w", path, err)
	}
	timeout := opts.LockTimeout
	switch {
	case timeout == 0:
		timeout = DefaultLockTimeout
	case timeout < 0:
		timeout = time.Nanosecond // bbolt: 0 would wait forever
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        timeout,
		NoSync:         opts.Sync != SyncAlways,
		NoFreelistSync: true, // rebuilt at open: saves writing the freelist on every commit
		FreelistType:   bolt.FreelistMapType,
		PageSize:       pageSize, // for a new file; an existing one keeps its own
		// Map the whole file the bound allows at once (up to 1 GiB): a
		// file that grows past its mapping is remapped under bbolt's
		// write lock, which stalls commits (p99 of a 2000/s Append
		// stream: 5.6 ms with remaps, 3-3.9 ms without).
		InitialMmapSize: initialMmap(opts.MaxBytes),
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is locked by another process (another insertfn on the same data directory?); stop it or use another directory", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	q := &Queue{
		db:         db,
		path:       path,
		sync:       opts.Sync,
		maxBytes:   opts.MaxBytes,
		topics:     make(map[string]*topic),
		done:       make(chan struct{}),
		ops:        make(chan *op, maxOpsPerCommit),
		commitDone: make(chan struct{}),
	}
	q.opPool.New = func() any { return &op{done: make(chan error, 1)} }
	if q.maxBytes == 0 {
		q.maxBytes = DefaultMaxBytes
	}
	if err := q.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	go q.commitLoop()
	if opts.Sync == SyncInterval {
		every := opts.Interval
		if every <= 0 {
			every = DefaultSyncInterval
		}
		q.syncDone = make(chan struct{})
		go q.syncLoop(every)
	}
	return q, nil
}

// load creates the layout of a new file and rebuilds the in-memory state
// of every topic from the stored items.
func (q *Queue) load() error {
	return q.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(keyFormat); {
		case v == nil:
			if err := meta.Put(keyFormat, []byte(layoutVersion)); err != nil {
				return err
			}
		case string(v) != layoutVersion:
			return fmt.Errorf("%w: layout version %q, this insertfn reads %q (written by a newer insertfn?)", ErrCorrupt, v, layoutVersion)
		}
		root, err := tx.CreateBucketIfNotExists(bucketTopics)
		if err != nil {
			return err
		}
		now := time.Now().UnixNano()
		return root.ForEachBucket(func(name []byte) error {
			t := newTopic(string(name))
			tb := root.Bucket(name)
			if b := tb.Bucket(bucketItems); b != nil {
				err := b.ForEach(func(k, v []byte) error {
					seq, ok := keySeq(k)
					if !ok {
						return fmt.Errorf("%w: topic %q: key %x is not a sequence number", ErrCorrupt, name, k)
					}
					h, data, err := decodeItem(v)
					if err != nil {
						data = v // Next moves it to the dead letters
					}
					t.count++
					t.bytes += int64(len(data))
					if h.notBefore != 0 {
						t.schedule(seq, len(data), h.notBefore, now)
					}
					q.used.Add(int64(len(data)) + ItemOverhead)
					return nil
				})
				if err != nil {
					return err
				}
			}
			if b := tb.Bucket(bucketDead); b != nil {
				err := b.ForEach(func(k, v []byte) error {
					n := len(v)
					if dv, err := decodeDead(v); err == nil {
						n = len(dv.data)
					}
					t.deadCount++
					t.deadBytes += int64(n)
					q.used.Add(int64(n) + ItemOverhead)
					return nil
				})
				if err != nil {
					return err
				}
			}
			q.topics[t.name] = t
			return nil
		})
	})
}

// commitLoop runs every write: it takes all the writes waiting, up to
// maxOpsPerCommit, into one transaction, so they share its fsync.
func (q *Queue) commitLoop() {
	defer close(q.commitDone)
	batch := make([]*op, 0, maxOpsPerCommit)
	for o := range q.ops {
		batch = append(batch[:0], o)
	more:
		for len(batch) < maxOpsPerCommit {
			select {
			case o, ok := <-q.ops:
				if !ok {
					break more
				}
				batch = append(batch, o)
			default:
				break more
			}
		}
		q.commit(batch)
		clear(batch)
	}
}

// commit runs batch in one transaction. When it fails and holds several
// writes, each is retried alone, so one failing write does not fail the
// others. Every write's function must therefore be safe to run again
// after a rolled-back run.
func (q *Queue) commit(batch []*op) {
	err := q.db.Update(func(tx *bolt.Tx) error {
		for _, o := range batch {
			if err := o.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(batch) > 1 {
		for _, o := range batch {
			o.done <- q.db.Update(o.fn)
		}
		return
	}
	for _, o := range batch {
		o.done <- err
	}
}

// write runs fn in a write transaction shared with the other writes
// waiting, and returns when it is committed (and synced, per the
// policy). ctx is checked before the write is queued; once queued, write
// waits for the commit (milliseconds), so its result is always true.
func (q *Queue) write(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o := q.opPool.Get().(*op)
	o.fn = fn
	q.closeMu.RLock()
	if q.closed {
		q.closeMu.RUnlock()
		o.fn = nil
		q.opPool.Put(o)
		return ErrClosed
	}
	q.ops <- o
	q.closeMu.RUnlock()
	err := <-o.done
	o.fn = nil
	q.opPool.Put(o)
	return err
}

// syncLoop fsyncs the file every period, for SyncInterval.
func (q *Queue) syncLoop(every time.Duration) {
	defer close(q.syncDone)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			_ = q.db.Sync() // an error here resurfaces on the next write or at Close
		case <-q.done:
			return
		}
	}
}

// Close waits for the writes already queued, wakes every blocked
// [Consumer.Next] with [ErrClosed], syncs the file (SyncInterval) and
// closes it. Later calls of any method fail with ErrClosed. Items in
// flight stay stored and are handed out again after the next Open.
// Close is safe to call more than once.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.closeMu.Lock()
		q.closed = true
		q.isClosed.Store(true)
		close(q.ops)
		q.closeMu.Unlock()
		close(q.done)
		<-q.commitDone
		var err error
		if q.syncDone != nil {
			<-q.syncDone
			err = q.db.Sync()
		}
		if cerr := q.db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			q.closeErr = fmt.Errorf("queue: close %s: %w", q.path, err)
		}
	})
	return q.closeErr
}

// Path returns the queue file's path.
func (q *Queue) Path() string { return q.path }

// checkTopic reports whether name is a valid topic name.
func checkTopic(name string) error {
	if name == "" {
		return errors.New("queue: empty topic name")
	}
	if len(name) > MaxTopicLen {
		return fmt.Errorf("queue: topic name %.40q... is %d bytes, the most is %d", name, len(name), MaxTopicLen)
	}
	return nil
}

// topic returns the in-memory state of the named topic, creating it when
// create is set; nil when it does not exist and create is not set.
func (q *Queue) topic(name string, create bool) *topic {
	q.topicsMu.RLock()
	t := q.topics[name]
	q.topicsMu.RUnlock()
	if t != nil || !create {
		return t
	}
	q.topicsMu.Lock()
	defer q.topicsMu.Unlock()
	if t = q.topics[name]; t == nil {
		t = newTopic(name)
		q.topics[name] = t
	}
	return t
}

// reserve counts n more stored bytes against MaxBytes, or fails with
// ErrFull.
func (q *Queue) reserve(n int64) error {
	for {
		used := q.used.Load()
		if q.maxBytes >= 0 && used+n > q.maxBytes {
			return fmt.Errorf("%w: %d stored bytes + %d new would exceed max_bytes %d; consumers are not keeping up (a destination down?): retry later, or raise max_bytes",
				ErrFull, used, n, q.maxBytes)
		}
		if q.used.CompareAndSwap(used, used+n) {
			return nil
		}
	}
}

// Append adds items, in order, at the end of the named topic, creating
// it when needed, and wakes a [Consumer.Next] waiting on it. When Append
// returns nil the items are stored and synced per [Options.Sync]. The
// items are copied: the caller may reuse them once Append returns.
//
// # Results
//
//   - An error wrapping [ErrFull] when the items would take the stored
//     bytes over [Options.MaxBytes]; nothing is stored.
//   - [ErrClosed] after Close; ctx's error when it is done before the
//     write is queued.
func (q *Queue) Append(ctx context.Context, topic string, items ...[]byte) error {
	if q.isClosed.Load() {
		return ErrClosed
	}
	if err := checkTopic(topic); err != nil {
		return err
	}
	if len(items) == 0 {
		return nil
	}
	size := 0
	for i, it := range items {
		if len(it) > MaxItemLen {
			return fmt.Errorf("queue: append to %q: item %d is %d bytes, the most is %d", topic, i, len(it), MaxItemLen)
		}
		size += len(it)
	}
	charge := int64(size) + int64(len(items))*ItemOverhead
	if err := q.reserve(charge); err != nil {
		return fmt.Errorf("queue: append to %q: %w", topic, err)
	}
	t := q.topic(topic, true)
	arena := make([]byte, 0, size+len(items)*freshHeaderLen)
	for _, it := range items {
		arena = appendFresh(arena, it)
	}
	err := q.write(ctx, func(tx *bolt.Tx) error {
		b, err := t.itemsForWrite(tx)
		if err != nil {
			return err
		}
		return putFresh(b, arena, items)
	})
	if err != nil {
		q.used.Add(-charge)
		return q.dbErr("append to "+topic, err)
	}
	t.mu.Lock()
	t.count += len(items)
	t.bytes += int64(size)
	t.wake()
	t.mu.Unlock()
	return nil
}

// putFresh stores the fresh values packed in arena, one per item of
// items (for their lengths), under the next sequence numbers of b.
func putFresh(b *bolt.Bucket, arena []byte, items [][]byte) error {
	seq := b.Sequence()
	if err := b.SetSequence(seq + uint64(len(items))); err != nil {
		return err
	}
	var kb [8]byte
	off := 0
	for _, it := range items {
		seq++
		n := freshHeaderLen + len(it)
		if err := b.Put(seqKey(&kb, seq), arena[off:off+n:off+n]); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// dbErr turns an error of a call into the queue's: ErrClosed after
// Close, otherwise the error with what was being done.
func (q *Queue) dbErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrClosed), errors.Is(err, bolt.ErrDatabaseNotOpen):
		return ErrClosed
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("queue: %s: %w", what, err)
}

// Topics returns the names of the topics, sorted: those stored, and those
// named in a call since Open.
func (q *Queue) Topics() []string {
	q.topicsMu.RLock()
	names := make([]string, 0, len(q.topics))
	for name := range q.topics {
		names = append(names, name)
	}
	q.topicsMu.RUnlock()
	slices.Sort(names)
	return names
}

// Stats are a topic's counts of items and of their data bytes.
type Stats struct {
	// Ready items wait to be handed out by Next.
	Ready      int
	ReadyBytes int64
	// InFlight items were handed out and not settled yet.
	InFlight      int
	InFlightBytes int64
	// Retrying items were given back with Retry and wait for their time.
	Retrying      int
	RetryingBytes int64
	// Dead items are in the topic's dead letters.
	Dead      int
	DeadBytes int64
}

// Stats returns the counts of the named topic, or an error wrapping
// [ErrNotFound] for a topic that does not exist.
func (q *Queue) Stats(topic string) (Stats, error) {
	if q.isClosed.Load() {
		return Stats{}, ErrClosed
	}
	t := q.topic(topic, false)
	if t == nil {
		return Stats{}, fmt.Errorf("%w: topic %q", ErrNotFound, topic)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.promote(time.Now().UnixNano())
	s := Stats{
		InFlight:      len(t.inflight) + t.settling,
		InFlightBytes: t.inflightBytes + t.settlingBytes,
		Retrying:      len(t.waiting),
		RetryingBytes: t.waitingBytes,
		Dead:          t.deadCount,
		DeadBytes:     t.deadBytes,
	}
	s.Ready = max(0, t.count-s.InFlight-s.Retrying)
	s.ReadyBytes = max(0, t.bytes-s.InFlightBytes-s.RetryingBytes)
	return s, nil
}

// Usage returns the stored bytes counted against [Options.MaxBytes]
// (data plus ItemOverhead per item, all topics, dead letters included)
// and the bound (negative: none).
func (q *Queue) Usage() (used, limit int64) {
	return q.used.Load(), q.maxBytes
}

// initialMmap is the mapping a queue bounded to maxBytes starts with.
func initialMmap(maxBytes int64) int {
	const ceiling = 1 << 30
	if maxBytes <= 0 || maxBytes > ceiling/2 {
		return ceiling
	}
	return int(maxBytes) * 2 // data plus bbolt's pages and free space
}
