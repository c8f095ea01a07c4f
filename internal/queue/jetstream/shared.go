package jetstream

import (
	"github.com/nats-io/nats.go"

	"github.com/insertfn/insertfn/internal/queue"
)

// StreamPrefix returns the prefix of the queue's streams (Prefix, or
// DefaultPrefix), which the cluster's other JetStream buckets (function
// versions) share.
func (o *Options) StreamPrefix() string { return o.prefix() }

// StreamReplicas returns how many servers keep each of the queue's
// streams when connected through nc: Replicas, or when 0 DefaultReplicas
// on a clustered server and 1 on a lone one.
func (o *Options) StreamReplicas(nc *nats.Conn) int {
	switch {
	case o.Replicas > 0:
		return o.Replicas
	case nc.ConnectedClusterName() != "":
		return DefaultReplicas
	}
	return 1
}

// ItemsStream returns the name of the stream that holds a topic's items
// (for an operator's nats commands, or a test that stops its leader).
func (o *Options) ItemsStream(topic queue.Topic) string {
	return namesOf(o.prefix(), topic).itemsName
}
