// Package cluster is what the hosts of one insertfn cluster tell each other
// over NATS, beside the queue they share (internal/queue/jetstream): which
// consent records a write changed, so that no host judges an event by a
// record it cached before the write.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// DefaultConsentSubject is the subject of consent cache invalidations.
const DefaultConsentSubject = "insertfn.consent.forget"

// DefaultFlushTimeout bounds the wait for the NATS server to have a
// write's invalidation, when the write's context has no deadline.
const DefaultFlushTimeout = 5 * time.Second

// ConsentPeers tells the other hosts of the cluster which consent ids a
// write of this host changed, and has this host forget what theirs changed
// (consentstore.Peers). Each message names its sender, which ignores its
// own.
type ConsentPeers struct {
	nc      *nats.Conn
	subject string
	self    string

	mu     sync.Mutex
	forget func(ids ...string)
	sub    *nats.Subscription

	dropped int // messages the subscription dropped so far; receive's
}

// forgetMessage is one write's ids; none: every id (a write whose effect
// is unknown).
type forgetMessage struct {
	From string   `json:"from"`
	IDs  []string `json:"ids,omitempty"`
}

// NewConsentPeers subscribes to subject (default DefaultConsentSubject) on
// nc. What the other hosts' writes changed goes to forget, which
// [ConsentPeers.SetForget] sets once the store exists (the store needs its
// peers first); until then it is dropped, which is safe only while this
// host has cached nothing.
//
// # Results
//   - the peers, to Close;
//   - the subscription's error.
func NewConsentPeers(nc *nats.Conn, subject string) (*ConsentPeers, error) {
	if subject == "" {
		subject = DefaultConsentSubject
	}
	p := &ConsentPeers{nc: nc, subject: subject, self: nuid.Next()}
	sub, err := nc.Subscribe(subject, p.receive)
	if err != nil {
		return nil, fmt.Errorf("cluster: subscribe to %s: %w", subject, err)
	}
	// A slow subscriber drops messages; a dropped invalidation could leave
	// a stale record cached, so the limits are generous and receive
	// forgets everything once it sees a drop.
	_ = sub.SetPendingLimits(1<<20, 256<<20)
	p.sub = sub
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("cluster: subscribe to %s: %w", subject, err)
	}
	return p, nil
}

// SetForget sets what a peer's write calls on this host.
func (p *ConsentPeers) SetForget(forget func(ids ...string)) {
	p.mu.Lock()
	p.forget = forget
	p.mu.Unlock()
}

func (p *ConsentPeers) receive(m *nats.Msg) {
	var fm forgetMessage
	if n, err := m.Sub.Dropped(); err == nil && n > p.dropped {
		p.dropped = n // some were lost: forget everything
	} else if err := json.Unmarshal(m.Data, &fm); err != nil {
		fm = forgetMessage{} // unreadable: forget everything
	} else if fm.From == p.self {
		return
	}
	p.mu.Lock()
	forget := p.forget
	p.mu.Unlock()
	if forget != nil {
		forget(fm.IDs...)
	}
}

// Forget implements consentstore.Peers: it publishes ids and returns once
// the NATS server has them (a flush), so that an acknowledged write is on
// its way to every host before its client hears back.
func (p *ConsentPeers) Forget(ctx context.Context, ids []string) error {
	b, err := json.Marshal(forgetMessage{From: p.self, IDs: ids})
	if err != nil {
		return err
	}
	if err := p.nc.Publish(p.subject, b); err != nil {
		return fmt.Errorf("cluster: publish to %s: %w", p.subject, err)
	}
	if _, ok := ctx.Deadline(); !ok { // nats.go's flush wants one
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultFlushTimeout)
		defer cancel()
	}
	if err := p.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("cluster: flush to %s: %w", p.subject, err)
	}
	return nil
}

// Close unsubscribes.
func (p *ConsentPeers) Close() error {
	if err := p.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("cluster: unsubscribe from %s: %w", p.subject, err)
	}
	return nil
}
