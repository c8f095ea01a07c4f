// Package queue is the durable queue every accepted event goes through:
// named topics of byte items in one Pebble store, with at-least-once
// consumption, retries at a later time, dead letters, and an atomic
// hand-off from one topic to others.
//
// # Why Pebble
//
// The queue is stored in github.com/cockroachdb/pebble/v2, the
// log-structured key-value store of CockroachDB. A queue's writes are
// short-lived appends and deletes, which is what a write-ahead log and a
// memtable do well:
//
//   - One fsync per group of writes. A batch of writes is one record in
//     the write-ahead log; a commit costs one fdatasync of an
//     append-only, preallocated (recycled) log file, where a B+tree file
//     (bbolt, which this package used before) costs two, of pages and of
//     its meta page, and rewrites whole pages for every item added or
//     deleted. Measured on this project's machines: 0.2-0.4 ms per
//     commit against 0.6-0.7 ms, and the Append throughput of 1 KiB
//     items went from 144k to 223k items/s (BenchmarkAppend).
//   - Group commit and pipelining: every write goes through one
//     committer goroutine that puts all the writes waiting at that moment
//     into one batch. It applies the batch and goes on with the next one
//     while the log's fsync runs ([pebble.DB.ApplyNoSyncWait]); a syncer
//     goroutine answers the writes that wait for it. A lone Append does
//     not wait for company, and under load many share each fsync.
//   - Only what must be durable waits (see [SyncAlways], [SyncInterval]):
//     an acknowledgement or a Move that a power loss undoes only hands
//     items out again.
//   - Deletes are cheap: an item handed out once is deleted with a
//     SingleDelete, which vanishes with the item's Set when both meet in
//     a memtable flush, so a queue that keeps up writes almost nothing
//     but its log.
//   - Crash-safe: the log is replayed at open up to its last intact
//     record; a crash never leaves a torn store; a process crash loses
//     nothing acknowledged (the default, SyncInterval), nor does a power
//     loss with SyncAlways.
//   - The directory is locked by the process that has it open: a second
//     insertfn on the same data directory gets a clear error instead of
//     corrupting it.
//
// Its costs, which shape how the queue is used:
//
//   - A directory of files (log, sstables, manifest), not one file; back
//     it up only while insertfn is stopped.
//   - Memory: up to four 32 MiB memtables, plus Pebble's block cache.
//   - A backlog that outlives a memtable (a destination down for a
//     while) is flushed to sstables and compacted away once drained:
//     disk space is returned some time after the backlog drains, not at
//     once. Size the disk for about twice [Options.MaxBytes].
//   - Item data is read through iterators whose memory is reused: every
//     Item and DeadItem the queue returns holds a copy, so it stays valid
//     after the call and after Close.
//   - Opening reads every stored item once, to rebuild the counts and
//     the retry schedule: a backlog of a million items adds a fraction of
//     a second to start-up.
//
// # Model
//
// A [Topic] ([InboxTopic], [DestinationTopic]("webhook-1"), ...) is an
// ordered sequence of items
// keyed by a uint64 sequence number (big-endian, so the store's key order
// is the append order). [Queue.Append] adds items; [Queue.Consumer] returns
// the topic's one logical consumer, whose [Consumer.Next] hands out ready
// items in sequence order. A handed-out item is in flight until the
// consumer settles it with [Consumer.Ack] (done), [Consumer.Retry] (again
// after a time, persisted) or [Consumer.Dead] (to the topic's dead-letter
// set). In-flight state lives in memory only: after a crash or restart
// every item not acknowledged is handed out again (at-least-once), so
// consumers must tolerate duplicates (events carry a messageId).
// [Queue.Move] acknowledges items of one topic and appends new items to
// others in one atomic batch: the pipeline's step from the inbox to the
// destination topics can neither lose nor duplicate a transfer.
//
// The queue stores any bytes; the items of the inbox and of the
// destinations' topics are event items, written and read only by
// [AppendEventItem], [AppendRequestItem], [DecodeEventItem] and
// [DecodeInboxItem]. [Queue.ListDead] lists dead letters with their
// events decoded, for insertfn dead and the admin API alike;
// [Queue.Replay] and [Queue.DropDead] settle them.
//
// # Durability
//
// [Options.Sync] chooses when a write is on disk: [SyncInterval] (the
// default: an Append returns once in the log file, fsynced every 100 ms;
// a kill -9 loses nothing acknowledged, a power loss the last 100 ms),
// [SyncAlways] (an Append returns only after its fsync; a power loss
// loses nothing either) or [SyncNever] (see their documentation).
//
// # Disk bound
//
// [Options.MaxBytes] bounds the stored items (ready, in flight, retrying
// and dead, on all topics). [Queue.Append] fails with an error wrapping
// [ErrFull] when the new items would exceed it; the server answers 503.
// Dead letters count, and never expire: an operator replays or drops them
// (insertfn dead), or a destination that refuses everything fills the
// bound in time.
// Moves between topics are never refused for space: their data was
// already accepted, and refusing it would only stall the pipeline.
package queue
