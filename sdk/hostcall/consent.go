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
// consent_state, in one pass over context.consent.
func (d *Doc) consentParts() (prefs, state gjson.Result) {
	var singular gjson.Result
	if d.consent.IsObject() {
		d.consent.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "categoryPreferences":
				prefs = v
			case "categoryPreference":
				singular = v
			case "consent_state":
				state = v
			}
			return true
		})
	}
	if !prefs.Exists() {
		prefs = singular
	}
	return prefs, state
}

// consentedValue reads an event-side consent value: true, or an object
// with "consented": true (mParticle style). Anything else is not consent.
func consentedValue(v gjson.Result) bool {
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
// A category or purpose the event repeats counts as consented only if every
// copy consents (routing reads repeated categories the same way).
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
	var seen, granted bitset // stored categories the event carries, and grants, by index
	if prefs.IsObject() {
		prefs.ForEach(func(k, v gjson.Result) bool {
			ev := consentedValue(v)
			flags := abi.FlagInEvent
			if ev {
				flags |= abi.FlagEventConsented
			}
			i := rec.CategoryIndex(k.Str)
			if i < 0 {
				dst = abi.AppendEntry(dst, flags, k.Str, "", 0)
				return true
			}
			if seen.has(i) {
				if c := rec.Categories[i]; repeatDiffers(&granted, i, ev, c.Consented) {
					dst = abi.AppendEntry(dst, abi.FlagInEvent|abi.FlagInStored|abi.FlagStoredConsented, k.Str, "", c.Timestamp)
				}
				return true
			}
			seen.add(i)
			if ev {
				granted.add(i)
			}
			if c := rec.Categories[i]; c.Consented != ev {
				flags |= abi.FlagInStored
				if c.Consented {
					flags |= abi.FlagStoredConsented
				}
				dst = abi.AppendEntry(dst, flags, k.Str, "", c.Timestamp)
			}
			return true
		})
	}
	for i, c := range rec.Categories {
		if seen.has(i) {
			continue
		}
		flags := abi.FlagInStored
		if c.Consented {
			flags |= abi.FlagStoredConsented
		}
		dst = abi.AppendEntry(dst, flags, c.Name, "", c.Timestamp)
	}
	if state.IsObject() {
		dst = comparePurposes(dst, state, rec)
	}
	if len(dst) == start {
		return dst, abi.ConsentSame
	}
	return dst, abi.ConsentDiffers
}

// repeatDiffers applies the rule for a key the event repeats: the event
// grants only if every copy consents (the function, routing and the
// destination's JSON decoder may each read a different copy, so a copy
// that refuses must win). granted holds the stored entries every copy so
// far consents to; ev is this copy. It reports whether the event, which
// agreed with the consenting stored value until this copy, now differs
// from it: the caller then appends that entry (at most once per entry;
// a first copy that differed was reported already).
func repeatDiffers(granted *bitset, i int, ev, stored bool) bool {
	if ev || !granted.has(i) {
		return false
	}
	granted.remove(i)
	return stored
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
			ev := consentedValue(v)
			flags := abi.FlagPurpose | abi.FlagInEvent
			if ev {
				flags |= abi.FlagEventConsented
			}
			i := rec.PurposeIndex(reg.Str, name.Str)
			if i < 0 {
				dst = abi.AppendEntry(dst, flags, reg.Str, name.Str, 0)
				return true
			}
			if seen.has(i) {
				if p := rec.Purposes[i]; repeatDiffers(&granted, i, ev, p.Consented) {
					dst = abi.AppendEntry(dst, abi.FlagPurpose|abi.FlagInEvent|abi.FlagInStored|abi.FlagStoredConsented, reg.Str, name.Str, p.Timestamp)
				}
				return true
			}
			seen.add(i)
			if ev {
				granted.add(i)
			}
			if p := rec.Purposes[i]; p.Consented != ev {
				flags |= abi.FlagInStored
				if p.Consented {
					flags |= abi.FlagStoredConsented
				}
				dst = abi.AppendEntry(dst, flags, reg.Str, name.Str, p.Timestamp)
			}
			return true
		})
		return true
	})
	for i, p := range rec.Purposes {
		if seen.has(i) {
			continue
		}
		flags := abi.FlagPurpose | abi.FlagInStored
		if p.Consented {
			flags |= abi.FlagStoredConsented
		}
		dst = abi.AppendEntry(dst, flags, p.Regulation, p.Name, p.Timestamp)
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
