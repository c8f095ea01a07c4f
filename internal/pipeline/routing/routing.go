// Package routing decides which destinations receive an event, by the
// event's consent and its integrations object, as the project's
// consent-routing contract says:
//
//  1. Consent first. With no context.consent at all, or for a destination
//     mapped to no category, consent allows the destination. Otherwise it
//     allows it only if every category the destination is mapped to is true
//     in context.consent.categoryPreferences (the singular
//     categoryPreference is accepted too; so is mParticle's style, an
//     object whose consented is true, as functions read it); a category
//     missing there is false, a category given more than once is true only
//     if every copy is, and a consent object that says nothing grants
//     nothing.
//  2. Integrations second: the integrations object can only take
//     destinations away. A destination is refused if integrations[D] is
//     false, or if integrations.All is false and integrations[D] is not
//     true (an options object counts as true). Of a name the object
//     repeats, the first copy counts.
//
// A [Router] is built once from the configured destinations and used for
// every event; [Router.Route] allocates nothing.
package routing

import (
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/sdk/hostcall"
)

// Destination is what routing knows of one destination.
type Destination struct {
	// Name is the destination's name as the integrations object spells it
	// (case-sensitive): "Google Ads", "Amplitude", "webhook".
	Name string
	// Categories are the consent categories the destination is mapped to
	// (case-sensitive, as the CMP sends them: "Advertising", "C0004").
	// A destination with none is unmapped: consent does not restrict it.
	Categories []string
}

// Outcome is what routing decided for one destination.
type Outcome uint8

// Outcomes of [Router.Route].
const (
	// Deliver: the destination receives the event.
	Deliver Outcome = iota
	// FilteredByConsent: the person did not consent to every category the
	// destination is mapped to ("filtered by end user consent").
	FilteredByConsent
	// FilteredByIntegrations: the event's integrations object refused the
	// destination.
	FilteredByIntegrations
)

// String returns the outcome's name as metrics and logs spell it.
func (o Outcome) String() string {
	switch o {
	case Deliver:
		return "deliver"
	case FilteredByConsent:
		return "filtered_consent"
	case FilteredByIntegrations:
		return "filtered_integrations"
	}
	return "unknown"
}

// Router routes events to a fixed list of destinations. It is safe for
// concurrent use.
type Router struct {
	dests []Destination
}

// New returns a Router for dests, in their order: [Router.Route] reports
// one outcome per destination at the same index. New keeps its own copy.
func New(dests []Destination) *Router {
	r := &Router{dests: make([]Destination, len(dests))}
	for i, d := range dests {
		r.dests[i] = Destination{Name: d.Name, Categories: append([]string(nil), d.Categories...)}
	}
	return r
}

// Destinations returns the router's destinations, in order. The slice is
// shared: do not change it.
func (r *Router) Destinations() []Destination { return r.dests }

// consentState is the state of an event's consent object.
type consentState uint8

const (
	consentAbsent  consentState = iota // no context.consent: no enforcement
	consentPresent                     // categories as given; missing ones are false
)

// Route decides, for each destination of r, whether event goes to it.
//
// # Parameters
//   - event: the event JSON. Route does not keep it. Malformed JSON is
//     read as far as it goes (the ingest rejects it before routing).
//   - out: where to put the outcomes; it is resliced to the number of
//     destinations and reused when its capacity allows.
//
// # Results
//
// out[i] is the outcome for the i-th destination. Route allocates nothing
// when out has the capacity.
func (r *Router) Route(event []byte, out []Outcome) []Outcome {
	if cap(out) < len(r.dests) {
		out = make([]Outcome, len(r.dests))
	}
	out = out[:len(r.dests)]

	// A string view of the event: gjson then returns substrings of it
	// instead of copies. Nothing here outlives this call.
	js := unsafe.String(unsafe.SliceData(event), len(event))

	// Two lookups, each stopping at its member: the server stores events
	// with their integrations before their context, and context.consent
	// first in the context, so neither scans past properties, traits or
	// the rest of the context. A repeated consent or categoryPreferences
	// key reads as gjson.Get reads it (the first), as a function's consent
	// helpers do; a repeated category grants only if every copy does.
	var prefs members
	state := readConsent(js, &prefs)
	integrationsObj := gjson.Get(js, "integrations")

	var integrations members
	hasIntegrations := integrations.read(integrationsObj)
	allOff := false
	if hasIntegrations {
		typ, _ := integrations.get("All")
		allOff = typ == gjson.False
	}

	for i := range r.dests {
		d := &r.dests[i]
		out[i] = Deliver
		if state == consentPresent && len(d.Categories) > 0 {
			for _, c := range d.Categories {
				if !prefs.granted(c) {
					out[i] = FilteredByConsent
					break
				}
			}
			if out[i] != Deliver {
				continue
			}
		}
		if hasIntegrations {
			typ, ok := integrations.get(d.Name)
			on := ok && typ != gjson.False
			if (ok && typ == gjson.False) || (allOff && !on) {
				out[i] = FilteredByIntegrations
			}
		}
	}
	return out
}

// readConsent reads the event's context.consent into prefs and returns
// its state.
func readConsent(js string, prefs *members) consentState {
	c := gjson.Get(js, "context.consent")
	if !c.Exists() {
		return consentAbsent
	}
	if c.IsObject() {
		p := c.Get("categoryPreferences")
		if !p.Exists() {
			p = c.Get("categoryPreference")
		}
		prefs.read(p) // not an object: says nothing, grants nothing
	}
	return consentPresent
}

// Withheld returns the consent categories of the i-th destination that
// event's consent does not grant, by the rules of [Router.Route]: the
// reason Route filtered the destination by consent (none when it did
// not). It is meant for explaining an outcome, not for every event: it
// allocates.
func (r *Router) Withheld(event []byte, i int) []string {
	d := &r.dests[i]
	var prefs members
	if readConsent(unsafe.String(unsafe.SliceData(event), len(event)), &prefs) == consentAbsent {
		return nil
	}
	var out []string
	for _, c := range d.Categories {
		if !prefs.granted(c) {
			out = append(out, c)
		}
	}
	return out
}

// inlineMembers is how many members of an object [members] holds without
// going back to the JSON.
const inlineMembers = 24

// members is a JSON object read once: its first members by exact key (no
// gjson path syntax: names may contain dots, stars or spaces), so that
// looking up every destination's categories does not scan the JSON again.
type members struct {
	n     int
	keys  [inlineMembers]string
	types [inlineMembers]gjson.Type
	yes   [inlineMembers]bool // the value grants consent (hostcall.Consented)
	obj   gjson.Result        // set when the object has more members than fit
}

// read loads obj's members and reports whether obj is an object.
func (m *members) read(obj gjson.Result) bool {
	if !obj.IsObject() {
		return false
	}
	obj.ForEach(func(k, v gjson.Result) bool {
		if m.n == inlineMembers {
			m.obj = obj
			return false
		}
		m.keys[m.n], m.types[m.n] = k.Str, v.Type
		m.yes[m.n] = hostcall.Consented(v)
		m.n++
		return true
	})
	return true
}

// get returns the JSON type of the member called name and whether there
// is one. Of a key the object repeats, the first copy counts, as gjson,
// the functions and the consent store read it (the ingest keeps only
// that copy in what it stores; see the ingest package).
func (m *members) get(name string) (gjson.Type, bool) {
	for i := range m.n {
		if m.keys[i] == name {
			return m.types[i], true
		}
	}
	if m.obj.Exists() {
		v := key(m.obj, name)
		return v.Type, v.Exists()
	}
	return gjson.Null, false
}

// granted reports whether the object has a member called name and every
// member of that name is true: a repeated category grants only if each copy
// does, as the consent helpers of functions read it, since a function, this
// router and a destination's JSON decoder may each read a different copy.
func (m *members) granted(name string) bool {
	found := false
	if m.obj.Exists() {
		m.obj.ForEach(func(k, v gjson.Result) bool {
			if k.Str == name {
				if found = hostcall.Consented(v); !found {
					return false
				}
			}
			return true
		})
		return found
	}
	for i := range m.n {
		if m.keys[i] == name {
			if !m.yes[i] {
				return false
			}
			found = true
		}
	}
	return found
}

// key returns the first member of object obj whose key is exactly name
// (no gjson path syntax: names may contain dots, stars or spaces).
func key(obj gjson.Result, name string) gjson.Result {
	var found gjson.Result
	if !obj.IsObject() {
		return found
	}
	obj.ForEach(func(k, v gjson.Result) bool {
		if k.Str == name {
			found = v
			return false
		}
		return true
	})
	return found
}
