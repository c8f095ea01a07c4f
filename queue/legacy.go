package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// LegacyFileName is the name of the queue file of an earlier insertfn
// (a bbolt file) in a data directory: DATA/queue.db, where the queue is
// now the directory DATA/queue ([DirName]). Pass its path to
// [Queue.ImportBolt].
const LegacyFileName = "queue.db"

// ImportedSuffix is appended to the name of a legacy queue file once
// [Queue.ImportBolt] has imported it.
const ImportedSuffix = ".imported"

// The bbolt layout of an earlier insertfn's queue file: the root bucket
// "meta" holds "format" = legacyFormat; the root bucket "topics" holds
// one bucket per topic, named by the topic, each with the buckets
// "items" and "dead" keyed by sequence number (8 bytes big-endian, so
// that bbolt's key order is the append order). Values are the item v1
// and dead v1 encodings of codec.go.
var (
	legacyBucketMeta   = []byte("meta")
	legacyBucketTopics = []byte("topics")
	legacyBucketItems  = []byte("items")
	legacyBucketDead   = []byte("dead")
	legacyKeyFormat    = []byte("format")
)

// legacyFormat is the meta/format value of the only bbolt layout.
const legacyFormat = "1"

// legacyLockTimeout is how long ImportBolt waits for the legacy file's
// lock: an earlier insertfn still running holds it for good.
const legacyLockTimeout = time.Second

// Bounds of one write of ImportBolt: it writes a topic's entries in
// chunks of at most importChunkItems items and dead letters, and of at
// most about importChunkBytes of data, so that memory stays bounded
// whatever the size of the backlog.
const (
	importChunkItems = 1000
	importChunkBytes = 16 << 20
)

// ImportBolt moves what a queue file of an earlier insertfn (bbolt, at
// path, conventionally DATA/queue.db: see [LegacyFileName]) holds into
// q, then renames the file to path + ".imported" ([ImportedSuffix],
// replacing an earlier one) so that the next start does not import it
// again. Call it right after [Open], before the server accepts events,
// so that the old backlog is handed out first; it does nothing when path
// does not exist, so it can be called on every start.
//
// Every topic of the file is imported, in the order of its sequence
// numbers, at the end of the topic of the same name in q (created when
// needed), with new sequence numbers:
//
//   - Items keep their data, their order and their Attempts; an item
//     that was waiting for a retry time is ready at once.
//   - Dead letters keep their data, reason, time and Attempts.
//   - An item whose stored value cannot be decoded becomes a dead letter
//     with its raw bytes as data and the problem as reason, as
//     [Consumer.Next] does; a dead letter that cannot be decoded is kept
//     the same way. Nothing is dropped.
//
// The import is never refused for space ([Options.MaxBytes]): its data
// was already accepted. It may take the stored bytes over the bound, in
// which case Append fails with [ErrFull] until consumers catch up.
//
// The entries are written in chunks of 1000, each durable (under
// [SyncAlways] it waits for its fsync; under the other policies the log
// is fsynced once at the end), and the file is renamed only after the
// last of them. An import interrupted by a crash, an error or ctx leaves
// the file in place, and the next call imports all of it again: the
// items imported the first time are then stored twice (at-least-once;
// consumers tolerate duplicates).
//
// The file is opened read-only: the earlier insertfn must be stopped.
//
// # Results
//
// The number of items and of dead letters imported (dead counts the
// items that could not be decoded); 0, 0, nil when path does not exist.
// The errors name the file and say what to do:
//
//   - the file is locked by a process still running (an earlier insertfn
//     on the same data directory): stop it first;
//   - an error wrapping [ErrCorrupt]: not a queue file of a known layout
//     (nothing is imported; move it away to start without it);
//   - ctx's error when it is done between two chunks, [ErrClosed] after
//     Close, or the store's error: the counts are then what was imported
//     before it, which the next call imports again;
//   - the rename failed after a complete import: the counts come with an
//     error saying to move the file away before the next start.
func (q *Queue) ImportBolt(ctx context.Context, path string) (items, dead int, err error) {
	if q.isClosed.Load() {
		return 0, 0, ErrClosed
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 0, 0, nil
	case err != nil:
		return 0, 0, fmt.Errorf("queue: import %s: %w", path, err)
	case fi.IsDir():
		return 0, 0, fmt.Errorf("queue: import %s: a directory, not a queue file of an earlier insertfn", path)
	case fi.Size() == 0:
		// Created by an earlier insertfn that stopped before writing
		// anything: nothing to import, and bbolt cannot open it
		// read-only.
		return 0, 0, q.retireLegacy(path, 0, 0)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: legacyLockTimeout})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return 0, 0, fmt.Errorf("queue: import %s: the file is locked by another process (an earlier insertfn still running on this data directory?); stop it, then start this insertfn again", path)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return 0, 0, fmt.Errorf("queue: import %s: %w: not a queue file of an earlier insertfn (%v); move it away to start without it", path, ErrCorrupt, err)
	case err != nil:
		return 0, 0, fmt.Errorf("queue: import %s: %w", path, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(legacyBucketMeta)
		if meta == nil {
			return fmt.Errorf("%w: no bucket %q: not a queue file of an earlier insertfn; move it away to start without it", ErrCorrupt, legacyBucketMeta)
		}
		if v := meta.Get(legacyKeyFormat); string(v) != legacyFormat {
			return fmt.Errorf("%w: layout version %q, this insertfn imports %q; move the file away to start without it", ErrCorrupt, v, legacyFormat)
		}
		root := tx.Bucket(legacyBucketTopics)
		if root == nil {
			return nil // a file that never had a topic
		}
		return root.ForEachBucket(func(name []byte) error {
			n, d, err := q.importTopic(ctx, root.Bucket(name), string(name))
			items += n
			dead += d
			if err != nil {
				return fmt.Errorf("topic %q: %w", name, err)
			}
			return nil
		})
	})
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil && q.sync != SyncAlways {
		err = q.syncImported()
	}
	if err != nil {
		if errors.Is(err, pebble.ErrClosed) {
			err = ErrClosed
		}
		if items+dead > 0 {
			return items, dead, fmt.Errorf("queue: import %s: %w; the %d items and %d dead letters imported before it are imported again with the rest of the file (duplicates) by the next call", path, err, items, dead)
		}
		return 0, 0, fmt.Errorf("queue: import %s: %w", path, err)
	}
	return items, dead, q.retireLegacy(path, items, dead)
}

// importTopic imports the dead letters, then the items, of the legacy
// topic bucket tb into the topic name of q, in chunks. It returns the
// number of items and of dead letters imported, also on an error.
func (q *Queue) importTopic(ctx context.Context, tb *bolt.Bucket, name string) (items, dead int, err error) {
	if err := checkTopic(name); err != nil {
		return 0, 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	t := q.topic(name, true)
	var c importChunk
	flush := func() error {
		if err := q.putImported(ctx, t, &c); err != nil {
			return err
		}
		items += len(c.items)
		dead += len(c.dead)
		c.reset()
		return nil
	}
	now := time.Now().UnixNano()
	if b := tb.Bucket(legacyBucketDead); b != nil {
		cur := b.Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if v == nil {
				continue // a nested bucket: never written by insertfn
			}
			if dv, derr := decodeDead(v); derr == nil {
				c.addDead(bytes.Clone(v), len(dv.data))
			} else {
				c.addDead(encodeDead(0, now, "corrupt stored dead letter: "+derr.Error(), v), len(v))
			}
			if c.full() {
				if err := flush(); err != nil {
					return items, dead, err
				}
			}
		}
	}
	if b := tb.Bucket(legacyBucketItems); b != nil {
		cur := b.Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if v == nil {
				continue
			}
			if h, data, derr := decodeItem(v); derr == nil {
				// Ready at once: notBefore is dropped, Attempts kept.
				c.addItem(encodeItem(h.attempts, 0, data), len(data))
			} else {
				c.addDead(encodeDead(0, now, "corrupt stored item: "+derr.Error(), v), len(v))
			}
			if c.full() {
				if err := flush(); err != nil {
					return items, dead, err
				}
			}
		}
	}
	if len(c.items)+len(c.dead) > 0 {
		if err := flush(); err != nil {
			return items, dead, err
		}
	}
	return items, dead, nil
}

// importChunk is the entries of one topic that one write of ImportBolt
// stores: stored values (copies, not bbolt's memory) and the data
// lengths counted for them.
type importChunk struct {
	items     [][]byte // item values
	itemBytes int64
	dead      [][]byte // dead-letter values
	deadBytes int64
	size      int // of the values, to bound the chunk
}

func (c *importChunk) addItem(v []byte, n int) {
	c.items = append(c.items, v)
	c.itemBytes += int64(n)
	c.size += len(v)
}

func (c *importChunk) addDead(v []byte, n int) {
	c.dead = append(c.dead, v)
	c.deadBytes += int64(n)
	c.size += len(v)
}

// full reports whether the chunk is to be written before more is added.
func (c *importChunk) full() bool {
	return len(c.items)+len(c.dead) >= importChunkItems || c.size >= importChunkBytes
}

func (c *importChunk) reset() {
	clear(c.items)
	clear(c.dead)
	*c = importChunk{items: c.items[:0], dead: c.dead[:0]}
}

// putImported stores the items and dead letters of c at the end of t,
// under t's next sequence numbers, in one durable write, then counts
// them: t's counts, and q.used (data plus ItemOverhead each) without
// checking it against MaxBytes, as Move does. It wakes t's consumer.
func (q *Queue) putImported(ctx context.Context, t *topic, c *importChunk) error {
	err := q.write(ctx, true, func(b *pebble.Batch) error {
		// t.next is the committer's: read and advanced only here.
		for _, v := range c.items {
			t.next++
			if err := b.Set(t.itemKey(t.next), v, nil); err != nil {
				return err
			}
		}
		for _, v := range c.dead {
			t.next++
			if err := b.Set(t.deadKey(t.next), v, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	n := len(c.items) + len(c.dead)
	q.used.Add(c.itemBytes + c.deadBytes + int64(n)*ItemOverhead)
	t.mu.Lock()
	t.count += len(c.items)
	t.bytes += c.itemBytes
	t.deadCount += len(c.dead)
	t.deadBytes += c.deadBytes
	if len(c.items) > 0 {
		t.wake()
	}
	t.mu.Unlock()
	return nil
}

// syncImported fsyncs the store's log, so that what ImportBolt wrote
// under SyncInterval or SyncNever is on disk before the legacy file is
// renamed. It holds closeMu, so that Close does not close the store
// while it runs.
func (q *Queue) syncImported() error {
	q.closeMu.RLock()
	defer q.closeMu.RUnlock()
	if q.closed {
		return ErrClosed
	}
	return q.syncLog()
}

// retireLegacy renames the imported legacy file at path to path +
// ImportedSuffix and syncs its directory, so that it is not imported
// again. items and dead are what was imported, for the error.
func (q *Queue) retireLegacy(path string, items, dead int) error {
	to := path + ImportedSuffix
	if err := os.Rename(path, to); err != nil {
		return fmt.Errorf("queue: import %s: imported %d items and %d dead letters, but renaming the file failed: %w; move it away (to %s) before the next start, or its items are imported again", path, items, dead, err, to)
	}
	// Best effort: a rename lost to a power loss only imports the file
	// again (duplicates, not losses).
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
