// Command consent-match is the seed's Source Insert Function: it looks the
// user's stored consent up, compares it with the event's
// context.consent.categoryPreferences, and drops the event with "Consent
// mismatch" when a category known to both differs.
//
// Regulation purposes (context.consent.consent_state, GDPR and CCPA) are
// not part of the seed's check; with "comparePurposes": true a purpose
// known to both sides that differs drops the event too.
//
// Settings:
//
//	{"comparePurposes": true | false}           default false
//	{"missingRecord": "pass" | "drop"}          default "pass"
//	{"missingConsent": "pass" | "drop"}         default "pass": an event without context.consent
//	{"storeUnavailable": "retry" | "drop" | "pass"}  default "retry"
package main

import (
	"errors"
	"fmt"

	"github.com/insertfn/insertfn/sdk"
)

func init() { sdk.Handle(Handlers) }

func main() {}

// errMismatch is made once: returning it costs nothing per event, where
// sdk.DropEvent("...") in the handler would allocate on every drop.
var errMismatch = sdk.DropEvent("Consent mismatch")

// Handlers check every event type.
var Handlers = sdk.Handlers{Any: Check}

// Check drops an event whose consent disagrees with the stored consent.
func Check(e *sdk.Event) error {
	// ConsentConflicts, not CompareConsent: only the answer is needed, and
	// building the list of differences would allocate on every drop. The
	// setting is read only when a purpose differs, not on every event.
	categories, purposes, err := e.ConsentConflicts("")
	switch {
	case err == nil:
		if categories || purposes && e.Settings().Bool("comparePurposes", false) {
			return errMismatch
		}
		return nil
	case errors.Is(err, sdk.ErrNoRecord), errors.Is(err, sdk.ErrNoID):
		return policy(e, "missingRecord", "pass", "No stored consent")
	case errors.Is(err, sdk.ErrNoEventConsent):
		return policy(e, "missingConsent", "pass", "No consent in event")
	default:
		return policy(e, "storeUnavailable", "retry", "Consent store unavailable")
	}
}

// policy applies the setting that decides a case: pass, drop or retry.
func policy(e *sdk.Event, setting, def, reason string) error {
	p := e.Settings().String(setting)
	if p == "" {
		p = def
	}
	switch p {
	case "pass":
		return nil
	case "drop":
		return sdk.DropEvent(reason)
	case "retry":
		return sdk.RetryError(reason)
	}
	// A typo must not let events through: refuse it loudly.
	return fmt.Errorf("setting %s: %q is not one of pass, drop, retry", setting, p)
}
