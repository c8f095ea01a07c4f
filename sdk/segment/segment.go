// Package segment is Segment's vocabulary as insertfn speaks it, in one
// place for every side: the event types, the names of the consent
// preference events, the date-time forms a timestamp may take, and the
// order of the first members of an event as the ingest stores it (which
// the host's type lookup relies on).
//
// The ingest (which writes events), the consent store and the pipeline
// (which read names and times) and the host half of the ABI (which reads
// the type) all import it, so that they cannot drift apart. It depends on
// the standard library and [abi] only, and builds for every target the
// SDK does (wasip1 included).
package segment

import "github.com/insertfn/insertfn/sdk/abi"

// EventType is the type of a Segment event: the ABI's [abi.EventType],
// whose numbers the host passes to a function.
type EventType = abi.EventType

// The event types, as the ABI numbers them. [Other] is any type not listed
// (the zero value).
const (
	Other    = abi.EventOther
	Track    = abi.EventTrack
	Identify = abi.EventIdentify
	Page     = abi.EventPage
	Screen   = abi.EventScreen
	Group    = abi.EventGroup
	Alias    = abi.EventAlias
	// Delete is a user deletion request as Segment hands it to
	// functions; no tracking API call makes one (see [IsCall]).
	Delete = abi.EventDelete
)

// ParseType returns the type an event's "type" value names: [Other] for
// any other string. Names are case-sensitive ("Track" is Other).
func ParseType(s string) EventType { return abi.ParseEventType(s) }

// IsCall reports whether t is the type of a call of Segment's HTTP
// tracking API (track, identify, page, screen, group, alias): the types a
// client may send and the ingest accepts.
func IsCall(t EventType) bool {
	switch t {
	case Track, Identify, Page, Screen, Group, Alias:
		return true
	}
	return false
}

// ParseCall returns the call type s names, or [Other] when s names no
// call of the tracking API ([Delete] included: clients do not send it).
func ParseCall(s string) EventType {
	if t := ParseType(s); IsCall(t) {
		return t
	}
	return Other
}

// Names of the track events that carry a person's new consent
// preferences (in context.consent.categoryPreferences). The
// consent-record contract's seed calls the event "Segment Consent
// Preference"; Segment's own consent wrappers send "Segment Consent
// Preference Updated". Both are consent updates.
const (
	ConsentPreference        = "Segment Consent Preference"
	ConsentPreferenceUpdated = "Segment Consent Preference Updated"
)

// IsConsentPreference reports whether a track event named name (its
// "event" member) is a consent preference event: [ConsentPreference] or
// [ConsentPreferenceUpdated], spelled exactly.
func IsConsentPreference(name string) bool {
	return name == ConsentPreference || name == ConsentPreferenceUpdated
}
