package consentstore

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/insertfn/insertfn/sdk/segment"
)

// segmentTimestampFields are the fields of a Segment event that
// [UpdateFromSegment] takes the decision time from, in order of preference.
var segmentTimestampFields = [...]string{"timestamp", "originalTimestamp", "receivedAt", "sentAt"}

// UpdateFromSegment turns a Segment consent-preference event into an update
// of the store.
//
// An event is a consent update when it is a track call (its "type" is
// "track", or absent as in the body of POST /v1/track) whose "event" is
// [segment.ConsentPreference] or [segment.ConsentPreferenceUpdated]. For any
// other event UpdateFromSegment returns ok false after reading only those
// two fields; it does not decode the event.
//
// For a consent update it returns ok true, and either the update or an
// error that says what is wrong with the event (the event is then a
// consent update the store must not take):
//
//   - the id: the event's userId, with its anonymousId as an alias; or the
//     anonymousId alone when there is no userId. Ids are strings; a
//     number is the id JavaScript's String(n) makes of it (userId 123.0,
//     1.23e2 and 123 are all "123", see [consent.NumberID]), and a number
//     that cannot be an id exactly (an integer beyond 2^53 that a double
//     rounds) is an error. An event with neither is an error.
//   - the categories: context.consent.categoryPreferences, an object of
//     booleans ({"Advertising": true, ...}). Segment's early documentation
//     called it consentPreferences; that name is read when
//     categoryPreferences is absent. A value that is not a boolean, an
//     empty category name, or a preferences value that is not an object is
//     an error; so is an event with neither object.
//   - the time of the decision, for every category: the first of
//     "timestamp", "originalTimestamp", "receivedAt" and "sentAt" the event
//     has: "timestamp" is what Segment's API settles on (client clock skew
//     corrected, see segment-compat.md), originalTimestamp the client's
//     clock, receivedAt and sentAt later stand-ins. Each is an ISO-8601
//     string as Segment sends it ("2023-01-01T00:00:00.000Z"), in any of
//     the forms [segment.ParseTime] accepts, which are the forms the
//     ingest accepts (any fraction, "Z" or a numeric offset; without an
//     offset UTC is assumed; a date alone is midnight UTC). A field
//     present that does not parse, or a time before 1970, is an error (no
//     falling back past a bad value). With none of them, the entries carry
//     no timestamp and [Store.Update] stamps them with the time it receives
//     the update, as Segment uses its server's time.
//   - the clamp: a decision time is a client's claim, and never later than
//     the moment the server received the event: its "receivedAt" (which
//     the ingest server stamps), or the current time when it has none or
//     a later one. A later time is set to that moment, and the update's
//     [Update.ClampedFrom] keeps the time claimed, which the history
//     shows in the entry's source (see [ClampNote]). Otherwise one event
//     dated 2099 would outrank, under last-writer-wins, every decision
//     the person makes until then.
//   - the source: "segment:" + messageId ("segment" without a messageId).
//
// An event with an empty categoryPreferences object and no anonymousId
// besides its userId changes nothing: UpdateFromSegment returns ok false
// for it (Segment reads an empty object as "no category consented", but
// the store cannot know which categories that denies).
func UpdateFromSegment(event []byte) (u Update, ok bool, err error) {
	return UpdateFromSegmentAt(event, time.Now())
}

// UpdateFromSegmentAt is [UpdateFromSegment] with now as the current time
// (the latest decision time an event may give, and the clamp of an event
// without receivedAt).
func UpdateFromSegmentAt(event []byte, now time.Time) (u Update, ok bool, err error) {
	// A view of the event for the first look (every event gets one): gjson
	// then returns substrings instead of copies. Only the name's
	// comparison reads it.
	name := gjson.Get(unsafe.String(unsafe.SliceData(event), len(event)), segment.MemberEvent)
	if name.Type != gjson.String || !segment.IsConsentPreference(name.Str) {
		return Update{}, false, nil
	}
	name = gjson.GetBytes(event, segment.MemberEvent) // a copy: its Str outlives this call
	if typ := gjson.GetBytes(event, segment.MemberType); typ.Exists() && (typ.Type != gjson.String || segment.ParseType(typ.Str) != segment.Track) {
		return Update{}, false, nil
	}
	u, err = segmentUpdate(event, name.Str, now.UnixMilli())
	if err != nil {
		return Update{}, true, err
	}
	if len(u.Record.Categories) == 0 && len(u.Record.Aliases) == 0 {
		return Update{}, false, nil
	}
	return u, true, nil
}

func segmentUpdate(event []byte, name string, now int64) (Update, error) {
	fail := func(format string, args ...any) (Update, error) {
		return Update{}, fmt.Errorf("consent store: %q event: %s", name, fmt.Sprintf(format, args...))
	}
	if !gjson.ValidBytes(event) {
		return fail("not valid JSON")
	}
	f := gjson.GetManyBytes(event, "userId", "anonymousId", "messageId",
		"context.consent.categoryPreferences", "context.consent.consentPreferences")
	userID, err := idField(f[0], "userId")
	if err != nil {
		return fail("%v", err)
	}
	anonID, err := idField(f[1], "anonymousId")
	if err != nil {
		return fail("%v", err)
	}
	if userID == "" && anonID == "" {
		return fail("neither userId nor anonymousId: the update is about no one")
	}
	var msgID string
	switch f[2].Type {
	case gjson.Null:
	case gjson.String:
		msgID = f[2].Str
	default:
		return fail("messageId: want a string, got %s", jsonType(f[2]))
	}

	prefs, path := f[3], "context.consent.categoryPreferences"
	if !prefs.Exists() && f[4].Exists() {
		prefs, path = f[4], "context.consent.consentPreferences"
	}
	switch {
	case !prefs.Exists():
		return fail("no context.consent.categoryPreferences: a consent preference event carries the person's categories")
	case !prefs.IsObject():
		return fail("%s: want an object of booleans ({\"Advertising\": true}), got %s", path, jsonType(prefs))
	}

	ts, err := segmentTimestamp(event)
	if err != nil {
		return fail("%v", err)
	}
	limit, err := receiptTime(event, now)
	if err != nil {
		return fail("%v", err)
	}
	var claimed int64 // the time the event claimed, when clamped
	if ts > limit {
		claimed, ts = ts, limit
	}

	u := Update{Source: "segment"}
	if msgID != "" {
		u.Source = "segment:" + msgID
	}
	r := &u.Record
	r.ID = userID
	if userID == "" {
		r.ID = anonID
	} else if anonID != "" && anonID != userID {
		r.Aliases = []string{anonID}
	}
	index := make(map[string]int) // category -> its index in r.Categories
	prefs.ForEach(func(key, value gjson.Result) bool {
		cat := key.String()
		if cat == "" {
			err = fmt.Errorf("%s: a category with an empty name", path)
			return false
		}
		// mParticle's style, {"consented": true}, reads as the functions
		// and the router read it: by its first "consented" member.
		if value.IsObject() {
			c := value.Get("consented")
			if !c.Exists() {
				err = fmt.Errorf("%s.%s: an object needs \"consented\": true or false", path, cat)
				return false
			}
			value = c
		}
		if value.Type != gjson.True && value.Type != gjson.False {
			err = fmt.Errorf("%s.%s: want true, false or {\"consented\": true|false}, got %s", path, cat, jsonType(value))
			return false
		}
		consents := value.Type == gjson.True
		// A category the event repeats is consented only if every copy
		// is, as routing and the functions' consent helpers read it.
		if i, ok := index[cat]; ok {
			r.Categories[i].Consented = r.Categories[i].Consented && consents
			return true
		}
		index[cat] = len(r.Categories)
		r.Categories = append(r.Categories, consent.Category{Name: cat, Consented: consents, Timestamp: ts})
		return true
	})
	if err != nil {
		return fail("%v", err)
	}
	r.Normalize()
	if claimed != 0 {
		u.ClampedFrom = make(map[string]int64, len(r.Categories))
		for _, c := range r.Categories {
			u.ClampedFrom[(&Point{Kind: KindCategory, Name: c.Name}).EntryKey()] = claimed
		}
	}
	return u, nil
}

// receiptTime returns the latest decision time an event may give, in Unix
// milliseconds: its "receivedAt" when it has one that parses and is not
// later than now, else now. A receivedAt that is not an ISO-8601 string
// is an error, as for the other time fields.
func receiptTime(event []byte, now int64) (int64, error) {
	v := gjson.GetBytes(event, "receivedAt")
	if !v.Exists() || v.Type == gjson.Null {
		return now, nil
	}
	if v.Type != gjson.String {
		return 0, fmt.Errorf("receivedAt: want an ISO-8601 string (\"2023-01-01T00:00:00.000Z\"), got %s", jsonType(v))
	}
	t, form := segment.ParseTime(v.Str)
	if form == segment.TimeInvalid {
		return 0, fmt.Errorf("receivedAt %q: want an ISO-8601 time such as \"2023-01-01T00:00:00.000Z\"", truncate(v.Str, 64))
	}
	ms := t.UnixMilli()
	if ms <= 0 {
		return 0, fmt.Errorf("receivedAt %q: a time before 1970", v.Str)
	}
	return min(ms, now), nil
}

// segmentTimestamp returns the decision time of a Segment event in Unix
// milliseconds, or 0 when it has none (see UpdateFromSegment).
func segmentTimestamp(event []byte) (int64, error) {
	for _, field := range segmentTimestampFields {
		v := gjson.GetBytes(event, field)
		if !v.Exists() || v.Type == gjson.Null {
			continue
		}
		if v.Type != gjson.String {
			return 0, fmt.Errorf("%s: want an ISO-8601 string (\"2023-01-01T00:00:00.000Z\"), got %s", field, jsonType(v))
		}
		t, form := segment.ParseTime(v.Str)
		if form == segment.TimeInvalid {
			return 0, fmt.Errorf("%s %q: want an ISO-8601 time such as \"2023-01-01T00:00:00.000Z\"", field, truncate(v.Str, 64))
		}
		ms := t.UnixMilli()
		if ms <= 0 {
			return 0, fmt.Errorf("%s %q: a time before 1970", field, v.Str)
		}
		return ms, nil
	}
	return 0, nil
}

// LinkFromEvent returns the ids an identify or alias call says belong to
// one person, for [Store.Link]:
//
//   - identify: the userId, with its anonymousId as alias;
//   - alias: the userId, with the previousId (and the anonymousId, when the
//     call carries one) as aliases.
//
// ok is false for other calls, for calls that link nothing (no userId, or
// no other id different from it) and for events that are not valid JSON or
// whose ids are not strings or numbers. Other calls are left out on
// purpose, even when they carry both ids: linking on every event would
// cost a store write per event, and the ids of one person are tied
// together by identify and alias (and by consent preference events, whose
// update links them, see [UpdateFromSegment]).
func LinkFromEvent(event []byte) (id string, aliases []string, ok bool) {
	typ := gjson.GetBytes(event, segment.MemberType)
	kind := segment.ParseType(typ.Str)
	if typ.Type != gjson.String || (kind != segment.Identify && kind != segment.Alias) {
		return "", nil, false
	}
	if !gjson.ValidBytes(event) {
		return "", nil, false
	}
	f := gjson.GetManyBytes(event, "userId", "anonymousId", "previousId")
	userID, err := idField(f[0], "userId")
	if err != nil || userID == "" {
		return "", nil, false
	}
	others := []gjson.Result{f[1]}
	if kind == segment.Alias {
		others = []gjson.Result{f[2], f[1]}
	}
	for _, o := range others {
		a, err := idField(o, "")
		if err != nil {
			return "", nil, false
		}
		if a != "" && a != userID && (len(aliases) == 0 || aliases[0] != a) {
			aliases = append(aliases, a)
		}
	}
	if len(aliases) == 0 {
		return "", nil, false
	}
	return userID, aliases, true
}

// mParticle's consent_state limits: timestamps below this are taken as
// seconds (mParticle's own documentation shows 1510949166 for a field in
// milliseconds); 1e11 ms is March 1973, 1e11 s is far in the future.
const secondsBelow = 100_000_000_000

// UpdateFromMParticle turns the consent_state of an mParticle batch (the
// JSON of mParticle's Events API and of its outbound batches) into an
// update of the store.
//
// The batch is a consent update when it has a "consent_state" object that
// names at least one purpose; otherwise ok is false and the batch was not
// decoded beyond that field. For a consent update ok is true and either
// the update or an error that says what is wrong is returned:
//
//   - the id: user_identities.customer_id (the company's own user id, the
//     counterpart of Segment's userId), with the batch's mpid as an alias;
//     or the mpid alone when there is no customer_id. An mpid of 0 is
//     mParticle's "unknown" and is ignored. Neither is an error. A
//     numeric customer_id is read as a numeric userId is (see
//     [UpdateFromSegment]); the mpid, a 64-bit integer, as written.
//   - the purposes: consent_state.REGULATION.PURPOSE, each an object with
//     "consented" (a boolean, required) and "timestamp_unixtime_ms" (a
//     number, required; values below 1e11 are taken as seconds), and the
//     optional strings "document", "location" and "hardware_id". The
//     regulation is lower-cased ("GDPR" is "gdpr"); purpose names are kept
//     as written. For CCPA the purpose is "data_sale_opt_out" and
//     consented true means the person opted out of sale.
//   - the clamp: a purpose's time later than the current time (the batch
//     has no time of receipt) is set to it, as [UpdateFromSegment] clamps,
//     and [Update.ClampedFrom] keeps the time claimed for the history.
//   - the source: "mparticle:" + the batch's source_request_id, or else
//     its batch_id or id ("mparticle" without any).
func UpdateFromMParticle(batch []byte) (u Update, ok bool, err error) {
	return UpdateFromMParticleAt(batch, time.Now())
}

// UpdateFromMParticleAt is [UpdateFromMParticle] with now as the current
// time, the latest decision time a purpose may have.
func UpdateFromMParticleAt(batch []byte, now time.Time) (u Update, ok bool, err error) {
	cs := gjson.GetBytes(batch, "consent_state")
	if !cs.Exists() || cs.Type == gjson.Null {
		return Update{}, false, nil
	}
	u, err = mparticleUpdate(batch, cs)
	if err != nil {
		return Update{}, true, err
	}
	if len(u.Record.Purposes) == 0 {
		return Update{}, false, nil
	}
	limit := now.UnixMilli()
	for i := range u.Record.Purposes {
		p := &u.Record.Purposes[i]
		if p.Timestamp > limit {
			if u.ClampedFrom == nil {
				u.ClampedFrom = make(map[string]int64)
			}
			u.ClampedFrom[(&Point{Kind: KindPurpose, Regulation: p.Regulation, Name: p.Name}).EntryKey()] = p.Timestamp
			p.Timestamp = limit
		}
	}
	return u, true, nil
}

func mparticleUpdate(batch []byte, cs gjson.Result) (Update, error) {
	fail := func(format string, args ...any) (Update, error) {
		return Update{}, fmt.Errorf("consent store: mParticle batch: %s", fmt.Sprintf(format, args...))
	}
	if !gjson.ValidBytes(batch) {
		return fail("not valid JSON")
	}
	if !cs.IsObject() {
		return fail("consent_state: want an object of regulations ({\"gdpr\": {...}, \"ccpa\": {...}}), got %s", jsonType(cs))
	}
	f := gjson.GetManyBytes(batch, "user_identities", "mpid", "source_request_id", "batch_id", "id")
	var customerID string
	switch ui := f[0]; {
	case !ui.Exists() || ui.Type == gjson.Null:
	case ui.IsObject():
		var err error
		if customerID, err = idField(ui.Get("customer_id"), "user_identities.customer_id"); err != nil {
			return fail("%v", err)
		}
	default:
		return fail("user_identities: want an object ({\"customer_id\": \"...\"}), got %s", jsonType(ui))
	}
	mpid, err := mparticleIDField(f[1], "mpid")
	if err != nil {
		return fail("%v", err)
	}
	if mpid == "0" {
		mpid = ""
	}
	if customerID == "" && mpid == "" {
		return fail("neither user_identities.customer_id nor mpid: the update is about no one")
	}
	u := Update{Source: "mparticle"}
	for i, field := range []string{"source_request_id", "batch_id", "id"} {
		id, err := mparticleIDField(f[2+i], field)
		if err != nil {
			return fail("%v", err)
		}
		if id != "" {
			u.Source = "mparticle:" + id
			break
		}
	}
	r := &u.Record
	r.ID = customerID
	if customerID == "" {
		r.ID = mpid
	} else if mpid != "" && mpid != customerID {
		r.Aliases = []string{mpid}
	}

	cs.ForEach(func(regKey, purposes gjson.Result) bool {
		reg := strings.ToLower(regKey.String())
		path := "consent_state." + regKey.String()
		switch {
		case reg == "":
			err = fmt.Errorf("consent_state: a regulation with an empty name")
			return false
		case purposes.Type == gjson.Null:
			return true
		case !purposes.IsObject():
			err = fmt.Errorf("%s: want an object of purposes, got %s", path, jsonType(purposes))
			return false
		}
		purposes.ForEach(func(nameKey, entry gjson.Result) bool {
			var p consent.Purpose
			p, err = mparticlePurpose(reg, nameKey.String(), path+"."+nameKey.String(), entry)
			if err != nil {
				return false
			}
			r.Purposes = append(r.Purposes, p)
			return true
		})
		return err == nil
	})
	if err != nil {
		return fail("%v", err)
	}
	r.Normalize()
	return u, nil
}

// mparticlePurpose reads one consent_state entry; path names it in errors.
func mparticlePurpose(reg, name, path string, entry gjson.Result) (consent.Purpose, error) {
	p := consent.Purpose{Regulation: reg, Name: name}
	if name == "" {
		return p, fmt.Errorf("%s: a purpose with an empty name", path)
	}
	if !entry.IsObject() {
		return p, fmt.Errorf("%s: want an object with \"consented\" and \"timestamp_unixtime_ms\", got %s", path, jsonType(entry))
	}
	switch c := entry.Get("consented"); c.Type {
	case gjson.True, gjson.False:
		p.Consented = c.Type == gjson.True
	default:
		if !c.Exists() {
			return p, fmt.Errorf("%s: \"consented\" is required (true or false)", path)
		}
		return p, fmt.Errorf("%s.consented: want true or false, got %s", path, jsonType(c))
	}
	ts := entry.Get("timestamp_unixtime_ms")
	switch {
	case !ts.Exists() || ts.Type == gjson.Null:
		return p, fmt.Errorf("%s: \"timestamp_unixtime_ms\" is required (Unix time in milliseconds)", path)
	case ts.Type != gjson.Number:
		return p, fmt.Errorf("%s.timestamp_unixtime_ms: want a number of milliseconds, got %s", path, jsonType(ts))
	case ts.Num != math.Trunc(ts.Num) || ts.Num <= 0 || ts.Num > 1e15:
		return p, fmt.Errorf("%s.timestamp_unixtime_ms: %s is not a time (want Unix milliseconds, such as 1523039002083)", path, truncate(ts.Raw, 32))
	}
	p.Timestamp = int64(ts.Num)
	if p.Timestamp < secondsBelow {
		p.Timestamp *= 1000
	}
	for _, o := range []struct {
		field string
		dst   *string
	}{{"document", &p.Document}, {"location", &p.Location}, {"hardware_id", &p.HardwareID}} {
		v := entry.Get(o.field)
		switch v.Type {
		case gjson.Null:
		case gjson.String:
			*o.dst = v.Str
		default:
			return p, fmt.Errorf("%s.%s: want a string, got %s", path, o.field, jsonType(v))
		}
	}
	return p, nil
}

// idField reads an id: a string, or a number in its canonical form (as
// JavaScript's String(n) writes it: 123.0, 1.23e2 and 123e0 are all
// "123", see [consent.NumberID]); absent, null and "" are no id. A number
// that is not exactly an id (beyond 2^53, too many digits) is an error
// wrapping [consent.ErrInexactID]. field names it in errors.
func idField(v gjson.Result, field string) (string, error) {
	switch v.Type {
	case gjson.Null:
		return "", nil
	case gjson.String:
		return v.Str, nil
	case gjson.Number:
		id, err := consent.NumberID(v.Raw)
		if err != nil {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		return id, nil
	}
	return "", fmt.Errorf("%s: want a string, got %s", field, jsonType(v))
}

// mparticleIDField reads one of mParticle's own ids (mpid, batch_id):
// 64-bit integers, which its JSON carries as numbers that JavaScript
// cannot hold. An integer is taken as written; anything else as
// [idField] reads it.
func mparticleIDField(v gjson.Result, field string) (string, error) {
	if v.Type == gjson.Number {
		if _, err := strconv.ParseInt(v.Raw, 10, 64); err == nil {
			return v.Raw, nil
		}
	}
	return idField(v, field)
}

// jsonType names the JSON type of v for error messages.
func jsonType(v gjson.Result) string {
	switch v.Type {
	case gjson.Null:
		return "null"
	case gjson.False, gjson.True:
		return "a boolean (" + v.Raw + ")"
	case gjson.Number:
		return "a number (" + truncate(v.Raw, 32) + ")"
	case gjson.String:
		return fmt.Sprintf("a string (%q)", truncate(v.Str, 32))
	}
	if v.IsArray() {
		return "an array"
	}
	return "an object"
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
