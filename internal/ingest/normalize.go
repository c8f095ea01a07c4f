package ingest

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/insertfn/insertfn/sdk/segment"
)

// problem is why an event or a request is refused: the HTTP status and a
// message for the client. The zero value means no problem.
type problem struct {
	status int
	msg    string
}

func (p problem) ok() bool { return p.status == 0 }

// Event-level problems. The messages name the field and say what to send.
var (
	errNotObject      = problem{400, "the event is not a JSON object"}
	errMissingType    = problem{400, "missing type: each event in a batch needs a type (track, identify, page, screen, group or alias)"}
	errBadType        = problem{400, "type must be one of track, identify, page, screen, group, alias"}
	errMissingID      = problem{400, "missing userId or anonymousId: every call needs at least one of them"}
	errBadUserID      = problem{400, "userId must be a string or a number"}
	errBadAnonID      = problem{400, "anonymousId must be a string or a number"}
	errMissingEvent   = problem{400, "track needs event: the name of the action, a non-empty string"}
	errMissingPrevID  = problem{400, "alias needs previousId: the identity being aliased, a non-empty string or number"}
	errMissingGroupID = problem{400, "group needs groupId: a non-empty string or number"}
	errBadMessageID   = problem{400, "messageId must be a string"}
	errLongMessageID  = problem{400, "messageId is longer than 100 characters"}
	errBadContext     = problem{400, "context must be a JSON object"}
	errBadIntegration = problem{400, "integrations must be a JSON object"}
	errBadTimestamp   = problem{400, "timestamp (or originalTimestamp) must be an ISO 8601 date-time string such as " + segment.TimeExample}
	errBadSentAt      = problem{400, "sentAt must be an ISO 8601 date-time string such as " + segment.TimeExample}
	errEventTooLarge  = problem{413, "the event is larger than the server's per-event limit (max_event_bytes)"}
)

// shared is what a batch gives to each of its events: its top-level
// context, integrations and sentAt (zero Results when absent). For a
// single call it is empty.
type shared struct {
	context      gjson.Result
	integrations gjson.Result
	sentAt       gjson.Result
	// contextMembers are context's members, as scanBody indexed them.
	contextMembers []indexedMember
}

// present reports whether r holds a value other than JSON null.
func present(r gjson.Result) bool { return r.Type != gjson.Null }

// isID reports whether r is a usable identifier: a non-empty string or a
// number.
func isID(r gjson.Result) bool {
	return (r.Type == gjson.String && r.Str != "") || r.Type == gjson.Number
}

// idType reports whether r may stand where an identifier goes: absent,
// null, a string (maybe empty) or a number.
func idType(r gjson.Result) bool {
	return r.Type == gjson.Null || r.Type == gjson.String || r.Type == gjson.Number
}

// fields are the members of an event that the server reads. No object
// repeats a member name by the time normalize reads it (scanBody and
// cleanBody see to that, at every depth).
type fields struct {
	typ, messageID, timestamp, origTimestamp, sentAt gjson.Result
	context, integrations                            gjson.Result
	userID, anonymousID, event, previousID, groupID  gjson.Result
	// previousAt and groupAt index previousId and groupId in the members
	// copied as they are, when they are numbers (else -1).
	previousAt, groupAt int
}

// Identifiers that are numbers are stored as the strings JavaScript's
// String(n) gives them (consent.NumberID), so that 123, 123.0 and 1.23e2
// are the one id "123" for the consent lookup, the store and every
// destination; a number no string denotes exactly is refused.

// idProblem is the refusal of an id field that is a number no id denotes
// exactly.
func idProblem(field string, err error) problem {
	return problem{400, field + ": " + err.Error()}
}

// stringID returns id as the string it stands for: itself unless it is a
// number, else its canonical form (which allocates: numeric ids are rare).
func stringID(id gjson.Result, field string) (gjson.Result, problem) {
	if id.Type != gjson.Number {
		return id, problem{}
	}
	s, err := consent.NumberID(id.Raw)
	if err != nil {
		return id, idProblem(field, err)
	}
	return gjson.Result{Type: gjson.String, Str: s, Raw: `"` + s + `"`}, problem{}
}

// normalize validates one event and appends its normalized form to
// sc.out. typ is the type the path gives (segment.Other for a batch element);
// sh is what the batch adds; now is receivedAt (UTC), already formatted in
// sc.received.
//
// The normalized event keeps every member of ev except writeKey (and
// later duplicates of a key), with:
//   - type: the path's type for single calls, else the event's own;
//   - messageId: the client's, or "ifn-" and 32 random hex digits;
//   - context and integrations: the event's, with the batch's top-level
//     members added one level deep (see the package documentation);
//   - sentAt: the event's, else the batch's;
//   - originalTimestamp: the client's originalTimestamp, else its timestamp;
//   - timestamp: receivedAt − (sentAt − originalTimestamp) when both are
//     known, originalTimestamp when sentAt is not, receivedAt when the
//     client sent no time at all;
//   - receivedAt: now.
//
// It returns the dedupe key of a client-supplied messageId (dedupe false
// for a generated one, which cannot repeat), or the problem that refuses
// the event, in which case sc.out is left as it was.
func normalize(sc *scratch, ev eventView, typ segment.EventType, sh *shared, now time.Time, h hasher) (key idKey, dedupe bool, p problem) {
	if !ev.object {
		return key, false, errNotObject
	}
	f := fields{previousAt: -1, groupAt: -1}
	rest := sc.members[:0] // members copied as they are, written after the ones the host reads most
	for _, m := range ev.members {
		switch m.name {
		case segment.MemberType:
			f.typ = gjson.Parse(m.value)
			continue
		case segment.MemberMessageID:
			f.messageID = gjson.Parse(m.value)
			continue
		case "timestamp":
			f.timestamp = gjson.Parse(m.value)
			continue
		case "originalTimestamp":
			f.origTimestamp = gjson.Parse(m.value)
			continue
		case "sentAt":
			f.sentAt = gjson.Parse(m.value)
			continue
		case segment.MemberContext:
			f.context = gjson.Parse(m.value)
			continue
		case segment.MemberIntegrations:
			f.integrations = gjson.Parse(m.value)
			continue
		case "writeKey", "receivedAt":
			continue
		case segment.MemberUserID:
			f.userID = gjson.Parse(m.value)
			continue
		case segment.MemberAnonymousID:
			f.anonymousID = gjson.Parse(m.value)
			continue
		case segment.MemberEvent:
			f.event = gjson.Parse(m.value)
			continue
		case "previousId":
			f.previousID = gjson.Parse(m.value)
			if f.previousID.Type == gjson.Number {
				f.previousAt = len(rest)
			}
		case "groupId":
			f.groupID = gjson.Parse(m.value)
			if f.groupID.Type == gjson.Number {
				f.groupAt = len(rest)
			}
		}
		rest = append(rest, member{m.key, m.value})
	}
	sc.members = rest[:0] // keep the grown buffer
	fail := func(p problem) (idKey, bool, problem) {
		return idKey{}, false, p
	}

	if typ == segment.Other {
		if f.typ.Type != gjson.String {
			if present(f.typ) {
				return fail(errBadType)
			}
			return fail(errMissingType)
		}
		if typ = segment.ParseCall(f.typ.Str); typ == segment.Other {
			return fail(errBadType)
		}
	}
	if !idType(f.userID) {
		return fail(errBadUserID)
	}
	if !idType(f.anonymousID) {
		return fail(errBadAnonID)
	}
	if !isID(f.userID) && !isID(f.anonymousID) {
		return fail(errMissingID)
	}
	for _, id := range [...]struct {
		v     *gjson.Result
		field string
		at    int
	}{{&f.userID, "userId", -1}, {&f.anonymousID, "anonymousId", -1}, {&f.previousID, "previousId", f.previousAt}, {&f.groupID, "groupId", f.groupAt}} {
		if id.v.Type != gjson.Number {
			continue
		}
		v, p := stringID(*id.v, id.field)
		if !p.ok() {
			return fail(p)
		}
		*id.v = v
		if id.at >= 0 {
			rest[id.at].value = v.Raw
		}
	}
	switch typ {
	case segment.Track:
		if f.event.Type != gjson.String || f.event.Str == "" {
			return fail(errMissingEvent)
		}
	case segment.Alias:
		if !isID(f.previousID) {
			return fail(errMissingPrevID)
		}
	case segment.Group:
		if !isID(f.groupID) {
			return fail(errMissingGroupID)
		}
	}
	if present(f.messageID) {
		if f.messageID.Type != gjson.String {
			return fail(errBadMessageID)
		}
		if utf8.RuneCountInString(f.messageID.Str) > MaxMessageIDLength {
			return fail(errLongMessageID)
		}
		if f.messageID.Str != "" {
			key, dedupe = h.key(f.messageID.Str), true
		}
	}
	if present(f.context) && !f.context.IsObject() {
		return fail(errBadContext)
	}
	if present(f.integrations) && !f.integrations.IsObject() {
		return fail(errBadIntegration)
	}
	sentAt := f.sentAt
	if !present(sentAt) {
		sentAt = sh.sentAt
	}
	var sent time.Time
	var sentForm segment.TimeForm
	if present(sentAt) {
		if sent, sentForm = parseTimeField(sentAt); sentForm == segment.TimeInvalid {
			return fail(errBadSentAt)
		}
	}
	orig := f.origTimestamp
	if !present(orig) {
		orig = f.timestamp
	}
	ts := now
	if present(orig) {
		o, origForm := parseTimeField(orig)
		if origForm == segment.TimeInvalid {
			return fail(errBadTimestamp)
		}
		ts = o
		// The clock skew is sentAt - timestamp only when both are times of
		// the same kind: a date alone, or a time with an offset against one
		// without, would shift the event by hours.
		if sentForm == origForm && origForm != segment.TimeDate {
			ts = now.Add(-sent.Sub(o))
		}
	}

	// The stored order (segment.LeadingMembers): type, event, userId,
	// anonymousId, messageId, integrations and context (its consent
	// first) come first, in that order: the host reads the type from the
	// event's first member without a lookup (segment.LeadingType); the
	// consent lookup's ids, the check for a consent preference event (its
	// name), the integrations and the consent (context.consent) are found
	// without scanning past properties, traits or the rest of the context.
	// TestStoredOrder holds this code to the contract.
	out := append(sc.out, segment.TypePrefix...)
	first := false
	out = append(out, typ.String()...)
	out = append(out, '"')
	for _, m := range [...]struct {
		key string
		v   gjson.Result
	}{{keyEvent, f.event}, {keyUserID, f.userID}, {keyAnonymousID, f.anonymousID}} {
		if m.v.Exists() {
			out = appendKey(out, &first, m.key)
			out = append(out, m.v.Raw...)
		}
	}
	out = appendKey(out, &first, keyMessageID)
	if dedupe {
		out = append(out, f.messageID.Raw...)
	} else {
		var rnd [16]byte
		_, _ = rand.Read(rnd[:]) // never fails (crypto/rand crashes the program instead)
		out = append(out, `"ifn-`...)
		out = hex.AppendEncode(out, rnd[:])
		out = append(out, '"')
	}
	if present(f.integrations) || sh.integrations.IsObject() {
		out = appendKey(out, &first, keyIntegrations)
		out = appendMerged(out, f.integrations, nil, sh.integrations, nil, "", nil)
	}
	if present(f.context) || sh.context.IsObject() {
		out = appendKey(out, &first, keyContext)
		out = appendMerged(out, f.context, ev.context, sh.context, sh.contextMembers, segment.ContextLeadingMember, &sc.merged)
	}
	for _, m := range rest {
		out = appendKey(out, &first, m.key)
		out = append(out, ':')
		out = append(out, m.value...)
	}
	if present(sentAt) {
		out = appendKey(out, &first, `"sentAt":`)
		out = append(out, sentAt.Raw...)
	}
	if present(orig) {
		out = appendKey(out, &first, `"originalTimestamp":`)
		out = append(out, orig.Raw...)
	}
	out = appendKey(out, &first, `"timestamp":"`)
	if ts.Equal(now) {
		out = append(out, sc.received...)
	} else {
		out = segment.AppendTime(out, ts)
	}
	out = append(out, '"')
	out = appendKey(out, &first, `"`+segment.MemberReceivedAt+`":"`) // last: segment.TrailingReceivedAt
	out = append(out, sc.received...)
	out = append(out, `"}`...)
	sc.out = out
	return key, dedupe, problem{}
}

// The keys of the leading members (segment.LeadingMembers after type) as
// normalize writes them: the quoted name and a colon.
const (
	keyEvent        = `"` + segment.MemberEvent + `":`
	keyUserID       = `"` + segment.MemberUserID + `":`
	keyAnonymousID  = `"` + segment.MemberAnonymousID + `":`
	keyMessageID    = `"` + segment.MemberMessageID + `":`
	keyIntegrations = `"` + segment.MemberIntegrations + `":`
	keyContext      = `"` + segment.MemberContext + `":`
)

// appendKey appends a separating comma unless this is the first member,
// then key (a quoted name and colon, maybe more).
// member is one member of an event, its key and value as they came (raw JSON).
type member struct{ key, value string }

func appendKey(out []byte, first *bool, key string) []byte {
	if !*first {
		out = append(out, ',')
	}
	*first = false
	return append(out, key...)
}

// parseTimeField parses a time member's value with [segment.ParseTime]:
// a string in one of the forms it accepts, else [segment.TimeInvalid].
func parseTimeField(r gjson.Result) (time.Time, segment.TimeForm) {
	if r.Type != gjson.String {
		return time.Time{}, segment.TimeInvalid
	}
	return segment.ParseTime(r.Str)
}

// appendMerged appends the JSON object own with the members of batch that
// own lacks, one level deep: a member present in own is kept whole (own
// wins), even if both are objects. Either may be absent (a zero Result or
// null); both are objects when present.
//
// When lead is not empty, the first member named lead (own's, else
// batch's) is written first and the others keep their order, so that a
// reader looking for it (gjson.Get of "context.consent") stops there
// instead of scanning past the others. ownMembers and batchMembers are
// then own's and batch's members (as scanBody indexed them), and scratch
// holds the members meanwhile.
func appendMerged(out []byte, own gjson.Result, ownMembers []indexedMember, batch gjson.Result, batchMembers []indexedMember, lead string, scratch *[]namedMember) []byte {
	ownObj, batchObj := own.IsObject(), batch.IsObject()
	switch {
	case !ownObj:
		if lead == "" || !batchObj || leadsWith(batch.Raw, lead) {
			return append(out, batch.Raw...)
		}
	case !batchObj:
		if lead == "" || leadsWith(own.Raw, lead) {
			return append(out, own.Raw...)
		}
	case lead == "":
		inner := trimObject(own.Raw)
		out = append(out, '{')
		out = append(out, inner...)
		first := len(inner) == 0
		var owns nameSet
		own.ForEach(func(k, _ gjson.Result) bool {
			owns.add(k.Str)
			return true
		})
		batch.ForEach(func(k, v gjson.Result) bool {
			if !owns.has(k.Str) {
				if !first {
					out = append(out, ',')
				}
				first = false
				out = append(out, k.Raw...)
				out = append(out, ':')
				out = append(out, v.Raw...)
			}
			return true
		})
		return append(out, '}')
	}
	// Reorder: collect own's members, then batch's that own lacks.
	ms := (*scratch)[:0]
	var owns nameSet
	if ownObj {
		for _, m := range ownMembers {
			ms = append(ms, namedMember{m.name, member{m.key, m.value}})
			owns.add(m.name)
		}
	}
	if batchObj {
		for _, b := range batchMembers {
			if !owns.has(b.name) {
				ms = append(ms, namedMember{b.name, member{b.key, b.value}})
			}
		}
	}
	at := slices.IndexFunc(ms, func(m namedMember) bool { return m.name == lead })
	out = append(out, '{')
	if at >= 0 {
		out = appendMember(out, ms[at].member)
	}
	for i, m := range ms {
		if i == at {
			continue
		}
		if i > 0 || at >= 0 {
			out = append(out, ',')
		}
		out = appendMember(out, m.member)
	}
	*scratch = ms[:0] // keep the grown buffer
	return append(out, '}')
}

// namedMember is a member and its unescaped name.
type namedMember struct {
	name string
	member
}

func appendMember(out []byte, m member) []byte {
	out = append(out, m.key...)
	out = append(out, ':')
	return append(out, m.value...)
}

// nameSet is a set of member names, compared one by one while it is
// small and hashed once it is not, so that merging two large objects
// stays linear. The zero value is empty.
type nameSet struct {
	n     int
	small [smallObject]string
	large map[string]struct{}
}

func (s *nameSet) add(name string) {
	switch {
	case s.large != nil:
		s.large[name] = struct{}{}
	case s.n < len(s.small):
		s.small[s.n] = name
		s.n++
	default:
		s.large = make(map[string]struct{}, 4*len(s.small))
		for _, n := range s.small {
			s.large[n] = struct{}{}
		}
		s.large[name] = struct{}{}
	}
}

func (s *nameSet) has(name string) bool {
	if s.large != nil {
		_, ok := s.large[name]
		return ok
	}
	for _, n := range s.small[:s.n] {
		if n == name {
			return true
		}
	}
	return false
}

// leadsWith reports whether the raw JSON object's first member is named
// name, written without escapes.
func leadsWith(raw, name string) bool {
	s := trimObject(raw)
	return len(s) > len(name)+1 && s[0] == '"' && s[1:1+len(name)] == name && s[1+len(name)] == '"'
}

// trimObject returns the members of a raw JSON object: what lies between
// its braces, without surrounding white space.
func trimObject(raw string) string {
	raw = raw[1 : len(raw)-1]
	for len(raw) > 0 && isSpace(raw[0]) {
		raw = raw[1:]
	}
	for len(raw) > 0 && isSpace(raw[len(raw)-1]) {
		raw = raw[:len(raw)-1]
	}
	return raw
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
