package cluster

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// bucketWatch applies a key-value bucket's entries to this host, as
// Versions and Filters do: the bucket holds what any host changed last,
// and every host applies it.
type bucketWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// watchBucket applies kv's current entries with apply, within ctx, and
// returns once they are applied (so that the host serves with them); then
// it applies each change in the background, until stop. Every entry
// comes back, those this host wrote included: another host's write may
// have replaced them since.
func watchBucket(ctx context.Context, kv jetstream.KeyValue, apply func(context.Context, jetstream.KeyValueEntry)) (*bucketWatch, error) {
	bg, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(bg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch %s: %w", kv.Bucket(), err)
	}
	// The current values come first, then a nil.
	for initial := true; initial; {
		select {
		case e := <-w.Updates():
			if e == nil {
				initial = false
				break
			}
			apply(ctx, e)
		case <-ctx.Done():
			_ = w.Stop()
			cancel()
			return nil, fmt.Errorf("reading %s: %w", kv.Bucket(), ctx.Err())
		}
	}
	b := &bucketWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		defer w.Stop() //nolint:errcheck // the watch ends with the connection or here
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					apply(bg, e)
				}
			case <-bg.Done():
				return
			}
		}
	}()
	return b, nil
}

// stop ends the watch and waits for the change being applied, if any.
func (b *bucketWatch) stop() {
	b.cancel()
	<-b.done
}
