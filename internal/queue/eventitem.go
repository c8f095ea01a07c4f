package queue

import (
	"encoding/binary"
	"fmt"
)

// The items of [InboxTopic] and of the destinations' topics are event
// items: a format byte (a JSON event never starts with one), then the
// source name's length (one byte) and the source name, then:
//   - [EventItemFormat]: the event. Destination items, and inbox items of
//     a request with one event.
//   - [RequestItemFormat]: every event of one request, each as its length
//     (an unsigned varint) and its bytes. Inbox items of a request with
//     more than one event: one item per request rather than per event
//     spares the queue an insertion and a deletion per event, and its
//     reader an item (BenchmarkServeBatch, runs interleaved: +8% events
//     per second).
//
// Worked example: the events {"a":1} and {} of source "web" as a request
// item are 02 03 'w' 'e' 'b' 07 '{"a":1}' 02 '{}'.
//
// The queue itself stores any bytes; these functions are the one place
// that writes and reads this format.
const (
	// EventItemFormat is the first byte of an item of one event.
	EventItemFormat = 0x01
	// RequestItemFormat is the first byte of an inbox item of a request's
	// events.
	RequestItemFormat = 0x02
)

// EventItemLen returns the length of the event item of event from source.
func EventItemLen(source string, event []byte) int { return 2 + len(source) + len(event) }

// AppendEventItem appends the event item of event from source to dst and
// returns the extended slice. source is at most 255 bytes long.
func AppendEventItem(dst []byte, source string, event []byte) []byte {
	dst = append(dst, EventItemFormat, byte(len(source)))
	dst = append(dst, source...)
	return append(dst, event...)
}

// RequestItemMaxLen returns the most bytes the request item of events from
// source takes.
func RequestItemMaxLen(source string, events [][]byte) int {
	n := 2 + len(source)
	for _, ev := range events {
		n += binary.MaxVarintLen64 + len(ev)
	}
	return n
}

// AppendRequestItem appends the request item of events from source (one
// inbox item for all of a request's events) to dst and returns the
// extended slice. source is at most 255 bytes long; events is not empty
// (a request item without events does not decode).
func AppendRequestItem(dst []byte, source string, events [][]byte) []byte {
	dst = append(dst, RequestItemFormat, byte(len(source)))
	dst = append(dst, source...)
	for _, ev := range events {
		dst = binary.AppendUvarint(dst, uint64(len(ev)))
		dst = append(dst, ev...)
	}
	return dst
}

// DecodeEventItem splits an event item (a destination's item, or its dead
// letter) into the name of the source the event came in through and the
// event, a view into b. When the source is named last, last itself is
// returned, without a copy: the items of a batch mostly share one source.
func DecodeEventItem(b []byte, last string) (source string, event []byte, err error) {
	if len(b) < 2 || b[0] != EventItemFormat {
		return "", nil, fmt.Errorf("pipeline: a queue item of %d bytes that the pipeline did not write", len(b))
	}
	n := int(b[1])
	if len(b) < 2+n {
		return "", nil, fmt.Errorf("pipeline: queue item of %d bytes is truncated", len(b))
	}
	if name := b[2 : 2+n]; string(name) != last {
		last = string(name)
	}
	return last, b[2+n:], nil
}

// DecodeInboxItem splits an inbox item of either format (or its dead
// letter) into the name of the source its request came in through (last,
// without a copy, when the source is named that) and the request's
// events, which it appends to events. The events are views into b.
func DecodeInboxItem(b []byte, last string, events [][]byte) (source string, _ [][]byte, err error) {
	if len(b) == 0 || b[0] != RequestItemFormat {
		source, ev, err := DecodeEventItem(b, last)
		if err != nil {
			return "", events, err
		}
		return source, append(events, ev), nil
	}
	if len(b) < 2 || len(b) < 2+int(b[1]) {
		return "", events, fmt.Errorf("pipeline: inbox item of %d bytes is truncated in its source name", len(b))
	}
	n := int(b[1])
	if name := b[2 : 2+n]; string(name) != last {
		last = string(name)
	}
	if len(b) == 2+n { // AppendRequestItem is given no request without events
		return "", events, fmt.Errorf("pipeline: inbox item of %d bytes holds no events", len(b))
	}
	for rest := b[2+n:]; len(rest) > 0; {
		size, k := binary.Uvarint(rest)
		if k <= 0 || size > uint64(len(rest)-k) {
			return "", events, fmt.Errorf("pipeline: inbox item of %d bytes is truncated at its event %d", len(b), len(events))
		}
		events = append(events, rest[k:k+int(size):k+int(size)])
		rest = rest[k+int(size):]
	}
	return last, events, nil
}
