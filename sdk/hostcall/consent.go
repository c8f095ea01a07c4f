package hostcall

import (
	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/tidwall/gjson"
)

// HasConsent reports whether the event carries context.consent at all.
func (d *Doc) HasConsent() bool { d.scan(); return d.consent.Exists() }

// ConsentIDs returns the ids to look stored consent up by, in order: the
// event's userId, then its anonymousId (either may be "").
func (d *Doc) ConsentIDs() (userID, anonymousID string) {
	d.scan()
	return d.userID, d.anonymousID
}

// categoryPreferences returns the event's category preferences object,
// accepting the singular "categoryPreference" the Segment docs also use.
func (d *Doc) categoryPreferences() gjson.Result {
	p := d.consent.Get("categoryPreferences")
	if !p.Exists() {
		p = d.consent.Get("categoryPreference")
	}
	return p
}

// consentedValue reads an event-side consent value: a boolean, or an
// object with "consented" (mParticle style).
func consentedValue(v gjson.Result) bool {
	if v.IsObject() {
		return v.Get("consented").Bool()
	}
	return v.Type == gjson.True
}

// CompareConsent compares the event's consent with the stored record and
// appends one [abi.Entry] per category or purpose that differs or that only
// one side has. Categories are compared whenever the event has
// context.consent (a category missing from the event counts as not carried);
// purposes only when the event carries context.consent.consent_state.
//
// It returns [abi.ConsentNoEventConsent] when the event has no
// context.consent, [abi.ConsentSame] when nothing differs and
// [abi.ConsentDiffers] otherwise.
func (d *Doc) CompareConsent(dst []byte, rec *consent.Record) ([]byte, abi.ConsentStatus) {
	d.scan()
	if !d.consent.Exists() {
		return dst, abi.ConsentNoEventConsent
	}
	start := len(dst)
	prefs := d.categoryPreferences()
	matched := 0
	prefs.ForEach(func(k, v gjson.Result) bool {
		ev := consentedValue(v)
		flags := abi.FlagInEvent
		if ev {
			flags |= abi.FlagEventConsented
		}
		c, ok := rec.Category(k.Str)
		if !ok {
			dst = abi.AppendEntry(dst, flags, k.Str, "", 0)
			return true
		}
		matched++
		if c.Consented != ev {
			flags |= abi.FlagInStored
			if c.Consented {
				flags |= abi.FlagStoredConsented
			}
			dst = abi.AppendEntry(dst, flags, k.Str, "", c.Timestamp)
		}
		return true
	})
	if matched < len(rec.Categories) {
		for _, c := range rec.Categories {
			if prefs.IsObject() && hasKey(prefs, c.Name) {
				continue
			}
			flags := abi.FlagInStored
			if c.Consented {
				flags |= abi.FlagStoredConsented
			}
			dst = abi.AppendEntry(dst, flags, c.Name, "", c.Timestamp)
		}
	}
	if state := d.consent.Get("consent_state"); state.IsObject() {
		dst = comparePurposes(dst, state, rec)
	}
	if len(dst) == start {
		return dst, abi.ConsentSame
	}
	return dst, abi.ConsentDiffers
}

func comparePurposes(dst []byte, state gjson.Result, rec *consent.Record) []byte {
	matched := 0
	state.ForEach(func(reg, purposes gjson.Result) bool {
		purposes.ForEach(func(name, v gjson.Result) bool {
			ev := consentedValue(v)
			flags := abi.FlagPurpose | abi.FlagInEvent
			if ev {
				flags |= abi.FlagEventConsented
			}
			p, ok := rec.Purpose(reg.Str, name.Str)
			if !ok {
				dst = abi.AppendEntry(dst, flags, reg.Str, name.Str, 0)
				return true
			}
			matched++
			if p.Consented != ev {
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
	if matched < len(rec.Purposes) {
		for _, p := range rec.Purposes {
			if regs := state.Get(gjson.Escape(p.Regulation)); regs.IsObject() && hasKey(regs, p.Name) {
				continue
			}
			flags := abi.FlagPurpose | abi.FlagInStored
			if p.Consented {
				flags |= abi.FlagStoredConsented
			}
			dst = abi.AppendEntry(dst, flags, p.Regulation, p.Name, p.Timestamp)
		}
	}
	return dst
}

// hasKey reports whether obj has the key, comparing keys exactly (no path
// syntax, so names with dots or wildcards are safe).
func hasKey(obj gjson.Result, key string) bool {
	found := false
	obj.ForEach(func(k, _ gjson.Result) bool {
		found = k.Str == key
		return !found
	})
	return found
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
