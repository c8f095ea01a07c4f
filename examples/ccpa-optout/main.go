// Command ccpa-optout honours CCPA's "do not sell my data": it drops the
// event with "CCPA opt-out" when the person's stored consent has the CCPA
// purpose data_sale_opt_out consented (as in mParticle, consented: true
// means the person opted out of sale). A record without a CCPA decision
// passes: opting out is something the person does. Use it on destinations
// that count as a data sale.
//
// Settings:
//
//	{"missingRecord": "pass" | "drop"}   default "pass": no stored consent for the event's ids
//
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

// errOptOut is made once: no allocation per drop.
var errOptOut = sdk.DropEvent("CCPA opt-out")

// Handlers check every event type.
var Handlers = sdk.Handlers{Any: Check}

// Check drops the events of people who opted out of the sale of their data.
func Check(e *sdk.Event) error {
	// StoredPurpose, not LookupConsent: one decision is all this needs, and
	// building the whole record would allocate a map and strings per event.
	optedOut, _, err := e.StoredPurpose("", "ccpa", "data_sale_opt_out")
	switch {
	case errors.Is(err, sdk.ErrNoRecord), errors.Is(err, sdk.ErrNoID):
		switch p := e.Settings().String("missingRecord"); p {
		case "", "pass":
			return nil
		case "drop":
			return sdk.DropEvent("No stored consent")
		default:
			return fmt.Errorf(`ccpa-optout: setting missingRecord is %q, want "pass" or "drop"`, p)
		}
	case err != nil:
		return sdk.RetryError("Consent store unavailable")
	}
	if optedOut {
		return errOptOut
	}
	return nil
}
