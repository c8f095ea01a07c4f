package hostcall

import (
	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/tidwall/gjson"
)

// HasConsent reports whether the event carries context.consent at all.
func (d *Doc) HasConsent() bool { d.scanConsent(); return d.consent.Exists() }

// consentParts returns the event's category preferences (accepting the
// singular "categoryPreference" the Segment docs also use) and its
// consent_state, in one pass over context.consent. Of a key the object
// repeats, the first copy counts, as routing reads it: the function and
// the router must judge the same preferences.
func (d *Doc) consentParts() (prefs, state gjson.Result) {
	var singular gjson.Result
	if d.consent.IsObject() {
		first := func(dst *gjson.Result, v gjson.Result) {
			if !dst.Exists() {
				*dst = v
			}
		}
		d.consent.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "categoryPreferences":
				first(&prefs, v)
			case "categoryPreference":
				first(&singular, v)
			case "consent_state":
				first(&state, v)
			}
			return true
		})
	}
	if !prefs.Exists() {
		prefs = singular
	}
	return prefs, state
}

// Consented reads an event-side consent value, a category's or a
// purpose's: true, or an object whose first "consented" member is true
// (mParticle's style). Anything else is not consent. The router reads
// categories with it too, so that a function and the router never
// disagree about one event.
func Consented(v gjson.Result) bool {
	if v.IsObject() {
		return v.Get("consented").Type == gjson.True
	}
	return v.Type == gjson.True
}

// CompareConsent compares the event's consent with the stored record and
// appends one [abi.Entry] per category or purpose that differs or that only
// one side has. Categories are compared whenever the event has
// context.consent (a category missing from the event counts as not carried);
// purposes only when the event carries context.consent.consent_state.
//
// A stored category or purpose the event repeats counts as consented only
// if every copy consents (routing reads repeated categories the same way):
// a function, the router and a destination's JSON decoder may each read a
// different copy, so a copy that refuses must win. Its entry, if any, comes
// in the stored record's order after the event-only ones.
//
// It returns [abi.ConsentNoEventConsent] when the event has no
// context.consent, [abi.ConsentSame] when nothing differs and
// [abi.ConsentDiffers] otherwise.
func (d *Doc) CompareConsent(dst []byte, rec *consent.Record) ([]byte, abi.ConsentStatus) {
	d.scanConsent()
	if !d.consent.Exists() {
		return dst, abi.ConsentNoEventConsent
	}
	start := len(dst)
	prefs, state := d.consentParts()
	var seen, granted bitset // stored categories the event carries, and those every copy grants
	if prefs.IsObject() {
		prefs.ForEach(func(k, v gjson.Result) bool {
			ev := Consented(v)
			if i := rec.CategoryIndex(k.Str); i >= 0 {
				carried(&seen, &granted, i, ev)
				return true
			}
			flags := abi.FlagInEvent
			if ev {
				flags |= abi.FlagEventConsented
			}
			dst = abi.AppendEntry(dst, flags, k.Str, "", 0)
			return true
		})
	}
	for i, c := range rec.Categories {
		dst = appendDifference(dst, 0, seen.has(i), granted.has(i), c.Consented, c.Name, "", c.Timestamp)
	}
	if state.IsObject() {
		dst = comparePurposes(dst, state, rec)
	}
	if len(dst) == start {
		return dst, abi.ConsentSame
	}
	return dst, abi.ConsentDiffers
}

// carried notes one copy of stored entry i in the event, consenting or not:
// the event grants the entry only if every copy consents.
func carried(seen, granted *bitset, i int, consents bool) {
	switch {
	case !seen.has(i):
		seen.add(i)
		if consents {
			granted.add(i)
		}
	case !consents:
		granted.remove(i)
	}
}

// appendDifference appends the entry of one stored category or purpose
// (kind is 0 or abi.FlagPurpose) unless the event carries it with the
// stored value.
func appendDifference(dst []byte, kind uint8, inEvent, eventConsents, stored bool, name, purpose string, ts int64) []byte {
	if inEvent && eventConsents == stored {
		return dst
	}
	flags := kind | abi.FlagInStored
	if stored {
		flags |= abi.FlagStoredConsented
	}
	if inEvent {
		flags |= abi.FlagInEvent
		if eventConsents {
			flags |= abi.FlagEventConsented
		}
	}
	return abi.AppendEntry(dst, flags, name, purpose, ts)
}

// bitset marks indexes of stored entries; it holds 64 without allocating.
type bitset struct {
	small uint64
	large map[int]bool
}

func (b *bitset) has(i int) bool {
	if i < 64 {
		return b.small&(1<<i) != 0
	}
	return b.large[i]
}

func (b *bitset) remove(i int) {
	if i < 64 {
		b.small &^= 1 << i
		return
	}
	delete(b.large, i)
}

func (b *bitset) add(i int) {
	if i < 64 {
		b.small |= 1 << i
		return
	}
	if b.large == nil {
		b.large = make(map[int]bool)
	}
	b.large[i] = true
}

func comparePurposes(dst []byte, state gjson.Result, rec *consent.Record) []byte {
	var seen, granted bitset
	state.ForEach(func(reg, purposes gjson.Result) bool {
		if !purposes.IsObject() {
			return true
		}
		purposes.ForEach(func(name, v gjson.Result) bool {
			ev := Consented(v)
			if i := rec.PurposeIndex(reg.Str, name.Str); i >= 0 {
				carried(&seen, &granted, i, ev)
				return true
			}
			flags := abi.FlagPurpose | abi.FlagInEvent
			if ev {
				flags |= abi.FlagEventConsented
			}
			dst = abi.AppendEntry(dst, flags, reg.Str, name.Str, 0)
			return true
		})
		return true
	})
	for i, p := range rec.Purposes {
		dst = appendDifference(dst, abi.FlagPurpose, seen.has(i), granted.has(i), p.Consented, p.Regulation, p.Name, p.Timestamp)
	}
	return dst
}

// AppendRecord appends the record's categories and purposes as [abi.Entry]
// values, the payload of a found consent lookup.
func AppendRecord(dst []byte, rec *consent.Record) []byte {
	for _, c := range rec.Categories {
		flags := abi.FlagInStored
		if c.Consented {
			flags |= abi.FlagStoredConsented
		}
		dst = abi.AppendEntry(dst, flags, c.Name, "", c.Timestamp)
	}
	for _, p := range rec.Purposes {
		flags := abi.FlagPurpose | abi.FlagInStored
		if p.Consented {
			flags |= abi.FlagStoredConsented
		}
		dst = abi.AppendEntry(dst, flags, p.Regulation, p.Name, p.Timestamp)
	}
	return dst
}

// ConsentIDs returns the ids stored consent is looked up by, in order: the
// event's userId, then its anonymousId (either may be "").
func (d *Doc) ConsentIDs() (userID, anonymousID string) { return d.UserID(), d.AnonymousID() }
