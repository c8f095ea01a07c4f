package queue

import (
	"context"
	"time"
)

// Queue is what the pipeline, the admin API, the metrics and insertfn dead
// use of the durable queue. [Pebble] is the queue of one host; a cluster's
// hosts share one on NATS JetStream (internal/queue/jetstream). Both pass
// the same conformance suite (internal/queue/queuetest), which is the
// contract's executable form; the doc comments of [Pebble]'s methods are
// its prose.
type Queue interface {
	// Append adds items to the end of a topic (see [Pebble.Append]).
	Append(ctx context.Context, topic Topic, items ...[]byte) error
	// Consumer returns the topic's consumer (see [Pebble.Consumer]).
	Consumer(topic Topic) Consumer
	// Move settles done, items in flight on c, and appends to's items,
	// as one atomic step (see [Pebble.Move]).
	Move(ctx context.Context, c Consumer, done []Item, to map[Topic][][]byte) error
	// Topics returns the topics that hold or held items.
	Topics() []Topic
	// Destinations returns the destinations whose topics hold items.
	Destinations() []string
	// Stats returns a topic's counts.
	Stats(topic Topic) (Stats, error)
	// Usage returns the bytes stored and the bound (Options.MaxBytes).
	Usage() (used, limit int64)
	// ListDead lists dead letters with their events decoded.
	ListDead(query DeadQuery) (DeadPage, error)
	// DeadLetters lists a topic's dead letters after a sequence number.
	DeadLetters(topic Topic, after uint64, limit int) ([]DeadItem, error)
	// Replay makes dead letters ready again on their topic.
	Replay(ctx context.Context, topic Topic, seqs ...uint64) (int, error)
	// DropDead deletes dead letters.
	DropDead(ctx context.Context, topic Topic, seqs ...uint64) (int, error)
	// Close closes the queue; calls after it fail with [ErrClosed].
	Close() error
}

// Consumer hands out a topic's items and settles them: each topic has one
// logical consumer, safe for use by several goroutines (and, on a shared
// queue, by several hosts), which then share the topic's items, each item
// going to one of them.
type Consumer interface {
	// Topic returns the consumer's topic.
	Topic() Topic
	// Next waits for ready items and hands out up to maxItems of them,
	// of at most maxBytes together (see [Pebble]'s consumer).
	Next(ctx context.Context, maxItems, maxBytes int) ([]Item, error)
	// Ack settles items as done.
	Ack(ctx context.Context, items ...Item) error
	// Retry makes an item ready again at notBefore, its Attempts one more.
	Retry(ctx context.Context, item Item, notBefore time.Time) error
	// Dead moves an item to its topic's dead letters, with the reason.
	Dead(ctx context.Context, item Item, reason string) error
}

var (
	_ Queue    = (*Pebble)(nil)
	_ Consumer = (*pebbleConsumer)(nil)
)
