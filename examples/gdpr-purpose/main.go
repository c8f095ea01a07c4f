// Command gdpr-purpose is a GDPR opt-in gate: it delivers an event only when
// the person's stored consent has the GDPR purpose named in the settings
// consented, and drops it otherwise, with a reason naming the purpose. A
// purpose the person never decided on is not consented. Use one instance
// per purpose (say location_collection in front of a location destination).
//
// Settings:
//
//	{"purpose": "location_collection"}   required: the GDPR purpose to require
//	{"missingRecord": "drop" | "pass"}   default "drop": no stored consent for the event's ids
//
// A missing purpose setting is a function error (the event is not delivered).
// An unavailable consent store gives a RetryError; after the retries the
// function's failure policy applies.
package main

import (
	"errors"
	"fmt"

	"github.com/insertfn/insertfn/sdk"
)

func init() { sdk.Handle(Handlers) }

func main() {}

// Handlers check every event type.
var Handlers = sdk.Handlers{Any: Check}

// Check drops an event unless the person consented to the purpose.
func Check(e *sdk.Event) error {
	purpose := e.Settings().String("purpose")
	if purpose == "" {
		return errors.New(`gdpr-purpose: the "purpose" setting is required`)
	}
	stored, err := e.LookupConsent("")
	switch {
	case errors.Is(err, sdk.ErrNoRecord), errors.Is(err, sdk.ErrNoID):
		switch p := e.Settings().String("missingRecord"); p {
		case "", "drop":
			return sdk.DropEvent("No stored consent")
		case "pass":
			return nil
		default:
			return fmt.Errorf(`gdpr-purpose: setting missingRecord is %q, want "drop" or "pass"`, p)
		}
	case err != nil:
		return sdk.RetryError("Consent store unavailable")
	}
	switch consented, ok := stored.GDPR(purpose); {
	case !ok:
		return sdk.DropEvent("No GDPR decision for " + purpose)
	case !consented:
		return sdk.DropEvent("GDPR consent refused for " + purpose)
	}
	return nil
}
