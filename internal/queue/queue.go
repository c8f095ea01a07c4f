package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// DirName is the conventional name of the queue's directory in a data
// directory.
const DirName = "queue"

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
	// [Options.MaxBytes] on top of its data: its key, header and the
	// store's record overhead, rounded up.
	ItemOverhead = 32
)

// maxOpsPerCommit bounds how many writes share one batch.
const maxOpsPerCommit = 1024

// batchRetained is the largest batch buffer Pebble keeps for the next
// batch (its default is 1 MiB). A batch of the queue holds whole events:
// grouped Appends or a Move of a 500 KB batch exceed 1 MiB, and each such
// buffer grown from scratch by doubling was a quarter of the server's
// allocations (BenchmarkServeBatch).
const batchRetained = 8 << 20

// memTableSize is the size of the store's memtable, and memTables how
// many of them may fill before writes wait for a flush (at most 128 MiB,
// outside the Go heap). Items are mostly deleted soon after they are
// written; a memtable that holds a few seconds of traffic lets a flush
// drop the item and its deletion together, so that little of a healthy
// queue's traffic ever reaches sstables. While a backlog builds, flushes
// write it out at about the rate it arrives here (~100 MB/s); with
// Pebble's default of two memtables, ingest at 40k events/s stalled for
// 20-170 ms at every flush (BenchmarkServeBatch), with four it did not.
const (
	memTableSize = 32 << 20
	memTables    = 4
)

// Errors of the queue. Test for them with errors.Is: the errors returned
// wrap them with details.
var (
	// ErrFull: an Append would take the stored items over
	// [Options.MaxBytes]. Consumers are not keeping up, typically a
	// destination that is down; the server answers 503.
	ErrFull = errors.New("queue: full")
	// ErrClosed: the queue was closed.
	ErrClosed = errors.New("queue: closed")
	// ErrLocked: another process (or another Queue of this process) has
	// the queue's directory open.
	ErrLocked = errors.New("queue: directory locked by another process")
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
	// SyncInterval, the default: a write that must survive returns once
	// its record is in the write-ahead log file, in the OS page cache
	// (written, not fsynced); the log is fsynced every [Options.Interval]
	// (and at Close). A process crash (kill -9, a panic, the OOM killer)
	// loses nothing acknowledged, since the page cache survives it; an
	// OS crash or a power loss may lose the writes of the last Interval
	// (the log is replayed up to its last intact record: the store is
	// not damaged). The writes that wait so are those SyncAlways makes
	// wait for an fsync (see there), and they share the write the same
	// way.
	//
	// Pebble writes its log from a buffer of its own, so a write applied
	// without a sync may still be in the process when it dies; under
	// SyncInterval such writes do ask Pebble for a sync, which writes the
	// log to the file, and the file's fsync is deferred (intervalfs.go).
	// TestProcessCrash and TestCrash check that no acknowledged item is
	// lost to a kill -9, TestPowerLoss that a power loss leaves a store
	// that opens. (A store created before insertfn chose storeFormat is
	// fsynced as under SyncAlways: see logSyncsDeferrable.)
	//
	// Why the default: the disk's fsync, not insertfn, then sets an
	// answer's latency. On the machine of the benchmarks an fsync takes
	// 0.2-0.6 ms but now and then 20-130 ms, and every request that
	// arrives meanwhile waits for it: /v1/track at 2000 requests/s had a
	// p99 of 4-40 ms under SyncAlways (BenchmarkServeTrackLatency; the
	// ideal log of BenchmarkDiskFloor 1.2-128 ms in the same runs), and of
	// 2.0-2.4 ms under SyncInterval. Choose SyncAlways where a power loss
	// must not lose the last 100 ms of acknowledged events.
	SyncInterval SyncPolicy = iota
	// SyncAlways: an Append returns only after its items are in the
	// write-ahead log and the log is fsynced, and so do Dead, Replay and
	// DropDead. Nothing acknowledged is lost to a kill -9, an OS crash or
	// a power loss. Concurrent writes share one fsync (group commit), and
	// the next writes are applied while it runs.
	//
	// The writes that settle items (Ack, Move, Retry) return without
	// waiting for an fsync: the log is written in order, so they become
	// durable with the next fsync, and a power loss can only undo the
	// last of them. An undone settle hands the items out again
	// (at-least-once); it never loses one, since a Move's new items and
	// its acknowledgement are one atomic batch.
	SyncAlways
	// SyncNever: no fsync at all, and writes may stay in Pebble's buffer
	// until it fills: a kill -9 may lose them. For tests and benchmarks.
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
	if p < SyncInterval || p > SyncNever {
		return nil, fmt.Errorf("queue: unknown sync policy %d", int(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler: "interval" (or
// empty), "always" or "never".
func (p *SyncPolicy) UnmarshalText(b []byte) error {
	switch string(b) {
	case "always":
		*p = SyncAlways
	case "interval", "":
		*p = SyncInterval
	case "never":
		*p = SyncNever
	default:
		return fmt.Errorf("queue: unknown sync policy %q: want always, interval or never", b)
	}
	return nil
}

// Options configure a queue. The zero value is the defaults: nothing
// acknowledged lost to a process crash, the log fsynced every 100 ms
// ([SyncInterval]), a 1 GiB bound, a 2s wait for the directory lock.
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
	// LockTimeout is how long Open waits for the directory lock held by
	// another process before failing with ErrLocked. 0 means
	// DefaultLockTimeout; negative means do not wait.
	LockTimeout time.Duration `json:"lock_timeout" yaml:"lock_timeout"`
}

// Pebble is the [Queue] of one host: named topics in one Pebble store. It is
// safe for concurrent use by many goroutines. Only one process may have
// the store open.
type Pebble struct {
	db       *pebble.DB
	lock     *pebble.Lock
	path     string
	sync     SyncPolicy
	maxBytes int64 // < 0: no bound
	used     atomic.Int64

	topicsMu sync.RWMutex
	topics   map[Topic]*topic

	closeMu    sync.RWMutex // held for reading while sending to ops
	closed     bool
	isClosed   atomic.Bool
	done       chan struct{} // closed by Close
	ops        chan *op
	opPool     sync.Pool
	commitDone chan struct{}
	syncs      chan syncGroup // from the committer to the syncer
	syncerDone chan struct{}
	syncDone   chan struct{} // nil unless SyncInterval defers fsyncs (ifs)
	closeOnce  sync.Once
	closeErr   error

	batchOptions []pebble.BatchOption // of every batch of the committer
	// spare holds the committer's batches once applied (and synced), for
	// the next commits: Pebble's own pool of batches is emptied at every
	// garbage collection and hands out batches of any size, and batch
	// buffers grown again from scratch were a fifth of the server's
	// allocated bytes (BenchmarkServeBatch).
	spare chan *pebble.Batch

	// ifs is the file system under SyncInterval (nil otherwise), whose
	// log files syncLoop fsyncs; intervalErr is the error of the last of
	// those fsyncs that failed, which every later write returns.
	ifs         *intervalFS
	intervalErr atomic.Pointer[error]

	// beforeApply, when set (by tests), runs before each batch is
	// applied; an error fails the batch's writes as an I/O error would.
	beforeApply func(*pebble.Batch) error
}

// op is one write waiting for the committer.
//
// fn adds the write to the batch. It runs in the committer goroutine,
// where it may read the store (every earlier write is applied) and the
// topics' next sequence numbers. When it fails it must have added
// nothing to the batch: it reads and checks first, then writes.
type op struct {
	fn      func(b *pebble.Batch) error
	durable bool // the write must be fsynced before done (SyncAlways)
	done    chan error
}

// syncGroup is a batch applied without waiting for its fsync, and the
// writes that wait for it.
type syncGroup struct {
	b   *pebble.Batch
	ops []*op
}

// layoutVersion is the value of keyFormat for the layout in codec.go.
const layoutVersion = "2"

// Open opens the queue stored in the directory path, creating it (mode
// 0700) when it does not exist, and loads the state of every topic:
// items not acknowledged before the last Close or crash are ready again,
// items retried are ready again at their time.
//
// The store is a Pebble database: a write-ahead log in which a batch of
// writes is one record, and whose fsync is shared by every write waiting
// at that moment; a healthy queue's items are deleted before they leave
// the memtable.
//
// # Results
//
// An error wrapping [ErrLocked] when another process holds the directory
// after opts.LockTimeout; an error wrapping [ErrCorrupt] for a store of
// an unknown layout.
func Open(path string, opts Options) (*Pebble, error) {
	return openOn(vfs.Default, path, opts)
}

// openOn is Open on the file system fs (tests pass one that simulates a
// power loss).
func openOn(fs vfs.FS, path string, opts Options) (*Pebble, error) {
	if path == "" {
		return nil, errors.New("queue: no directory configured")
	}
	if opts.Sync < SyncInterval || opts.Sync > SyncNever {
		return nil, fmt.Errorf("queue: unknown sync policy %d", int(opts.Sync))
	}
	if fi, err := fs.Stat(path); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("queue: open %s: not a directory (a queue file of an older insertfn? move it away)", path)
	}
	if err := fs.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("queue: create the directory %s: %w", path, err)
	}
	lock, err := lockDir(fs, path, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	var ifs *intervalFS
	if opts.Sync == SyncInterval && logSyncsDeferrable(fs, path) {
		ifs = newIntervalFS(fs)
		fs = ifs
	}
	popts := &pebble.Options{
		FS:                          fs,
		Lock:                        lock,
		Logger:                      quietLogger{},
		MemTableSize:                memTableSize,
		MemTableStopWritesThreshold: memTables,
		FormatMajorVersion:          storeFormat,
	}
	for i := range popts.Levels {
		// What reaches a file is a backlog, and writing it out is bound
		// by the disk's bandwidth: the fast profile shrinks JSON events
		// for little CPU. Measured with BenchmarkServeBatch,
		// back to back: 54-58k accepted / 47-50k delivered events/s,
		// against 45-48k / 40-41k uncompressed.
		popts.Levels[i].Compression = fastCompression
	}
	db, err := pebble.Open(path, popts)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	q := &Pebble{
		ifs:          ifs,
		batchOptions: []pebble.BatchOption{pebble.WithMaxRetainedSizeBytes(batchRetained)},
		spare:        make(chan *pebble.Batch, spareBatches),
		db:           db,
		lock:         lock,
		path:         path,
		sync:         opts.Sync,
		maxBytes:     opts.MaxBytes,
		topics:       make(map[Topic]*topic),
		done:         make(chan struct{}),
		ops:          make(chan *op, maxOpsPerCommit),
		commitDone:   make(chan struct{}),
		syncs:        make(chan syncGroup, 64),
		syncerDone:   make(chan struct{}),
	}
	q.opPool.New = func() any { return &op{done: make(chan error, 1)} }
	if q.maxBytes == 0 {
		q.maxBytes = DefaultMaxBytes
	}
	if err := q.load(); err != nil {
		db.Close()
		lock.Close()
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	go q.commitLoop()
	go q.syncer()
	if ifs != nil {
		every := opts.Interval
		if every <= 0 {
			every = DefaultSyncInterval
		}
		q.syncDone = make(chan struct{})
		go q.syncLoop(every)
	}
	return q, nil
}

// storeFormat is the format of a new store: the newest whose log has no
// "synced offset" chunks (pebble.FormatWALSyncChunks and later write them).
// Those chunks promise that the log was fsynced up to an offset, so that
// replay can tell corruption from a torn tail; under SyncInterval the
// queue defers the log's fsyncs (intervalfs.go), the promise would not
// hold, and after a power loss Pebble would refuse to open a store whose
// log ends torn ("invalid chunk") instead of replaying it up to its last
// intact record. The later formats' other gains (sstable format v6,
// value separation) matter little to a queue whose items rarely reach an
// sstable.
const storeFormat = pebble.FormatColumnarBlocks

// logSyncsDeferrable reports whether the store at path (if any) writes
// its log without synced-offset chunks, so that SyncInterval may defer
// its fsyncs. A store created by an insertfn before storeFormat was
// lowered writes them: under SyncInterval it is then fsynced on every
// write that must survive, as under SyncAlways (safe, and as slow); to
// get SyncInterval's latency, let its queue drain and remove it.
func logSyncsDeferrable(fs vfs.FS, path string) bool {
	desc, err := pebble.Peek(path, fs)
	return err == nil && (!desc.Exists || desc.FormatMajorVersion < pebble.FormatWALSyncChunks)
}

// lockDir takes the store's directory lock, waiting up to timeout (0:
// DefaultLockTimeout; negative: not at all) while another holds it.
func lockDir(fs vfs.FS, path string, timeout time.Duration) (*pebble.Lock, error) {
	switch {
	case timeout == 0:
		timeout = DefaultLockTimeout
	case timeout < 0:
		timeout = 0
	}
	deadline := time.Now().Add(timeout)
	for {
		lock, err := pebble.LockDirectory(path, fs)
		if err == nil {
			return lock, nil
		}
		held := errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
			strings.Contains(err.Error(), "held by current process")
		if !held {
			return nil, fmt.Errorf("queue: lock %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("%w: %s is locked by another process (another insertfn on the same data directory?); stop it or use another directory", ErrLocked, path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fastCompression is the compression of every level of the store.
func fastCompression() *sstable.CompressionProfile { return sstable.FastCompression }

// quietLogger drops Pebble's informational messages (it reports every
// WAL it replays) and passes its errors on to the standard logger.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	pebble.DefaultLogger.Errorf("queue: pebble: "+format, args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf("queue: pebble: "+format, args...)
}

// load writes the layout version of a new store, or checks that of an
// existing one, and rebuilds the in-memory state of every topic from the
// stored items.
func (q *Pebble) load() error {
	switch v, closer, err := q.db.Get([]byte(keyFormat)); {
	case errors.Is(err, pebble.ErrNotFound):
		if err := q.db.Set([]byte(keyFormat), []byte(layoutVersion), pebble.Sync); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		ok := string(v) == layoutVersion
		got := string(v)
		closer.Close()
		if !ok {
			return fmt.Errorf("%w: layout version %q, this insertfn reads %q (written by a newer insertfn?)", ErrCorrupt, got, layoutVersion)
		}
	}
	iter, err := q.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindDead}, UpperBound: []byte{kindItem + 1}})
	if err != nil {
		return err
	}
	defer iter.Close()
	now := time.Now().UnixNano()
	var t *topic
	for ok := iter.First(); ok; ok = iter.Next() {
		kind, name, seq, ok := parseKey(iter.Key())
		if !ok {
			return fmt.Errorf("%w: key %x is not an item's or a dead letter's", ErrCorrupt, iter.Key())
		}
		v, err := iter.ValueAndErr()
		if err != nil {
			return err
		}
		if t == nil || string(t.name) != string(name) {
			if t = q.topics[Topic(name)]; t == nil {
				t = newTopic(Topic(name))
				q.topics[t.name] = t
			}
		}
		t.next = max(t.next, seq)
		if kind == kindDead {
			n := len(v)
			if dv, err := decodeDead(v); err == nil {
				n = len(dv.data)
			}
			t.deadCount++
			t.deadBytes += int64(n)
			q.used.Add(int64(n) + ItemOverhead)
			continue
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
	}
	return iter.Error()
}

// commitLoop runs every write: it takes all the writes waiting, up to
// maxOpsPerCommit, into one batch, so they share its fsync.
func (q *Pebble) commitLoop() {
	defer close(q.commitDone)
	defer close(q.syncs)
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

// commit applies the writes of ops in one batch. A write whose function
// fails gets its error and adds nothing; the others go on. The writes
// that must be durable are answered by the syncer after the batch's
// fsync; the others as soon as the batch is applied, while the fsync
// runs.
func (q *Pebble) commit(ops []*op) {
	var b *pebble.Batch
	select {
	case b = <-q.spare:
	default:
		b = q.db.NewBatch(q.batchOptions...)
	}
	var wait []*op
	n := 0
	for _, o := range ops {
		if err := o.fn(b); err != nil {
			o.done <- err
			continue
		}
		ops[n] = o
		n++
		if o.durable {
			wait = append(wait, o)
		}
	}
	ops = ops[:n]
	var err error
	if q.beforeApply != nil {
		err = q.beforeApply(b)
	}
	switch {
	case err != nil:
	case b.Empty():
	case len(wait) > 0:
		if err = q.db.ApplyNoSyncWait(b, pebble.Sync); err == nil {
			for _, o := range ops {
				if !o.durable {
					o.done <- nil
				}
			}
			q.syncs <- syncGroup{b: b, ops: wait}
			return
		}
	default:
		err = q.db.Apply(b, pebble.NoSync)
	}
	q.recycle(b, err)
	for _, o := range ops {
		o.done <- err
	}
}

// spareBatches is how many applied batches the committer keeps for reuse.
// While fsyncs are slow, many batches wait for theirs at once: with 4
// spares a third of the commits still started a batch from scratch.
// Each keeps its buffer (at most batchRetained; in BenchmarkServeBatch
// nearly all under 512 KB).
const spareBatches = 8

// recycle keeps b, done with (applied and synced, or empty) with result
// err, for a later commit, or closes it. A batch whose write failed is
// not reused.
func (q *Pebble) recycle(b *pebble.Batch, err error) {
	if err == nil {
		b.Reset()
		select {
		case q.spare <- b:
			return
		default:
		}
	}
	b.Close()
}

// syncer answers the durable writes of each batch, in order, once the
// batch's fsync is done.
func (q *Pebble) syncer() {
	defer close(q.syncerDone)
	for g := range q.syncs {
		err := g.b.SyncWait()
		for _, o := range g.ops {
			o.done <- err
		}
		q.recycle(g.b, err)
	}
}

// write runs fn in the committer, in a batch shared with the other
// writes waiting, and returns when the batch is applied, and for a
// durable write also fsynced under SyncAlways. ctx is checked before the
// write is queued; once queued, write waits for it (milliseconds), so
// its result is always true.
func (q *Pebble) write(ctx context.Context, durable bool, fn func(b *pebble.Batch) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := q.intervalErr.Load(); err != nil {
		return *err
	}
	o := q.opPool.Get().(*op)
	o.fn = fn
	o.durable = durable && q.sync != SyncNever
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

// syncLog fsyncs the write-ahead log.
func (q *Pebble) syncLog() error {
	if err := q.db.LogData(nil, pebble.Sync); err != nil || q.ifs == nil {
		return err
	}
	return q.ifs.syncAll()
}

// syncLoop fsyncs the log every period, for SyncInterval.
func (q *Pebble) syncLoop(every time.Duration) {
	defer close(q.syncDone)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := q.ifs.syncAll(); err != nil {
				err = fmt.Errorf("queue: fsync of the log: %w", err)
				q.intervalErr.Store(&err) // what was written may not be on disk: refuse more
			}
		case <-q.done:
			return
		}
	}
}

// Close waits for the writes already queued (and their fsyncs), wakes
// every blocked [Consumer.Next] with [ErrClosed], syncs the log
// (SyncAlways and SyncInterval) and closes the store. Later calls of any
// method fail with ErrClosed. Items in flight stay stored and are handed
// out again after the next Open. Close is safe to call more than once.
func (q *Pebble) Close() error {
	q.closeOnce.Do(func() {
		q.closeMu.Lock()
		q.closed = true
		q.isClosed.Store(true)
		close(q.ops)
		q.closeMu.Unlock()
		close(q.done)
		<-q.commitDone
		<-q.syncerDone
		for len(q.spare) > 0 {
			(<-q.spare).Close()
		}
		var err error
		if q.syncDone != nil {
			<-q.syncDone
		}
		if q.sync != SyncNever {
			err = q.syncLog()
		}
		if e := q.intervalErr.Load(); e != nil && err == nil {
			err = *e // a later fsync may succeed though the data it lost is gone
		}
		if cerr := q.db.Close(); err == nil {
			err = cerr
		}
		if cerr := q.lock.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			q.closeErr = fmt.Errorf("queue: close %s: %w", q.path, err)
		}
	})
	return q.closeErr
}

// Path returns the queue's directory.
func (q *Pebble) Path() string { return q.path }

// checkTopic reports whether name is a valid topic name.
func checkTopic(name Topic) error {
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
func (q *Pebble) topic(name Topic, create bool) *topic {
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
func (q *Pebble) reserve(n int64) error {
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
func (q *Pebble) Append(ctx context.Context, topic Topic, items ...[]byte) error {
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
	err := q.write(ctx, true, func(b *pebble.Batch) error {
		t.putFresh(b, items)
		return nil
	})
	if err != nil {
		q.used.Add(-charge)
		return q.dbErr("append to "+string(topic), err)
	}
	t.mu.Lock()
	t.count += len(items)
	t.bytes += int64(size)
	t.wake()
	t.mu.Unlock()
	return nil
}

// putFresh adds items to b as fresh values under t's next sequence
// numbers, encoding them straight into the batch. Called by the committer
// (the items are the caller's, who waits for the write).
func (t *topic) putFresh(b *pebble.Batch, items [][]byte) {
	for _, it := range items {
		t.next++
		op := b.SetDeferred(t.itemKeyLen(), freshHeaderLen+len(it))
		t.appendItemKey(op.Key[:0], t.next)
		appendFresh(op.Value[:0], it)
		_ = op.Finish() // fails only for an indexed batch
	}
}

// dbErr turns an error of a call into the queue's: ErrClosed after
// Close, otherwise the error with what was being done.
func (q *Pebble) dbErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrClosed), errors.Is(err, pebble.ErrClosed):
		return ErrClosed
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("queue: %s: %w", what, err)
}

// Topics returns the topics, sorted by name: those stored, and those
// named in a call since Open.
func (q *Pebble) Topics() []Topic {
	q.topicsMu.RLock()
	names := make([]Topic, 0, len(q.topics))
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
func (q *Pebble) Stats(topic Topic) (Stats, error) {
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
func (q *Pebble) Usage() (used, limit int64) {
	return q.used.Load(), q.maxBytes
}
