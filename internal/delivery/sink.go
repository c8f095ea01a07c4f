// Package delivery sends events to destinations: an HTTP webhook, an NDJSON
// file, or standard output. It knows nothing of the queue the events come
// from: the pipeline reads a batch from the queue, calls [Sink.Deliver], and
// asks this package what a failure means:
//
//   - [Retryable]: can the same events succeed later? A 5xx, 408 or 429
//     answer, a timeout, a connection error, a full disk: yes. A 4xx
//     rejection or an event that is not JSON: no (dead-letter it).
//   - [RetryAfter]: did the destination say when to come back?
//   - [Backoff]: how long to wait before attempt n+1 and when to give up.
//
// Delivery is at-least-once: a retried batch may reach the destination twice
// (events carry messageId for receivers to deduplicate).
//
// A [Config] describes one destination's sink as the YAML configuration
// spells it; [Open] builds the sink.
package delivery

import "context"

// Sink is a destination events are delivered to. Implementations are safe
// for concurrent use.
type Sink interface {
	// Deliver sends events, each one Segment event as a JSON object, and
	// returns nil once the destination has them (what "has" means is the
	// sink's: a 2xx answer, bytes on disk, bytes written). On failure
	// classify the error with [Retryable] and [RetryAfter]; nothing is
	// retried inside Deliver.
	//
	// Deliver does not keep events or the slices in them after it returns;
	// the caller may reuse them at once. It returns ctx.Err() without
	// sending anything if ctx is already done; a request under way is bounded
	// by the sink's own timeout and ctx's deadline.
	Deliver(ctx context.Context, events [][]byte) error
	// Close releases the sink's resources (connections, files). Deliver
	// after Close returns [ErrClosed]. Close waits for Deliver calls in
	// progress only where the sink says so.
	Close() error
}

var (
	_ Sink = (*Webhook)(nil)
	_ Sink = (*File)(nil)
	_ Sink = (*Stdout)(nil)
)
