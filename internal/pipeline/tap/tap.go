// Package tap is the live event debugger's source: what became of events
// as they pass, one [Record] per event and stage, for the watchers that
// subscribe (insertfn tail, the admin page) and for a short history of
// the last events.
//
// A watcher must never slow a busy server down, so the tap is built
// around what it refuses to do:
//
//   - the pipeline asks [Tap.Want] before it builds a record, with what it
//     knows for free (the source and the event's type) and the event (whose
//     ids are read only for a watcher of one user); a record is built
//     only when a watcher's filter may match it and the watcher's rate
//     (records per second, [Filter.Rate]) has room, or when the history's
//     own rate ([HistoryRate]) has. Want reserves the record's place in
//     those rates (a [Ticket]), so that a batch of many events builds no
//     more records than the rates let through. A watcher that filters on
//     a fate, which only the record tells, reserves from a build budget of
//     [FateBudget] records a second instead, and its own rate applies when
//     the record is published;
//   - [Tap.Publish] never blocks: each watcher has a bounded buffer
//     ([Buffer] records), and what does not fit is counted as missed
//     ([Subscription.Missed]) rather than waited for;
//   - events are sampled per watcher ([Filter.Sample]: one in N of those
//     that match).
//
// With no watcher, the cost per event is one call of Want that the
// history's rate turns down: a few atomic loads.
package tap

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/sdk/segment"
)

// Stage says which part of an event's path a [Record] is about.
type Stage string

// Stages.
const (
	// StagePipeline: the consent update, the source's functions and the
	// routing to each destination (with each destination's functions).
	StagePipeline Stage = "pipeline"
	// StageDelivery: one delivery attempt at one destination.
	StageDelivery Stage = "delivery"
)

// Fate is what became of an event, in a [Record] or at one destination
// ([DestinationFate]).
type Fate string

// Fates of a record.
const (
	// Dropped: a source function dropped the event (Function and Reason
	// say which and why); no destination receives it.
	Dropped Fate = "dropped"
	// Routed: at least one destination will receive the event (it is in
	// that destination's backlog).
	Routed Fate = "routed"
	// Filtered: no destination receives the event: each was filtered by
	// consent or by the integrations object, or dropped by its own
	// functions.
	Filtered Fate = "filtered"
	// Delivered: a destination has the event (StageDelivery).
	Delivered Fate = "delivered"
	// Retried: a delivery failed and will be tried again (StageDelivery).
	Retried Fate = "retried"
	// Failed: a delivery failed for good; the event is in the
	// destination's dead letters (StageDelivery).
	Failed Fate = "failed"
)

// Fates at one destination of a StagePipeline record (and Dropped).
const (
	// Queued: the event is in the destination's backlog, to be delivered.
	Queued Fate = "queued"
	// FilteredConsent: the person did not consent to every category the
	// destination is mapped to (Categories lists those not granted).
	FilteredConsent Fate = "filtered_consent"
	// FilteredIntegrations: the event's integrations object refused the
	// destination.
	FilteredIntegrations Fate = "filtered_integrations"
	// FilteredFilter: one of the destination's filters (Filter names it)
	// dropped the event.
	FilteredFilter Fate = "filtered_filter"
)

// What a consent preference event did to the consent store
// (Record.ConsentUpdate).
const (
	// ConsentApplied: the store holds the event's choice (merged by each
	// decision's time, as every update is).
	ConsentApplied = "applied"
	// ConsentRejected: the event's consent was too malformed to apply;
	// the event still flows.
	ConsentRejected = "rejected: malformed"
)

// fates are the values [Filter.Fate] accepts.
var fates = []Fate{Dropped, Routed, Filtered, Delivered, Retried, Failed, Queued, FilteredConsent, FilteredIntegrations, FilteredFilter}

// Record is what became of one event at one stage.
type Record struct {
	Time        time.Time `json:"time"`
	Stage       Stage     `json:"stage"`
	Source      string    `json:"source"`
	Type        string    `json:"type"`
	Event       string    `json:"event,omitempty"` // a track's event name, a page's or screen's name
	UserID      string    `json:"userId,omitempty"`
	AnonymousID string    `json:"anonymousId,omitempty"`
	MessageID   string    `json:"messageId,omitempty"`
	Fate        Fate      `json:"fate"`
	// Function and Reason: the source function that dropped the event and
	// its reason (its DropEvent reason, or its error kind when it failed).
	Function string `json:"function,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// ConsentUpdate says what a consent preference event did to the
	// consent store: ConsentApplied or ConsentRejected.
	ConsentUpdate string `json:"consent_update,omitempty"`
	// Destinations holds each destination's fate (StagePipeline, when not
	// Dropped), in the configuration's order.
	Destinations []DestinationFate `json:"destinations,omitempty"`
	// Destination, Attempt and Error describe a delivery (StageDelivery):
	// where, which attempt (1 is the first) and why it failed.
	Destination string `json:"destination,omitempty"`
	Attempt     int    `json:"attempt,omitempty"`
	Error       string `json:"error,omitempty"`
	// Payload is the event as the stage received it (the pipeline: as
	// accepted; a delivery: as the destination's functions left it),
	// when the record was built for a watcher that asked for it or for
	// the history, and it is at most [MaxPayload] bytes. PayloadBytes is
	// its size when it was left out for being larger.
	Payload      json.RawMessage `json:"payload,omitempty"`
	PayloadBytes int             `json:"payload_omitted_bytes,omitempty"`

	// Ticket is what [Tap.Want] reserved for the record: who takes it
	// when it is published.
	Ticket Ticket `json:"-"`
}

// Ticket is what [Tap.Want] reserved for one record: the history's place
// and the watchers' places in their rates.
type Ticket struct {
	takers uint64 // a bit per watcher slot, and historyBit
	full   bool
}

// historyBit is a [Ticket]'s bit for the history.
const historyBit = 1 << 63

// OK reports whether anyone takes the record: build it only then.
func (k Ticket) OK() bool { return k.takers != 0 }

// Full reports whether a taker wants the event itself (Record.Payload).
func (k Ticket) Full() bool { return k.full }

// DestinationFate is what the pipeline did with an event for one
// destination.
type DestinationFate struct {
	Name string `json:"name"`
	Fate Fate   `json:"fate"` // Queued, FilteredConsent, FilteredIntegrations, FilteredFilter or Dropped
	// Categories are the destination's consent categories the event's
	// consent did not grant (FilteredConsent).
	Categories []string `json:"categories,omitempty"`
	// Filter is the destination filter that dropped the event
	// (FilteredFilter).
	Filter string `json:"filter,omitempty"`
	// Function and Reason: the destination function that dropped the
	// event, and why (Dropped).
	Function string `json:"function,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// User reports whether id is the record's userId or anonymousId.
func (r *Record) User(id string) bool { return id == r.UserID || id == r.AnonymousID }

// HasFate reports whether the record is about f: its own fate, or, for
// Dropped, Queued, FilteredConsent and FilteredIntegrations, a
// destination's (Filtered also matches a destination filtered either
// way).
func (r *Record) HasFate(f Fate) bool {
	if r.Fate == f {
		return true
	}
	for _, d := range r.Destinations {
		if d.Fate == f || (f == Filtered && (d.Fate == FilteredConsent || d.Fate == FilteredIntegrations || d.Fate == FilteredFilter)) {
			return true
		}
	}
	return false
}

// Limits.
const (
	// DefaultRate is a watcher's rate when its filter gives none: more
	// records a second than a person reads.
	DefaultRate = 100
	// MaxRate bounds a watcher's rate: a watcher at MaxRate, with the
	// events themselves, costs a busy server a few percent of its
	// throughput (BenchmarkServeBatchWatched).
	MaxRate = 2000
	// FateBudget is how many records a second may be built for a watcher
	// that filters on a fate, to find those that match.
	FateBudget = 2000
	// Buffer is how many records wait for a watcher that is behind; more
	// are missed.
	Buffer = 1024
	// HistorySize is how many recent records the tap keeps.
	HistorySize = 256
	// HistoryRate is the most records a second the history takes.
	HistoryRate = 20
	// MaxPayload is the largest payload a record carries.
	MaxPayload = 32 << 10
	// MaxWatchers bounds the subscriptions open at once.
	MaxWatchers = 63
)

// Filter says which records a watcher wants. The zero value wants every
// record, at DefaultRate, without payloads.
type Filter struct {
	// Source, Type, User (a userId or anonymousId) and Fate (see
	// [Record.HasFate]): empty matches any.
	Source string
	Type   string
	User   string
	Fate   Fate
	// Full asks for the events themselves (Record.Payload).
	Full bool
	// Rate is the most records a second the watcher gets (0: DefaultRate,
	// at most MaxRate).
	Rate int
	// Sample takes one in Sample of the records that match (0 or 1: all).
	Sample int
}

// Validate reports what is wrong with f, naming the field.
func (f Filter) Validate() error {
	if f.Type != "" && segment.ParseType(f.Type) == segment.Other {
		return fmt.Errorf("type %q: want track, identify, page, screen, group, alias or delete", f.Type)
	}
	if f.Fate != "" && !slices.Contains(fates, f.Fate) {
		return fmt.Errorf("fate %q: want one of %v", f.Fate, fates)
	}
	if f.Rate < 0 || f.Rate > MaxRate {
		return fmt.Errorf("rate %d: want 1 to %d records a second (0: %d)", f.Rate, MaxRate, DefaultRate)
	}
	if f.Sample < 0 {
		return fmt.Errorf("sample %d: want 1 in N, N at least 1", f.Sample)
	}
	return nil
}

// early reports whether f may match an event of source and typ: the
// part of the filter the pipeline can answer before building a record.
func (f *Filter) early(source, typ string) bool {
	return (f.Source == "" || f.Source == source) && (f.Type == "" || f.Type == typ)
}

// eventIDs reads an event's userId and anonymousId once, when a watcher
// of one user asks.
type eventIDs struct {
	event      []byte
	read       bool
	user, anon string // views of event: not kept past Want
}

func (e *eventIDs) has(id string) bool {
	if !e.read {
		js := unsafe.String(unsafe.SliceData(e.event), len(e.event))
		e.user, e.anon = gjson.Get(js, segment.MemberUserID).Str, gjson.Get(js, segment.MemberAnonymousID).Str
		e.read = true
	}
	return id == e.user || id == e.anon
}

// Match reports whether r is a record f wants.
func (f *Filter) Match(r *Record) bool {
	return f.early(r.Source, r.Type) && (f.User == "" || r.User(f.User)) && (f.Fate == "" || r.HasFate(f.Fate))
}

// limiter lets at most rate events through per second of the clock.
type limiter struct {
	rate   int64
	second atomic.Int64 // the unix second count is for
	count  atomic.Int64
}

// room reports whether the limiter would let one more through at now.
func (l *limiter) room(now int64) bool {
	return l.second.Load() != now || l.count.Load() < l.rate
}

// take lets one through at now if there is room.
func (l *limiter) take(now int64) bool {
	if s := l.second.Load(); s != now {
		if l.second.CompareAndSwap(s, now) {
			l.count.Store(0)
		}
	}
	return l.count.Add(1) <= l.rate
}

// Subscription is one watcher's stream of records.
type Subscription struct {
	tap    *Tap
	filter Filter
	slot   uint // its bit in a Ticket
	late   bool // it filters on what only a record tells: a fate
	ch     chan *Record
	limit  limiter // the watcher's rate
	// build is a late watcher's budget of records built for it: it
	// cannot know which match before they are built.
	build   limiter
	matched atomic.Uint64 // records that matched, for sampling
	missed  atomic.Uint64
	closed  atomic.Bool
}

// Records returns the channel the watcher's records arrive on. It is
// never closed: stop reading when done, and call Close.
func (s *Subscription) Records() <-chan *Record { return s.ch }

// Missed returns how many records were left out since the last call
// because the watcher was behind (its buffer full), and starts counting
// again.
func (s *Subscription) Missed() uint64 { return s.missed.Swap(0) }

// Filter returns the subscription's filter.
func (s *Subscription) Filter() Filter { return s.filter }

// Close ends the subscription: no more records are sent to it.
func (s *Subscription) Close() {
	if s.closed.Swap(true) {
		return
	}
	s.tap.mu.Lock()
	defer s.tap.mu.Unlock()
	subs := slices.DeleteFunc(slices.Clone(*s.tap.subs.Load()), func(x *Subscription) bool { return x == s })
	s.tap.subs.Store(&subs)
	s.tap.slots &^= 1 << s.slot
}

// sampled reports whether the next record that matches is one of the
// one in Sample the watcher takes.
func (s *Subscription) sampled() bool {
	n := s.filter.Sample
	return n <= 1 || (s.matched.Add(1)-1)%uint64(n) == 0
}

// reserve reports whether the watcher takes a record of an event of
// source and typ at now, and reserves its place if so.
func (s *Subscription) reserve(now int64, source, typ string, ids *eventIDs) bool {
	if !s.filter.early(source, typ) {
		return false
	}
	if s.filter.User != "" && (!s.limit.room(now) || !ids.has(s.filter.User)) {
		return false
	}
	if s.late {
		return s.build.room(now) && s.build.take(now)
	}
	return s.limit.room(now) && s.sampled() && s.limit.take(now)
}

// offer sends r, which the watcher reserved, if it is one the watcher
// wants.
func (s *Subscription) offer(r *Record, now int64) {
	if s.late && !(s.filter.Match(r) && s.sampled() && s.limit.take(now)) {
		return
	}
	select {
	case s.ch <- r:
	default:
		s.missed.Add(1)
	}
}

// Tap hands records to watchers and keeps the last ones. The zero value
// is not usable: call [New]. It is safe for concurrent use.
type Tap struct {
	mu    sync.Mutex                      // serializes changes of subs, slots and the history
	subs  atomic.Pointer[[]*Subscription] // copy on write: Want and Publish read it without a lock
	slots uint64                          // the watcher slots taken

	history      [HistorySize]*Record // a ring; next is where the next goes
	next, stored int
	historyLimit limiter
	now          func() time.Time
}

// New returns a tap with no watchers and an empty history.
func New() *Tap {
	t := &Tap{now: time.Now}
	t.historyLimit.rate = HistoryRate
	t.subs.Store(new([]*Subscription))
	return t
}

// Subscribe adds a watcher with filter f.
//
// # Results
//   - the subscription: read Records, call Close when done;
//   - an error naming what is wrong with f.
func (t *Tap) Subscribe(f Filter) (*Subscription, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("tap: %w", err)
	}
	if f.Rate == 0 {
		f.Rate = DefaultRate
	}
	s := &Subscription{tap: t, filter: f, ch: make(chan *Record, Buffer), late: f.Fate != ""}
	s.limit.rate, s.build.rate = int64(f.Rate), FateBudget
	t.mu.Lock()
	defer t.mu.Unlock()
	free := ^t.slots &^ historyBit
	if free == 0 {
		return nil, fmt.Errorf("tap: %w", ErrTooManyWatchers)
	}
	s.slot = uint(bits.TrailingZeros64(free))
	t.slots |= 1 << s.slot
	subs := append(slices.Clone(*t.subs.Load()), s)
	t.subs.Store(&subs)
	return s, nil
}

// Watchers returns how many subscriptions are open.
func (t *Tap) Watchers() int { return len(*t.subs.Load()) }

// ErrTooManyWatchers is returned by Subscribe when MaxWatchers are open.
var ErrTooManyWatchers = fmt.Errorf("%d watchers are open, the most there may be: end one and try again", MaxWatchers)

// Want reserves, for a record about event, of source and typ (its type's
// name), at now (a unix second), a place in the history's rate and in the
// rate of each watcher whose filter may match. The pipeline builds the
// record only when the ticket is OK (with the payload when it is Full),
// sets it as the record's Ticket, and publishes it. Want reads the
// event's ids only for a watcher of one user whose rate has room, and
// keeps nothing. A nil tap wants nothing.
func (t *Tap) Want(now int64, source, typ string, event []byte) Ticket {
	if t == nil {
		return Ticket{}
	}
	ids := eventIDs{event: event}
	return t.want(now, source, typ, &ids)
}

// want is Want with the event's ids read lazily from ids.
func (t *Tap) want(now int64, source, typ string, ids *eventIDs) Ticket {
	var k Ticket
	if t.historyLimit.room(now) && t.historyLimit.take(now) {
		k.takers, k.full = historyBit, true
	}
	for _, s := range *t.subs.Load() {
		if s.reserve(now, source, typ, ids) {
			k.takers |= 1 << s.slot
			k.full = k.full || s.filter.Full
		}
	}
	return k
}

// Publish hands r to the history and the watchers its Ticket names (a
// watcher that filters on a user or a fate takes it only if it matches).
// It never blocks; r must not change afterwards (it is shared).
func (t *Tap) Publish(r *Record) {
	now := r.Time.Unix()
	if r.Ticket.takers&historyBit != 0 {
		t.mu.Lock()
		t.history[t.next] = r
		t.next = (t.next + 1) % HistorySize
		t.stored = min(t.stored+1, HistorySize)
		t.mu.Unlock()
	}
	for _, s := range *t.subs.Load() {
		if r.Ticket.takers&(1<<s.slot) != 0 {
			s.offer(r, now)
		}
	}
}

// Offer publishes r, a record already built, to those of the history and
// the watchers that take it now (as Want would reserve for it): for
// producers that have the record before they ask, such as tests.
func (t *Tap) Offer(r *Record) {
	ids := eventIDs{read: true, user: r.UserID, anon: r.AnonymousID}
	if r.Ticket = t.want(r.Time.Unix(), r.Source, r.Type, &ids); r.Ticket.OK() {
		t.Publish(r)
	}
}

// Recent returns up to n of the last records the history kept that f
// matches (its rate and sample aside), oldest first.
func (t *Tap) Recent(f Filter, n int) []*Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*Record
	for i := range t.stored {
		if len(out) == n {
			break
		}
		r := t.history[(t.next-1-i+HistorySize)%HistorySize]
		if f.Match(r) {
			out = append(out, r)
		}
	}
	slices.Reverse(out)
	return out
}

// eventMembers are the members ReadEvent reads, in one pass.
var eventMembers = []string{segment.MemberType, segment.MemberEvent, "name", segment.MemberUserID, segment.MemberAnonymousID, segment.MemberMessageID}

// ReadEvent fills r's Type, Event, UserID, AnonymousID and MessageID from
// event (Event is a track's event name, or a page's or screen's name), and
// Payload with a copy of event when payload is true and event is at most
// MaxPayload bytes (else PayloadBytes with its size). Ids that are not
// strings are left empty: the ingest stores every id as a string.
func (r *Record) ReadEvent(event []byte, payload bool) {
	v := gjson.GetManyBytes(event, eventMembers...)
	if r.Type == "" {
		r.Type = v[0].Str
	}
	r.Event = v[1].Str
	if r.Event == "" {
		r.Event = v[2].Str
	}
	r.UserID, r.AnonymousID, r.MessageID = v[3].Str, v[4].Str, v[5].Str
	switch {
	case !payload:
	case len(event) > MaxPayload:
		r.PayloadBytes = len(event)
	case !gjson.ValidBytes(event): // not JSON (a function's output): as a string
		r.Payload, _ = json.Marshal(string(event))
	default:
		r.Payload = slices.Clone(event)
	}
}
