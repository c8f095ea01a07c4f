package delivery

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// ErrClosed is returned by Deliver on a sink that has been closed. It is
// retryable: the events were not delivered and stay where they came from.
var ErrClosed = errors.New("delivery: sink is closed")

// Error is a failed delivery that says whether retrying can help. Sinks
// return it (wrapped or not) from Deliver; callers classify any error with
// [Retryable] and [RetryAfter] rather than inspecting it.
type Error struct {
	// Sink is the kind of sink that failed: "webhook", "file" or "stdout".
	Sink string
	// Op says what was being done, for the message: "POST https://host/path".
	Op string
	// Status is the HTTP status code the destination answered, or 0 when
	// there was no answer (connection error, timeout) or no HTTP at all.
	Status int
	// Permanent is true when sending the same events again cannot succeed
	// (the destination rejected them: a 4xx other than 408 and 429, or an
	// event that is not a JSON object). Such events belong in the dead-letter
	// store, not back in the queue.
	Permanent bool
	// After is how long the destination asked the caller to wait before the
	// next attempt (the Retry-After header of a 429 or 503), or 0.
	After time.Duration
	// Body is an excerpt of the destination's answer: at most 200 bytes,
	// valid UTF-8, for the operator to read in logs and the dead-letter store.
	Body string
	// Delivered is how many of the events, from the start of the slice
	// given to Deliver, were delivered before the failure. Only a webhook in
	// [ModeEvent] delivers part of a batch; a caller may count
	// events[:Delivered] as delivered and retry or dead-letter the rest.
	// Retrying the whole slice is also correct (delivery is at-least-once).
	Delivered int
	// Event is 1 + the index, in the slice given to Deliver, of the one
	// event the failure is about (an event that is not a JSON object, or
	// the request of a webhook in [ModeEvent] that failed), or 0 when the
	// failure is about the whole slice. A caller may then settle that event
	// alone and send the others again.
	Event int
	// Err is the underlying cause, if any (a network error, a file system
	// error).
	Err error
}

// Error returns a one-line description: the sink, the operation, the status
// and body excerpt or cause, and whether it will be retried.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("delivery: ")
	b.WriteString(e.Sink)
	if e.Op != "" {
		b.WriteByte(' ')
		b.WriteString(e.Op)
	}
	if e.Status != 0 {
		b.WriteString(": status ")
		b.WriteString(strconv.Itoa(e.Status))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Body != "" {
		b.WriteString(": body ")
		b.WriteString(strconv.Quote(e.Body))
	}
	if e.Permanent {
		b.WriteString(" (permanent: sending the same events again cannot succeed)")
	} else if e.After > 0 {
		b.WriteString(" (retryable after ")
		b.WriteString(e.After.String())
		b.WriteByte(')')
	} else {
		b.WriteString(" (retryable)")
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether delivering the same events again may succeed.
//
// It is false for nil and for errors marked permanent (an [*Error] with
// Permanent set, anywhere in the chain), and true for every other error:
// an error the sink did not classify (a full disk, a cancelled context,
// [ErrClosed]) keeps the events rather than losing them. A caller bounds
// the retries with [Backoff.MaxAttempts].
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return !e.Permanent
	}
	return true
}

// Rejected reports whether err is a destination's permanent refusal of
// the content of what it was sent (HTTP 400, 413 or 422, or an event the
// sink cannot write), as opposed to a refusal of the request itself (401,
// 403, 404, a redirect): a subset of the events sent, without the one it
// refuses, may then be accepted.
func Rejected(err error) bool {
	var e *Error
	if !errors.As(err, &e) || !e.Permanent {
		return false
	}
	switch e.Status {
	case 0, 400, 413, 422:
		return true
	}
	return false
}

// RetryAfter returns how long the destination asked the caller to wait
// before the next attempt (a 429 or 503 answer's Retry-After header), and
// whether it asked at all. [Backoff.Next] takes it into account.
func RetryAfter(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && e.After > 0 {
		return e.After, true
	}
	return 0, false
}

// maxExcerpt is the most bytes of a destination's answer kept in an Error.
const maxExcerpt = 200

// excerpt returns at most maxExcerpt bytes of b as valid UTF-8, surrounding
// space trimmed. Invalid bytes, and a rune cut by the limit, are dropped.
func excerpt(b []byte) string {
	if len(b) > maxExcerpt {
		b = b[:maxExcerpt]
	}
	return strings.ToValidUTF8(strings.TrimSpace(string(b)), "")
}
