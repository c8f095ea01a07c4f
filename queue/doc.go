// Package queue is the durable queue every accepted event goes through:
// named topics of byte items in one bbolt file, with at-least-once
// consumption, retries at a later time, dead letters, and an atomic
// hand-off from one topic to others.
//
// # Why bbolt
//
// The queue is stored in go.etcd.io/bbolt, the embedded database the
// consent store already uses, so an operator has one engine to back up,
// understand and troubleshoot:
//
//   - Crash-safe: a transaction is copy-on-write and becomes visible by
//     one meta-page write after its pages are synced; a process or machine
//     crash leaves the last committed state, never a torn one.
//   - Group commit: every write of the queue (appends, acks, retries, dead
//     letters, moves) goes through one committer goroutine that takes all
//     the writes waiting at that moment into one transaction and one
//     fsync. Under load many Append calls share each fsync; a lone Append
//     does not wait for company. (bbolt's own db.Batch does the same
//     sharing, but holds every batch for a timer (MaxBatchDelay) or until
//     it is full; the committer here starts the next transaction as soon as
//     the previous one is on disk, which gives the same throughput without
//     the added latency at low load.)
//   - A single file, locked by the process that has it open: a second
//     insertfn on the same data directory gets a clear error instead of
//     corrupting it.
//
// Its limits, which shape how the queue is used:
//
//   - One writer at a time: all writes are serialized in the committer.
//     Throughput comes from large transactions, not parallel ones; a
//     commit costs two fsyncs (pages, then meta page) whatever its size.
//   - Throughput is bounded by the disk's synced write bandwidth: every
//     item is written once when appended, once more per topic it is
//     moved to, and its page is rewritten when it is acknowledged. On a
//     disk that syncs 50 MB/s that is some tens of thousands of 1 KiB
//     items per second, whatever the engine. New files use 16 KiB pages
//     (see BenchmarkAppend) so that 1 KiB items fill them well.
//   - The file does not shrink: pages freed by acknowledged items are
//     reused for new ones, not returned to the file system. After a large
//     backlog drains the file keeps its size. Size the disk for about
//     twice [Options.MaxBytes].
//   - Item data is read through the memory map: every Item and DeadItem
//     the queue returns holds a copy, so it stays valid after the
//     transaction and after Close.
//   - Opening reads the header of every stored item once, to rebuild the
//     counts and the retry schedule: a backlog of a million items adds
//     a fraction of a second to start-up.
//
// # Model
//
// A topic ("inbox", "dest:webhook-1") is an ordered sequence of items
// keyed by a uint64 sequence number (big-endian, so bbolt's key order is
// the append order). [Queue.Append] adds items; [Queue.Consumer] returns
// the topic's one logical consumer, whose [Consumer.Next] hands out ready
// items in sequence order. A handed-out item is in flight until the
// consumer settles it with [Consumer.Ack] (done), [Consumer.Retry] (again
// after a time, persisted) or [Consumer.Dead] (to the topic's dead-letter
// set). In-flight state lives in memory only: after a crash or restart
// every item not acknowledged is handed out again (at-least-once), so
// consumers must tolerate duplicates (events carry a messageId).
// [Queue.Move] acknowledges items of one topic and appends new items to
// others in one transaction: the pipeline's step from the inbox to the
// destination topics can neither lose nor duplicate a transfer.
//
// # Durability
//
// [Options.Sync] chooses when a write is on disk: [SyncAlways] (the
// default: a write returns only after its fsync; a kill -9 or a power
// loss loses nothing acknowledged), [SyncInterval] or [SyncNever] (see
// their documentation for what a crash may lose).
//
// # Disk bound
//
// [Options.MaxBytes] bounds the stored items (ready, in flight, retrying
// and dead, on all topics). [Queue.Append] fails with an error wrapping
// [ErrFull] when the new items would exceed it; the server answers 503.
// Moves between topics are never refused for space: their data was
// already accepted, and refusing it would only stall the pipeline.
package queue
