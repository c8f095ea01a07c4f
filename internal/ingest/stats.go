package ingest

import "sync/atomic"

// Stats is a snapshot of a server's counters, for metrics. Counters only
// grow; each counts since [New].
type Stats struct {
	// Requests is every HTTP request answered, including refused ones.
	Requests uint64
	// Events is every event received in a request that passed
	// authentication and parsing: valid, invalid or duplicate, accepted or
	// not.
	Events uint64
	// Accepted is the events handed to the Accepter that it took.
	Accepted uint64
	// Duplicates is the events answered 200 but not handed to the
	// Accepter because their messageId was seen (see [Config.DedupeWindow]).
	Duplicates uint64
	// Preflights is the CORS preflight (OPTIONS) requests answered.
	Preflights uint64
	// ClientMetrics is the reports of a client library's own metrics
	// (analytics.js's /v1/m), answered 200 and not kept.
	ClientMetrics uint64
	// Cleaned is the requests whose body repeated a member name in some
	// object or held bytes that are not UTF-8: their events were stored
	// with the first member of each name and U+FFFD for such bytes, so
	// that destinations read what insertfn judged.
	Cleaned uint64
	// Rejected counts refusals by reason.
	Rejected Rejections
}

// Rejections counts refused requests by reason, and refused events.
type Rejections struct {
	// NotFound: requests for a path that is not an endpoint (404).
	NotFound uint64
	// MethodNotAllowed: requests with a method other than POST (405).
	MethodNotAllowed uint64
	// Unauthorized: requests with a missing, malformed or unknown write key (401).
	Unauthorized uint64
	// Malformed: requests refused for their body or encoding: not JSON,
	// not an object, no batch array, bad gzip, unsupported encoding, bad
	// batch-level fields, unparsable HTTP (400, 415).
	Malformed uint64
	// TooLarge: requests over a size or count limit (413).
	TooLarge uint64
	// InvalidEvents: events refused by validation, whether or not the
	// rest of their batch was accepted (each also counted in Events).
	InvalidEvents uint64
	// Backpressure: requests answered 429 because the Accepter reported
	// [ErrBackpressure], or 503 because shutdown gave up on them.
	Backpressure uint64
	// StoreFailed: requests answered 500 because the Accepter failed.
	StoreFailed uint64
	// ForbiddenOrigin: browser requests (and preflights) from an origin
	// their source does not accept (403; see [Source.AllowedOrigins]).
	ForbiddenOrigin uint64
}

// counters are the live, atomic form of Stats.
type counters struct {
	requests, events, accepted, duplicates, cleaned atomic.Uint64
	preflights, clientMetrics, forbiddenOrigin      atomic.Uint64

	notFound, methodNotAllowed, unauthorized, malformed, tooLarge atomic.Uint64
	invalidEvents, backpressure, storeFailed                      atomic.Uint64
}

// Stats returns a snapshot of the server's counters. The fields are read
// one by one, so a snapshot taken under load may be mid-request.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Requests:      c.requests.Load(),
		Events:        c.events.Load(),
		Accepted:      c.accepted.Load(),
		Duplicates:    c.duplicates.Load(),
		Cleaned:       c.cleaned.Load(),
		Preflights:    c.preflights.Load(),
		ClientMetrics: c.clientMetrics.Load(),
		Rejected: Rejections{
			NotFound:         c.notFound.Load(),
			MethodNotAllowed: c.methodNotAllowed.Load(),
			Unauthorized:     c.unauthorized.Load(),
			Malformed:        c.malformed.Load(),
			TooLarge:         c.tooLarge.Load(),
			InvalidEvents:    c.invalidEvents.Load(),
			Backpressure:     c.backpressure.Load(),
			StoreFailed:      c.storeFailed.Load(),
			ForbiddenOrigin:  c.forbiddenOrigin.Load(),
		},
	}
}
