// Package jetstream is the durable queue of an insertfn cluster: a
// [queue.Queue] on NATS JetStream that every host opens with the same
// Options.Prefix, so that the hosts share one queue and nothing is
// stranded when a host dies. It passes the conformance suite
// (internal/queue/queuetest) on one server and on a cluster of three
// with streams of three replicas; where it keeps queue.Pebble's contract
// differently, the method says so.
//
// # Mapping
//
//   - A topic is a work-queue stream, P_Q_<topic> (see names.go for how
//     a topic name becomes a stream name and a subject), created at the
//     topic's first write or Next, with a durable pull consumer that
//     every host shares ("insertfn"; explicit acks, no delivery limit).
//     Item.Seq is the stream sequence.
//   - Append publishes to the stream and waits for its acknowledgement:
//     the item is on a quorum of the stream's replicas.
//   - Next pulls: first what the consumer has at once (a no-wait fetch of
//     up to maxItems), else one pull request that the stream answers as
//     soon as an item is ready (see consumer.Next); maxBytes is applied
//     on this side, the items beyond it kept for the next call.
//   - An item handed out stays with its host: the host keeps it alive
//     (in-progress acknowledgements every third of AckWait) until it is
//     settled. A host that dies stops doing so, and its items come back
//     to the other hosts after AckWait; one that closes hands them back
//     at once (negative acknowledgements).
//   - Ack acknowledges and waits for the consumer leader's confirmation
//     (the stream then deletes the items).
//   - Retry stores the item's Attempts + 1 (see attempts.go) and gives
//     the item back with a negative acknowledgement delayed to notBefore:
//     the stream redelivers it then, before the items appended after it,
//     with the same sequence number. Attempts counts the Retry calls
//     only, as the contract wants: a redelivery after a host died or
//     closed does not count (the stream's delivery count would: it counts
//     every delivery alike).
//   - Dead publishes the dead letter to the topic's dead-letter stream,
//     P_D_<topic>, on a subject named by the item's sequence number
//     (reason, original topic and sequence, Attempts and time in
//     headers), then terminates the item. DeadLetters, ListDead, Replay
//     and DropDead work on that stream; dead letters keep their items'
//     sequence numbers and order, as queue.Pebble's do.
//   - Move publishes the outputs, each with a message id derived from
//     the items it acknowledges and from the output itself, then
//     acknowledges the items: a Move replayed after a crash (its
//     acknowledgement lost, the items back after AckWait) adds nothing
//     twice within DuplicateWindow. It is not atomic across streams as
//     Pebble's one batch is; see Queue.Move for what takes its place.
//   - MaxBytes bounds the bytes of the queue's streams together, as the
//     servers count them: each host measures them every second and adds
//     its own writes since, and Append fails with an error wrapping
//     queue.ErrFull (the server's 503) beyond the bound. The streams get
//     no byte limit of their own: NATS reserves a stream's limit in its
//     servers' storage whether used or not, so one limit per topic would
//     reserve MaxBytes as many times as there are topics, times the
//     replicas. The hard bound is the servers' own (max_file_store, an
//     account's limits); a write they refuse for room is ErrFull too.
//   - Stats: see stats.go (each host reports what it holds).
//
// # Durability
//
// An acknowledged item is on a quorum of its stream's replicas: with
// three, the loss of a server loses nothing. A server writes its stream
// files without an fsync per message (every two minutes by default, its
// sync_interval): a power loss of a quorum at once may lose the last
// writes; set sync_interval: always on the servers where that matters.
//
// # Costs
//
// Three streams at most per topic's life (items, dead letters when one
// dies) plus two for the queue (Retry counts, host reports), each a Raft
// group when replicated. Every handle measures the streams' bytes every
// second (a stream list, one request per 256 streams) and reports what
// it holds at most ten times a second while it changes; Stats costs up to
// three requests per topic and one per other host, at most every 100 ms.
// An item costs a publish to append, a fetch and an acknowledgement (a
// request each, batched per Next and per Ack, but each acknowledged and
// replicated by itself) to consume; a retried one a publish more and a
// read when it comes back.
package jetstream
