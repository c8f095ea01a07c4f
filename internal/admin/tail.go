package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/insertfn/insertfn/internal/pipeline/tap"
)

// Limits of the tail streams (GET /admin/tail).
const (
	// MaxTailStreams is how many tail streams one handler serves at once;
	// one more is answered with 503.
	MaxTailStreams = 16
	// TailKeepAlive is how often a stream sends a comment when it has
	// nothing else to send, so that proxies and the client see it alive.
	TailKeepAlive = 15 * time.Second
	// TailWriteTimeout bounds each write to a stream: a client that stops
	// reading for that long loses its stream.
	TailWriteTimeout = 10 * time.Second
)

// tailBurst is how many records a stream writes before it flushes when
// they arrive faster than it writes.
const tailBurst = 64

// tailParams are the query parameters GET /admin/tail accepts.
var tailParams = []string{"source", "type", "user", "fate", "full", "rate", "sample", "n", "follow"}

// TailHandler returns the handler of GET /admin/tail: a live stream of
// what becomes of events, as Server-Sent Events, from t. Mount it behind
// the admin token ([Deps.Handlers]).
//
// The query chooses the records: source, type, user (a userId or
// anonymousId) and fate as [tap.Filter] reads them; full=1 for the events
// themselves; rate=N (records a second) and sample=N (one in N); n=N
// sends first up to N of the last records the tap kept (at most
// [tap.HistorySize]; default 0); follow=0 ends the answer after those.
// A bad parameter is answered with 400 and {"error": "..."} naming it;
// more than [MaxTailStreams] streams at once with 503.
//
// Each record is one event, "data: " and the JSON of the [tap.Record]
// (without its payload unless full=1). A comment (": keep-alive") comes
// every [TailKeepAlive]; "event: missed" with data {"missed": N} says N
// records were left out because the stream fell behind. The stream ends
// when the client goes, when a write fails or takes longer than
// [TailWriteTimeout], or when the server serving it ([Admin.Serve]) stops.
func TailHandler(t *tap.Tap) http.Handler {
	return &tailHandler{tap: t, slots: make(chan struct{}, MaxTailStreams), keepAlive: TailKeepAlive}
}

// tailHandler serves tail streams from one tap.
type tailHandler struct {
	tap       *tap.Tap
	slots     chan struct{} // one per open stream
	keepAlive time.Duration
}

// tailQuery is a parsed GET /admin/tail query.
type tailQuery struct {
	filter tap.Filter
	recent int
	follow bool
}

// parseTailQuery reads the query of r, naming the parameter that is wrong.
func parseTailQuery(r *http.Request) (tailQuery, error) {
	q := tailQuery{follow: true}
	v := r.URL.Query()
	for name := range v {
		known := false
		for _, p := range tailParams {
			known = known || name == p
		}
		if !known {
			return q, fmt.Errorf("unknown parameter %q: want %v", name, tailParams)
		}
	}
	q.filter = tap.Filter{Source: v.Get("source"), Type: v.Get("type"), User: v.Get("user"), Fate: tap.Fate(v.Get("fate"))}
	for _, b := range []struct {
		name string
		to   *bool
	}{{"full", &q.filter.Full}, {"follow", &q.follow}} {
		s := v.Get(b.name)
		if s == "" {
			continue
		}
		x, err := strconv.ParseBool(s)
		if err != nil {
			return q, fmt.Errorf("%s %q: want 0 or 1", b.name, s)
		}
		*b.to = x
	}
	for _, n := range []struct {
		name string
		to   *int
	}{{"rate", &q.filter.Rate}, {"sample", &q.filter.Sample}, {"n", &q.recent}} {
		s := v.Get(n.name)
		if s == "" {
			continue
		}
		x, err := strconv.Atoi(s)
		if err != nil {
			return q, fmt.Errorf("%s %q: want a whole number", n.name, s)
		}
		*n.to = x
	}
	if q.recent < 0 || q.recent > tap.HistorySize {
		return q, fmt.Errorf("n %d: want 0 to %d recent records", q.recent, tap.HistorySize)
	}
	if err := q.filter.Validate(); err != nil {
		return q, err
	}
	return q, nil
}

func (h *tailHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q, err := parseTailQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf(
			"%d tail streams are open, the most the server serves at once: end one (insertfn tail) and try again", cap(h.slots)))
		return
	}

	// Subscribe before reading the history, so that no record falls
	// between the two; one in both is sent once.
	var sub *tap.Subscription
	if q.follow {
		if sub, err = h.tap.Subscribe(q.filter); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		defer sub.Close()
	}
	recent := h.tap.Recent(q.filter, q.recent)

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // nginx: pass each event on as it comes
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	s := &tailStream{w: w, rc: http.NewResponseController(w), full: q.filter.Full}
	s.enc = json.NewEncoder(&s.buf)
	s.enc.SetEscapeHTML(false) // a payload's <, > and & as they are: the line stays within the client's limit
	for _, rec := range recent {
		s.record(rec)
	}
	if err := s.flush(); err != nil || !q.follow {
		return
	}

	sent := make(map[*tap.Record]bool, len(recent))
	for _, rec := range recent {
		sent[rec] = true
	}
	keepAlive := time.NewTicker(h.keepAlive)
	defer keepAlive.Stop()
	ctx, stop := r.Context(), stopping(r.Context())
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-keepAlive.C:
			s.buf.WriteString(": keep-alive\n\n")
		case rec := <-sub.Records():
			s.fresh(rec, sent)
		burst: // what else waits, up to tailBurst, in one flush
			for range tailBurst - 1 {
				select {
				case rec := <-sub.Records():
					s.fresh(rec, sent)
				default:
					break burst
				}
			}
		}
		if n := sub.Missed(); n > 0 {
			fmt.Fprintf(&s.buf, "event: missed\ndata: {\"missed\":%d}\n\n", n)
		}
		if err := s.flush(); err != nil {
			return
		}
	}
}

// tailStream writes one stream's events: buffered, then written and
// flushed with a deadline.
type tailStream struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	full bool
	buf  bytes.Buffer
	enc  *json.Encoder
}

// fresh adds rec unless it was sent from the history (sent, which forgets
// it then: a record comes once from the subscription).
func (s *tailStream) fresh(rec *tap.Record, sent map[*tap.Record]bool) {
	if sent[rec] {
		delete(sent, rec)
		return
	}
	s.record(rec)
}

// record adds rec as a data event, without its payload unless the stream
// asked for the events.
func (s *tailStream) record(rec *tap.Record) {
	r := *rec // shared with the tap and other streams: changed only in this copy
	if !s.full {
		r.Payload, r.PayloadBytes = nil, 0
	}
	mark := s.buf.Len()
	s.buf.WriteString("data: ")
	if err := s.enc.Encode(&r); err != nil { // Encode writes nothing then
		// A payload that is not JSON after all: the record without it.
		r.Payload, r.PayloadBytes = nil, len(rec.Payload)
		if s.enc.Encode(&r) != nil {
			s.buf.Truncate(mark)
			return
		}
	}
	s.buf.WriteByte('\n') // Encode ended the line; a blank line ends the event
}

// flush writes what is buffered, within TailWriteTimeout, and flushes it
// to the client.
func (s *tailStream) flush() error {
	if err := s.rc.SetWriteDeadline(time.Now().Add(TailWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if s.buf.Len() > 0 {
		_, err := s.w.Write(s.buf.Bytes())
		s.buf.Reset()
		if err != nil {
			return err
		}
	}
	return s.rc.Flush()
}
