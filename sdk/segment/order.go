package segment

import "unsafe"

// Names of the members of a Segment event that insertfn reads on every
// event, and of context's consent member.
const (
	MemberType         = "type"
	MemberEvent        = "event"
	MemberUserID       = "userId"
	MemberAnonymousID  = "anonymousId"
	MemberMessageID    = "messageId"
	MemberIntegrations = "integrations"
	MemberContext      = "context"
	// MemberConsent is the member of context that holds the consent
	// (context.consent.categoryPreferences).
	MemberConsent = "consent"
	// MemberReceivedAt is when the server received the event; the ingest
	// writes it last ([TrailingReceivedAt]).
	MemberReceivedAt = "receivedAt"
)

// receivedAtTail is how every event the ingest stores ends: its
// receivedAt, in [TimeLayout], then the closing brace.
const receivedAtTail = `,"` + MemberReceivedAt + `":"` + TimeExample + `"}`

// TrailingReceivedAt reads the receivedAt of an event that ends with it,
// as the ingest writes every event (its last member, in [TimeLayout]),
// without parsing JSON. The string is a view of event, valid while event
// is. ok is false for an event that does not end so: the caller then
// reads the member with a JSON lookup.
func TrailingReceivedAt(event []byte) (receivedAt string, ok bool) {
	n := len(event) - len(receivedAtTail)
	if n < 0 || string(event[n:n+len(`,"`+MemberReceivedAt+`":"`)]) != `,"`+MemberReceivedAt+`":"` || string(event[len(event)-2:]) != `"}` {
		return "", false
	}
	v := event[n+len(`,"`+MemberReceivedAt+`":"`) : len(event)-2]
	for _, c := range v {
		if c == '"' || c == '\\' {
			return "", false
		}
	}
	return unsafe.String(&v[0], len(v)), true // a view of event
}

// TypePrefix is how every event the ingest stores begins: its type member,
// up to the type's name.
const TypePrefix = `{"` + MemberType + `":"`

// ContextLeadingMember is the member the ingest writes first in an event's
// context.
const ContextLeadingMember = MemberConsent

// LeadingMembers returns the names of the members the ingest writes first,
// in the order it writes them; the slice is new on every call. They are
// part of the stored order of an event's members, a contract between the
// ingest, which writes every event it accepts so, and its readers:
//
//   - an event begins with its type: [TypePrefix], then the type's name.
//     The host reads the type there without a JSON lookup
//     ([LeadingType]); an event that does not begin so (one a function
//     replaced, or from a test) is read with a lookup instead, so the order
//     is a matter of speed, never of correctness;
//   - the members listed here come first, in that order, each
//     one only when the event has it (the ingest always writes type and
//     messageId). The consent lookup's ids, the check for a consent
//     preference event, the integrations and the consent are then found
//     without scanning past properties, traits or the rest of the context;
//   - context's first member is [MemberConsent], when it has one.
//
// The ingest's tests check every event it writes against this contract,
// and the host's tests read events written in this order.
func LeadingMembers() []string {
	return []string{MemberType, MemberEvent, MemberUserID, MemberAnonymousID, MemberMessageID, MemberIntegrations, MemberContext}
}

// LeadingType reads the type of an event that begins with [TypePrefix]
// and a known type's name, as the ingest writes every event, without
// parsing JSON.
//
// # Results
//
// The type and true when the event begins with a known type's name, its
// closing quote unescaped, followed by ',' or '}'; else false, and the
// caller must read the "type" member with a JSON lookup (a type spelled
// with an escape, another type, other white space or another first
// member).
func LeadingType(event []byte) (EventType, bool) {
	// The known types differ in their first letter; each case compares a
	// constant, which the compiler does inline (a comparison of variable
	// length calls memequal and costs ten times more).
	//
	// The longest known type, its closing quote and what follows.
	if len(event) < len(TypePrefix)+len(`identify",`) || string(event[:len(TypePrefix)]) != TypePrefix {
		return Other, false
	}
	rest := event[len(TypePrefix):]
	var t EventType
	var n int // the length of the type and its closing quote
	switch {
	case string(rest[:6]) == `track"`:
		t, n = Track, 6
	case string(rest[:9]) == `identify"`:
		t, n = Identify, 9
	case string(rest[:5]) == `page"`:
		t, n = Page, 5
	case string(rest[:7]) == `screen"`:
		t, n = Screen, 7
	case string(rest[:6]) == `group"`:
		t, n = Group, 6
	case string(rest[:6]) == `alias"`:
		t, n = Alias, 6
	case string(rest[:7]) == `delete"`:
		t, n = Delete, 7
	default: // another type, or an escape
		return Other, false
	}
	if rest[n] != ',' && rest[n] != '}' {
		return Other, false
	}
	return t, true
}
