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
//   - A message of the stream holds one item (Append, Replay) or a pack
//     of several (Move: see pack.go). Item.Seq is the message's stream
//     sequence << 16 | the item's index in it: unique in the topic, and
//     ascending in the order of the appends. A copy of an item (a Retry,
//     a remainder given back) keeps the item's Seq and Attempts in its
//     pack.
//   - A message's data may be compressed (S2, the header
//     Insertfn-Encoding; see encoding.go and Options.Compression); a
//     message that does not decode is handed out as it is stored, one
//     item.
//   - Append publishes one message per item and waits for the
//     acknowledgements: the items are on a quorum of the stream's
//     replicas.
//   - Next pulls messages: first what the consumer has at once (a
//     no-wait fetch of about as many messages as should hold maxItems
//     items), else one pull request that the stream answers as soon as a
//     message is ready (see consumer.Next); maxItems and maxBytes are
//     applied on this side to the items unpacked, those beyond them kept
//     for the next call.
//   - A message handed out (any of its items) stays with its host: the
//     host keeps it alive (in-progress acknowledgements every third of
//     AckWait) while any of its items is held. A host that dies stops
//     doing so, and its messages come back whole to the other hosts
//     after AckWait; one that closes hands them back at once (negative
//     acknowledgements), or, for a pack some of whose items were
//     settled, publishes the others as a pack of their own and
//     acknowledges it.
//   - Ack settles items; a message is acknowledged once all its items
//     are settled, and Ack waits for the consumer leader's confirmation
//     (the stream then deletes the message). The items of a pack
//     settled before its last are settled on their host only until
//     then: when the host dies in between, the pack comes back whole, so
//     they are handed out again (at least once).
//   - Retry publishes the item alone, a pack of one with its Seq, its
//     Attempts + 1 and, when it is for later, its time: a host that gets
//     it before then gives it back with the delay left (a negative
//     acknowledgement with a delay). The item is then settled in its
//     message. Attempts counts the Retry calls only, as the contract
//     wants (a redelivery after a host died or closed does not count).
//     If the host dies after the copy's publish and before its message
//     is acknowledged, the message comes back with the item too: one
//     delivery attempt more (at least once); the copy's message id
//     (named by Seq and Attempts) keeps a second Retry of it from
//     publishing a second copy within DuplicateWindow, and a host that
//     holds both an item and its copy hands out one of them.
//   - Dead publishes the dead letter to the topic's dead-letter stream,
//     P_D_<topic>, on a subject named by the item's Seq (reason,
//     original topic and sequence, Attempts and time in headers), then
//     settles the item. DeadLetters, ListDead, Replay and DropDead work
//     on that stream; dead letters keep their items' Seq and order, as
//     queue.Pebble's do.
//   - Move publishes the outputs to each topic as one pack (split past
//     65535 items or the servers' largest message), each pack with a
//     message id derived from the items it settles and from the pack
//     itself, then settles the items: a Move replayed after a crash (its
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
// Two streams at most per topic's life (items, dead letters when one
// dies) plus one for the queue (host reports), each a Raft group when
// replicated. Every handle measures the streams' bytes every second (a
// stream list, one request per 256 streams) and reports what it holds
// at most ten times a second while it changes; Stats costs up to two
// requests per topic and one per other host, at most every 100 ms. A
// message costs a publish to append, a fetch and an acknowledgement (a
// request each, batched per Next and per Ack, but each acknowledged and
// replicated by itself) to consume: a Move's pack of a request's events
// is one message for all of them. A retried item costs a publish and an
// acknowledgement more.
package jetstream
