// Command consent-restamp corrects an event's consent instead of dropping
// it: it overwrites context.consent.categoryPreferences with the person's
// stored categories (as booleans) and sets context.consent.restamped = true,
// but only when that changes something. Categories the event carries and
// the store does not know are removed; an event without context.consent
// gets the stored categories. The event's consent_state is left alone.
//
// The event passes unchanged when no consent is stored for its ids or the
// stored record has no categories. An unavailable consent store gives a
// RetryError; after the retries the function's failure policy applies.
//
// Settings: none.
package main

import (
	"errors"

	"github.com/insertfn/insertfn/sdk"
)

func init() { sdk.Handle(Handlers) }

func main() {}

// Handlers restamp every event type.
var Handlers = sdk.Handlers{Any: Restamp}

// Restamp writes the stored categories onto the event when they differ.
func Restamp(e *sdk.Event) error {
	diff, err := e.CompareConsent("")
	switch {
	case err == nil:
		if !categoriesDiffer(diff) {
			return nil // already the stored truth
		}
	case !errors.Is(err, sdk.ErrNoEventConsent): // with no consent in the event, stamp it
		return lookupError(err)
	}
	stored, err := e.LookupConsent("")
	if err != nil {
		return lookupError(err)
	}
	if len(stored.Categories) == 0 {
		return nil
	}
	if err := e.Set("context.consent.categoryPreferences", stored.Categories); err != nil {
		return err
	}
	if err := e.Delete("context.consent.categoryPreference"); err != nil { // the singular alias
		return err
	}
	return e.Set("context.consent.restamped", true)
}

// categoriesDiffer reports whether any category differs; purposes do not
// count, since they are not restamped.
func categoriesDiffer(diff sdk.ConsentDiff) bool {
	for _, d := range diff {
		if d.Category != "" {
			return true
		}
	}
	return false
}

// lookupError passes an event with nobody to restamp and retries the rest.
func lookupError(err error) error {
	if errors.Is(err, sdk.ErrNoRecord) || errors.Is(err, sdk.ErrNoID) {
		return nil
	}
	return sdk.RetryError("Consent store unavailable")
}
