package queue

import (
	"slices"
	"strings"
)

// Topic names a topic of the queue. Its name is stored in the keys of the
// topic's items, so a topic keeps its name across versions of insertfn.
//
// The topics insertfn uses are [InboxTopic], one [DestinationTopic] per
// destination, and [HealthTopic]; read a topic back with
// [Topic.Destination] and [Topic.IsInbox] rather than by its name. Any
// other non-empty name of at most [MaxTopicLen] bytes is a topic of its
// own (tests use such names).
type Topic string

// The topics of insertfn's own stages.
const (
	// InboxTopic is the topic accepted requests wait in before the
	// pipeline processes them; its items are inbox items (see
	// [AppendRequestItem]).
	InboxTopic Topic = "inbox"
	// HealthTopic is the topic the readiness check writes a probe to and
	// acknowledges at once; it holds nothing between checks.
	HealthTopic Topic = "health"
)

// destinationPrefix begins the name of every destination's topic.
const destinationPrefix = "dest:"

// DestinationTopic returns the topic of the named destination's backlog:
// the events processed for it and not yet delivered, and its dead letters.
// Its items are event items (see [AppendEventItem]).
func DestinationTopic(name string) Topic { return Topic(destinationPrefix + name) }

// Destination returns the name of the destination t is the backlog of;
// ok is false when t is not a destination's topic.
func (t Topic) Destination() (name string, ok bool) {
	name, ok = strings.CutPrefix(string(t), destinationPrefix)
	if !ok {
		return "", false
	}
	return name, true
}

// IsInbox reports whether t is [InboxTopic].
func (t Topic) IsInbox() bool { return t == InboxTopic }

// Destinations returns the names of the destinations that have a topic in
// q (a backlog, dead letters, or a consumer since Open), sorted. A
// destination removed from the configuration is among them while its
// topic is stored.
func (q *Pebble) Destinations() []string {
	var names []string
	for _, t := range q.Topics() {
		if name, ok := t.Destination(); ok {
			names = append(names, name)
		}
	}
	return slices.Clip(names)
}
