package sdk

import (
	"errors"

	"github.com/insertfn/insertfn/sdk/abi"
)

// Errors of consent lookups and comparisons. A function decides what each
// means for the event (its policy); ErrConsentUnavailable usually deserves a
// RetryError or the function's failure policy.
var (
	// ErrNoRecord: no consent is stored for the id.
	ErrNoRecord = errors.New("sdk: no stored consent for this id")
	// ErrNoEventConsent: the event carries no context.consent (compare only).
	ErrNoEventConsent = errors.New("sdk: the event carries no context.consent")
	// ErrNoID: the event has neither userId nor anonymousId to look up.
	ErrNoID = errors.New("sdk: the event has neither userId nor anonymousId")
	// ErrConsentUnavailable: the consent store failed or timed out.
	ErrConsentUnavailable = errors.New("sdk: the consent store is unavailable")
)

func consentError(s abi.ConsentStatus) error {
	switch s {
	case abi.ConsentFound, abi.ConsentSame, abi.ConsentDiffers:
		return nil
	case abi.ConsentNoRecord:
		return ErrNoRecord
	case abi.ConsentNoEventConsent:
		return ErrNoEventConsent
	case abi.ConsentNoID:
		return ErrNoID
	}
	return ErrConsentUnavailable
}

// StoredConsent is a person's stored consent, as a function sees it.
type StoredConsent struct {
	// Categories are the category preferences, flattened to booleans.
	Categories map[string]bool
	// Purposes are the regulation purposes (GDPR, CCPA, ...).
	Purposes []PurposeConsent
}

// PurposeConsent is one stored purpose under a regulation.
type PurposeConsent struct {
	Regulation string // "gdpr", "ccpa", ...
	Purpose    string
	Consented  bool
	Timestamp  int64 // Unix milliseconds
}

// Purpose returns the stored decision for a regulation's purpose.
func (c *StoredConsent) Purpose(regulation, purpose string) (consented, ok bool) {
	for _, p := range c.Purposes {
		if p.Regulation == regulation && p.Purpose == purpose {
			return p.Consented, true
		}
	}
	return false, false
}

// GDPR returns the stored decision for a GDPR purpose.
func (c *StoredConsent) GDPR(purpose string) (consented, ok bool) { return c.Purpose("gdpr", purpose) }

// CCPAOptedOut reports whether the person opted out of the sale of their
// data under CCPA (purpose data_sale_opt_out consented); ok is false when no
// CCPA decision is stored.
func (c *StoredConsent) CCPAOptedOut() (optedOut, ok bool) {
	return c.Purpose("ccpa", "data_sale_opt_out")
}

// LookupConsent returns the stored consent of an id; "" means the event's
// own ids (its userId, else its anonymousId). The errors are [ErrNoRecord],
// [ErrNoID] and [ErrConsentUnavailable].
func (e *Event) LookupConsent(id string) (*StoredConsent, error) {
	buf := e.buffer(0)
	status, n := e.host.ConsentLookup(id, buf)
	if n > len(buf) {
		buf = e.buffer(n)
		if status, n = e.host.ConsentLookup(id, buf); n > len(buf) {
			return nil, ErrConsentUnavailable
		}
	}
	b := buf[:n]
	if err := consentError(status); err != nil {
		return nil, err
	}
	c := &StoredConsent{Categories: make(map[string]bool)}
	var en abi.Entry
	for ok := true; len(b) > 0 && ok; {
		if b, ok = abi.DecodeEntry(b, &en); !ok {
			return nil, ErrConsentUnavailable
		}
		if en.IsPurpose() {
			c.Purposes = append(c.Purposes, PurposeConsent{Regulation: string(en.Name), Purpose: string(en.Purpose),
				Consented: en.StoredConsented(), Timestamp: en.Timestamp})
		} else {
			c.Categories[string(en.Name)] = en.StoredConsented()
		}
	}
	return c, nil
}

// StoredPurpose reports the stored decision for one purpose of a regulation
// ("ccpa", "data_sale_opt_out") of an id ("" for the event's own ids); ok
// is false when the record holds no such decision. It allocates nothing,
// where [Event.LookupConsent] builds the whole record (a map and a string
// per entry, costly in WebAssembly): use it when one decision is all the
// function needs. The errors are those of LookupConsent.
func (e *Event) StoredPurpose(id, regulation, purpose string) (consented, ok bool, err error) {
	buf := e.buffer(0)
	status, n := e.host.ConsentLookup(id, buf)
	if n > len(buf) {
		buf = e.buffer(n)
		if status, n = e.host.ConsentLookup(id, buf); n > len(buf) {
			return false, false, ErrConsentUnavailable
		}
	}
	if err := consentError(status); err != nil {
		return false, false, err
	}
	var en abi.Entry
	for b, more := buf[:n], true; len(b) > 0; {
		if b, more = abi.DecodeEntry(b, &en); !more {
			return false, false, ErrConsentUnavailable
		}
		if en.IsPurpose() && string(en.Name) == regulation && string(en.Purpose) == purpose {
			return en.StoredConsented(), true, nil
		}
	}
	return false, false, nil
}

// ConsentDifference is one category or purpose on which the event and the
// stored record disagree, or that only one of them has.
type ConsentDifference struct {
	Category        string // set for a category
	Regulation      string // set for a purpose
	Purpose         string // set for a purpose
	InEvent         bool   // the event carries it
	EventConsented  bool
	InStored        bool // the stored record has it
	StoredConsented bool
	StoredAt        int64 // Unix milliseconds of the stored decision
}

// IsPurpose reports whether the difference is about a regulation purpose
// (Regulation and Purpose set) rather than a category.
func (d ConsentDifference) IsPurpose() bool { return d.Regulation != "" || d.Purpose != "" }

// Conflict reports whether both sides know the entry and disagree.
func (d ConsentDifference) Conflict() bool {
	return d.InEvent && d.InStored && d.EventConsented != d.StoredConsented
}

// ConsentDiff is the result of [Event.CompareConsent]: empty when the event's
// consent agrees with the stored record.
type ConsentDiff []ConsentDifference

// Mismatch reports whether any category or purpose known to both sides
// differs: the seed function's "Consent mismatch".
func (d ConsentDiff) Mismatch() bool {
	for _, x := range d {
		if x.Conflict() {
			return true
		}
	}
	return false
}

// ConsentMismatch compares like [Event.CompareConsent] and reports only
// whether a category or purpose known to both sides differs
// ([ConsentDiff.Mismatch]). It allocates nothing, where CompareConsent
// builds the list of differences (a slice and a string per entry, costly
// in WebAssembly): use it when the answer is all the function needs.
func (e *Event) ConsentMismatch(id string) (bool, error) {
	categories, purposes, err := e.ConsentConflicts(id)
	return categories || purposes, err
}

// ConsentConflicts is [Event.ConsentMismatch] with categories and
// regulation purposes told apart: categories reports whether a category
// known to both sides differs (the seed function's check), purposes
// whether a purpose of consent_state does. Like ConsentMismatch it
// allocates nothing; its errors are CompareConsent's.
func (e *Event) ConsentConflicts(id string) (categories, purposes bool, err error) {
	buf := e.buffer(0)
	status, n := e.host.ConsentCompare(id, buf)
	if n > len(buf) {
		buf = e.buffer(n)
		if status, n = e.host.ConsentCompare(id, buf); n > len(buf) {
			return false, false, ErrConsentUnavailable
		}
	}
	if err := consentError(status); err != nil {
		return false, false, err
	}
	var en abi.Entry
	for b, ok := buf[:n], true; len(b) > 0 && !(categories && purposes); {
		if b, ok = abi.DecodeEntry(b, &en); !ok {
			return false, false, ErrConsentUnavailable
		}
		if en.InEvent() && en.InStored() && en.EventConsented() != en.StoredConsented() {
			if en.IsPurpose() {
				purposes = true
			} else {
				categories = true
			}
		}
	}
	return categories, purposes, nil
}

// CompareConsent compares the event's consent with the stored consent of an
// id ("" for the event's own ids) on the host, and returns what differs.
// The errors are [ErrNoRecord], [ErrNoEventConsent], [ErrNoID] and
// [ErrConsentUnavailable].
func (e *Event) CompareConsent(id string) (ConsentDiff, error) {
	// Written out rather than shared with LookupConsent: in WebAssembly
	// every call level costs, and this is the hot path of most functions.
	buf := e.buffer(0)
	status, n := e.host.ConsentCompare(id, buf)
	if n > len(buf) {
		buf = e.buffer(n)
		if status, n = e.host.ConsentCompare(id, buf); n > len(buf) {
			return nil, ErrConsentUnavailable
		}
	}
	b := buf[:n]
	if err := consentError(status); err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, nil
	}
	var diff ConsentDiff
	var en abi.Entry
	for ok := true; len(b) > 0 && ok; {
		if b, ok = abi.DecodeEntry(b, &en); !ok {
			return nil, ErrConsentUnavailable
		}
		d := ConsentDifference{InEvent: en.InEvent(), EventConsented: en.EventConsented(),
			InStored: en.InStored(), StoredConsented: en.StoredConsented(), StoredAt: en.Timestamp}
		if en.IsPurpose() {
			d.Regulation, d.Purpose = string(en.Name), string(en.Purpose)
		} else {
			d.Category = string(en.Name)
		}
		diff = append(diff, d)
	}
	return diff, nil
}
