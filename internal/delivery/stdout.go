package delivery

import (
	"context"
	"io"
	"os"
	"sync"
)

// Stdout is a [Sink] that writes events as NDJSON (one JSON object per
// line) to an io.Writer, os.Stdout by default. Each Deliver writes its
// events with one Write call under a mutex, so concurrent Deliver calls
// never interleave lines. It is meant for development and for piping into
// another program; it does not sync, and "delivered" means "written to the
// writer".
type Stdout struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

// NewStdout returns a Stdout sink writing to w, or to os.Stdout when w is
// nil. The sink does not close w.
func NewStdout(w io.Writer) *Stdout {
	if w == nil {
		w = os.Stdout
	}
	return &Stdout{w: w}
}

// Deliver writes events, one per line. It does not keep events. An event
// that is not a JSON object is a permanent *Error and nothing is written;
// a failed write is retryable (a retry may write some lines twice).
func (s *Stdout) Deliver(ctx context.Context, events [][]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	buf := getScratch()
	defer putScratch(buf)
	var err error
	if buf.b, err = appendNDJSON(buf.b[:0], events, "stdout"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, err := s.w.Write(buf.b); err != nil {
		return &Error{Sink: "stdout", Op: "write", Err: err}
	}
	return nil
}

// Close marks the sink closed; later Deliver calls return [ErrClosed]. It
// does not close the writer.
func (s *Stdout) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}
