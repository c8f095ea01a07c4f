package cluster

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// DefaultDedupeSubject is the subject of accepted messageIds.
const DefaultDedupeSubject = "insertfn.ingest.accepted"

// Batching of the messageIds a host shares: at most dedupeBatch ids or
// dedupeLinger of waiting per message.
const (
	dedupeBatch  = 1000
	dedupeLinger = 5 * time.Millisecond
)

// DedupePeers shares the messageIds each host accepted with the others
// (ingest.DedupePeers), so that a client's retry that reaches another host
// is answered as a duplicate there. It is best effort, as deduplication
// is: ids are batched for a few milliseconds, a retry that comes sooner
// than that through another host is accepted twice (delivery is at least
// once anyway, and receivers deduplicate by messageId), and ids are
// dropped rather than slow the ingest when the bus falls behind.
type DedupePeers struct {
	nc      *nats.Conn
	subject string
	self    string
	sub     *nats.Subscription

	mu       sync.Mutex
	remember func(source string, ids []string)

	in      chan accepted
	done    chan struct{}
	stopped chan struct{}
	dropped atomic.Uint64
}

type accepted struct {
	source string
	ids    []string
}

type acceptedMessage struct {
	From   string   `json:"from"`
	Source string   `json:"source"`
	IDs    []string `json:"ids"`
}

// NewDedupePeers subscribes to subject (default DefaultDedupeSubject) on
// nc and starts the publisher. What the other hosts accepted goes to the
// function [DedupePeers.SetRemember] sets (the ingest server's
// RememberAccepted).
func NewDedupePeers(nc *nats.Conn, subject string) (*DedupePeers, error) {
	if subject == "" {
		subject = DefaultDedupeSubject
	}
	p := &DedupePeers{nc: nc, subject: subject, self: nuid.Next(),
		in: make(chan accepted, 4096), done: make(chan struct{}), stopped: make(chan struct{})}
	sub, err := nc.Subscribe(subject, p.receive)
	if err != nil {
		return nil, fmt.Errorf("cluster: subscribe to %s: %w", subject, err)
	}
	_ = sub.SetPendingLimits(1<<16, 256<<20)
	p.sub = sub
	go p.publish()
	return p, nil
}

// SetRemember sets what the other hosts' accepted ids are given to.
func (p *DedupePeers) SetRemember(remember func(source string, ids []string)) {
	p.mu.Lock()
	p.remember = remember
	p.mu.Unlock()
}

// Accepted implements ingest.DedupePeers: it queues ids for the next
// message, or drops them when the queue is full.
func (p *DedupePeers) Accepted(source string, ids []string) {
	select {
	case p.in <- accepted{source, ids}:
	default:
		p.dropped.Add(uint64(len(ids)))
	}
}

// Dropped returns how many ids were not shared because the bus fell
// behind.
func (p *DedupePeers) Dropped() uint64 { return p.dropped.Load() }

func (p *DedupePeers) publish() {
	defer close(p.stopped)
	pending := make(map[string][]string)
	n := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		for source, ids := range pending {
			b, err := json.Marshal(acceptedMessage{From: p.self, Source: source, IDs: ids})
			if err == nil {
				if p.nc.Publish(p.subject, b) != nil {
					p.dropped.Add(uint64(len(ids)))
				}
			}
			delete(pending, source)
		}
		n = 0
	}
	for {
		select {
		case a := <-p.in:
			if n == 0 {
				timer.Reset(dedupeLinger)
			}
			pending[a.source] = append(pending[a.source], a.ids...)
			n += len(a.ids)
			if n >= dedupeBatch {
				timer.Stop()
				flush()
			}
		case <-timer.C:
			flush()
		case <-p.done:
			flush()
			return
		}
	}
}

func (p *DedupePeers) receive(m *nats.Msg) {
	var am acceptedMessage
	if json.Unmarshal(m.Data, &am) != nil || am.From == p.self {
		return
	}
	p.mu.Lock()
	remember := p.remember
	p.mu.Unlock()
	if remember != nil {
		remember(am.Source, am.IDs)
	}
}

// Close publishes what is queued and unsubscribes.
func (p *DedupePeers) Close() error {
	close(p.done)
	<-p.stopped
	if err := p.sub.Unsubscribe(); err != nil && err != nats.ErrConnectionClosed {
		return fmt.Errorf("cluster: unsubscribe from %s: %w", p.subject, err)
	}
	return nil
}
