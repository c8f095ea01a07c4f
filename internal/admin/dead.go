package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/insertfn/insertfn/internal/queue"
)

// Dead letter listing bounds.
const (
	// DefaultDeadLimit is how many dead letters a listing returns when
	// ?limit is not given.
	DefaultDeadLimit = 100
	// MaxDeadLimit is the most a listing returns at once.
	MaxDeadLimit = 1000
)

// DeadLetter is one dead letter of a destination.
type DeadLetter struct {
	// Seq names it to replay or drop.
	Seq uint64 `json:"seq"`
	// At is when it died.
	At time.Time `json:"at"`
	// Attempts is how many deliveries were tried, the last one included.
	Attempts int `json:"attempts"`
	// Reason is why it died.
	Reason string `json:"reason"`
	// Source is the source the event came in through.
	Source string `json:"source,omitempty"`
	// Event is the event (a JSON string of its bytes if it is not JSON).
	Event json.RawMessage `json:"event"`
}

// DeadList is the answer of GET /admin/dead/{destination}.
type DeadList struct {
	Destination string       `json:"destination"`
	Items       []DeadLetter `json:"items"`
	// Next is the ?after of the next page; 0 when this page is the last.
	Next uint64 `json:"next,omitempty"`
}

// DeadSettled is the answer of replay and purge.
type DeadSettled struct {
	Destination string `json:"destination"`
	// Count is how many dead letters were replayed or dropped.
	Count int `json:"count"`
}

// deadTopic returns the queue and topic of {destination}, or answers.
func (a *Admin) deadTopic(w http.ResponseWriter, r *http.Request) (queue.Queue, queue.Topic, string, bool) {
	if a.deps.Queue == nil {
		writeError(w, http.StatusNotImplemented, "no queue is configured")
		return nil, "", "", false
	}
	dest := r.PathValue("destination")
	if !a.dests[dest] {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no destination %q", dest))
		return nil, "", "", false
	}
	return a.deps.Queue, queue.DestinationTopic(dest), dest, true
}

// queueStatus maps a queue error to a status.
func queueStatus(err error) int {
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, queue.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// GET /admin/dead/{destination}[?after=SEQ][&limit=N]: the dead letters
// in order, a page at a time.
func (a *Admin) listDead(w http.ResponseWriter, r *http.Request) {
	q, topic, dest, ok := a.deadTopic(w, r)
	if !ok {
		return
	}
	var after uint64
	limit := DefaultDeadLimit
	if s := r.URL.Query().Get("after"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("after %q: want a sequence number", s))
			return
		}
		after = v
	}
	if s := r.URL.Query().Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > MaxDeadLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want 1 to %d", s, MaxDeadLimit))
			return
		}
		limit = v
	}
	page, err := q.ListDead(queue.DeadQuery{Topic: topic, After: after, Limit: limit})
	out := DeadList{Destination: dest, Items: []DeadLetter{}, Next: page.Next}
	if errors.Is(err, queue.ErrNotFound) {
		writeJSON(w, http.StatusOK, out) // nothing queued for it yet
		return
	}
	if err != nil {
		a.fail(w, r, queueStatus(err), err)
		return
	}
	for _, d := range page.Letters {
		out.Items = append(out.Items, DeadLetter{Seq: d.Seq, At: d.At.UTC(), Attempts: d.Tries, Reason: d.Reason,
			Source: d.Source, Event: rawOrString(d.Events[0])})
	}
	writeJSON(w, http.StatusOK, out)
}

// rawOrString returns b as a JSON value: itself when valid JSON, else a
// JSON string of it.
func rawOrString(b []byte) json.RawMessage {
	if json.Valid(b) {
		return compactJSON(b)
	}
	s, _ := json.Marshal(string(b))
	return s
}

// seqsOf reads the dead letters a replay or purge names: ?seq=N (repeated)
// or a body {"seqs": [N, ...]}; none means all.
func seqsOf(w http.ResponseWriter, r *http.Request) ([]uint64, bool) {
	var seqs []uint64
	for _, s := range r.URL.Query()["seq"] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("seq %q: want a sequence number", s))
			return nil, false
		}
		seqs = append(seqs, v)
	}
	body, status, err := readBody(w, r, MaxBodyBytes)
	if err != nil {
		writeError(w, status, err.Error())
		return nil, false
	}
	if body = bytes.TrimSpace(body); len(body) > 0 {
		var req struct {
			Seqs []uint64 `json:"seqs"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("body: %v (want {\"seqs\": [N, ...]})", err))
			return nil, false
		}
		seqs = append(seqs, req.Seqs...)
	}
	return seqs, true
}

// POST /admin/dead/{destination}/replay[?seq=N...]: puts dead letters
// back in the destination's queue (all of them when none is named).
func (a *Admin) replayDead(w http.ResponseWriter, r *http.Request) {
	a.settleDead(w, r, true)
}

// DELETE /admin/dead/{destination}[?seq=N...]: drops dead letters (all of
// them when none is named).
func (a *Admin) purgeDead(w http.ResponseWriter, r *http.Request) {
	a.settleDead(w, r, false)
}

func (a *Admin) settleDead(w http.ResponseWriter, r *http.Request, replay bool) {
	q, topic, dest, ok := a.deadTopic(w, r)
	if !ok {
		return
	}
	seqs, ok := seqsOf(w, r)
	if !ok {
		return
	}
	var n int
	var err error
	if replay {
		n, err = q.Replay(r.Context(), topic, seqs...)
	} else {
		n, err = q.DropDead(r.Context(), topic, seqs...)
	}
	if errors.Is(err, queue.ErrNotFound) && len(seqs) == 0 {
		err = nil // the topic does not exist yet: there was nothing
	}
	if err != nil {
		a.fail(w, r, queueStatus(err), err)
		return
	}
	out := DeadSettled{Destination: dest, Count: n}
	if replay {
		a.log.Info("admin: dead letters replayed", "destination", dest, "count", n)
	} else {
		a.log.Info("admin: dead letters dropped", "destination", dest, "count", n)
	}
	writeJSON(w, http.StatusOK, out)
}
