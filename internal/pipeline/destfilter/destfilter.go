// Package destfilter applies a destination's filters, as Segment's
// Destination Filters do: an ordered list per destination, each with a
// name, a condition in FQL (package fql) and an action (drop the events
// that match, keep only those, keep a share of them, drop or allow only
// some of their properties). Filters sit after consent routing and before
// the destination's own functions, so they can only take away: events,
// or properties of events.
package destfilter

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/insertfn/insertfn/internal/pipeline/fql"
)

// Action is what a filter does with the events its condition matches.
type Action string

// Actions.
const (
	// Drop drops the events that match.
	Drop Action = "drop"
	// Keep lets only the events that match go on ("only send events
	// that match"); the others are dropped.
	Keep Action = "keep"
	// Sample keeps a share (Percent) of the events that match, the same
	// answer every time for one value of Path (a person is in or out).
	Sample Action = "sample"
	// DropProperties removes Fields from the events that match.
	DropProperties Action = "drop_properties"
	// AllowProperties keeps only Fields of the objects it names in the
	// events that match.
	AllowProperties Action = "allow_properties"
)

var actions = []Action{Drop, Keep, Sample, DropProperties, AllowProperties}

// Filter is one destination filter, as the configuration file has it
// (destinations[].filters[]).
type Filter struct {
	// Name names the filter in counts, logs and the live debugger.
	Name string `yaml:"name" json:"name"`
	// If is the condition, in FQL: `type = 'track' and event = 'Order
	// Completed'`. Empty: every event.
	If string `yaml:"if" json:"if,omitempty"`
	// Action is what to do with the events If matches.
	Action Action `yaml:"action" json:"action"`
	// Percent is, for Sample, the share of matching events kept, from 0
	// to 1 (as Segment's filters give it).
	Percent float64 `yaml:"percent" json:"percent,omitempty"`
	// Path is, for Sample, the field whose value decides (the same value,
	// the same answer): default userId, or anonymousId when the event has
	// no userId. messageId samples events rather than people.
	Path string `yaml:"path" json:"path,omitempty"`
	// Fields are, for DropProperties and AllowProperties, the names to
	// drop or to allow, by the object that holds them: {"properties":
	// ["email", "phone"], "context.traits": ["address"]}; the key "" is
	// the event itself.
	Fields map[string][]string `yaml:"fields" json:"fields,omitempty"`
	// Disabled turns the filter off without deleting it.
	Disabled bool `yaml:"disabled" json:"disabled,omitempty"`
}

// Error is a filter's configuration problem: Key is the key under the
// filter (if, action, percent, ...), as the configuration file spells it.
type Error struct {
	Key string
	Msg string
}

// Error returns "KEY: MSG".
func (e *Error) Error() string { return e.Key + ": " + e.Msg }

// ConfigKey returns the key, for the configuration's messages.
func (e *Error) ConfigKey() string { return e.Key }

// ConfigProblem returns what is wrong with it.
func (e *Error) ConfigProblem() string { return e.Msg }

// filter is a compiled Filter.
type filter struct {
	Filter
	cond *fql.Expr   // nil: every event
	path []*fql.Expr // Sample: the fields read, in order, until one has a value
	// fields: the gjson path of each object and the names, in order
	objects []string
	names   [][]string
}

// Set is a destination's compiled filters. It is immutable and safe for
// concurrent use.
type Set struct {
	filters []filter
}

// Compile checks filters and compiles them, in order.
//
// # Results
//   - the set (nil when filters is empty: nothing to apply);
//   - an *Error per problem (joined), its Key naming the filter by index:
//     "filters[2].if: fql: at position 7: expected a value ...".
func Compile(filters []Filter) (*Set, error) {
	if len(filters) == 0 {
		return nil, nil
	}
	s := &Set{}
	var errs []error
	names := make(map[string]bool)
	for i, f := range filters {
		bad := func(key, format string, args ...any) {
			errs = append(errs, &Error{Key: fmt.Sprintf("filters[%d].%s", i, key), Msg: fmt.Sprintf(format, args...)})
		}
		c := filter{Filter: f}
		switch {
		case f.Name == "":
			bad("name", "a filter needs a name (it names the filter in counts and logs)")
		case names[f.Name]:
			bad("name", "%q is the name of another filter of this destination", f.Name)
		}
		names[f.Name] = true
		if strings.TrimSpace(f.If) != "" {
			e, err := fql.Parse(f.If)
			if err != nil {
				bad("if", "%v", err)
			}
			c.cond = e
		}
		if !slices.Contains(actions, f.Action) {
			bad("action", "%q: want one of %v", f.Action, actions)
		}
		switch f.Action {
		case Sample:
			if math.IsNaN(f.Percent) || f.Percent < 0 || f.Percent > 1 {
				bad("percent", "%v: want the share kept, from 0 to 1 (0.1 keeps one in ten)", f.Percent)
			}
			c.path = []*fql.Expr{userID, anonymousID}
			if f.Path != "" {
				p, err := field(f.Path)
				if err != nil {
					bad("path", "%v", err)
				}
				c.path = []*fql.Expr{p}
			}
		case DropProperties, AllowProperties:
			if len(f.Fields) == 0 {
				bad("fields", "%s needs the names, by the object holding them: {properties: [email]}", f.Action)
			}
			objects := make([]string, 0, len(f.Fields))
			for o := range f.Fields {
				objects = append(objects, o)
			}
			slices.Sort(objects)
			for _, o := range objects {
				p := ""
				if o != "" {
					var err error
					if p, err = fieldPath(o); err != nil {
						bad("fields", "%q: %v", o, err)
					}
				}
				c.objects = append(c.objects, p)
				c.names = append(c.names, f.Fields[o])
			}
		}
		if f.Action != Sample && (f.Percent != 0 || f.Path != "") {
			bad("percent", "percent and path are for the sample action")
		}
		if f.Action != DropProperties && f.Action != AllowProperties && len(f.Fields) > 0 {
			bad("fields", "fields are for drop_properties and allow_properties")
		}
		s.filters = append(s.filters, c)
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return s, nil
}

// joinErrors joins errs so that each stays an *Error to errors.As.
type joined []error

func (j joined) Error() string {
	var b strings.Builder
	for i, e := range j {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func (j joined) Unwrap() []error { return j }

func joinErrors(errs []error) error { return joined(errs) }

// The fields a sample reads by default.
var userID, anonymousID = mustField("userId"), mustField("anonymousId")

func mustField(p string) *fql.Expr {
	e, err := field(p)
	if err != nil {
		panic(err)
	}
	return e
}

// field parses a dotted field path (names separated by dots, as FQL
// writes them, with its backslash escapes).
func field(p string) (*fql.Expr, error) {
	e, err := fql.Parse(p)
	if err != nil {
		return nil, fmt.Errorf("%q is not a field path: %v", p, err)
	}
	if _, ok := e.FieldPath(); !ok {
		return nil, fmt.Errorf("%q is not a field path (names separated by dots)", p)
	}
	return e, nil
}

// fieldPath turns a dotted field path into a gjson path.
func fieldPath(p string) (string, error) {
	e, err := field(p)
	if err != nil {
		return "", err
	}
	gp, _ := e.FieldPath()
	return gp, nil
}

// Names returns the filters' names, in order.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s.filters))
	for i, f := range s.filters {
		out[i] = f.Name
	}
	return out
}

// Apply runs the filters on event, in order, each enabled filter on the
// event as the ones before it left it.
//
// # Parameters
//   - ev: an fql.Event to read the event with (reused by the caller; Apply
//     resets it);
//   - event: the event's JSON; Apply does not change it.
//
// # Results
//   - the event to deliver (event itself when no filter changed it, else
//     a new buffer), or nil when a filter dropped it;
//   - the name of the filter that dropped it ("" when none did).
func (s *Set) Apply(ev *fql.Event, event []byte) ([]byte, string) {
	if s == nil {
		return event, ""
	}
	ev.Reset(event)
	owned := false // event is a buffer of our own
	for i := range s.filters {
		f := &s.filters[i]
		if f.Disabled {
			continue
		}
		matched := f.cond == nil || f.cond.MatchEvent(ev)
		switch f.Action {
		case Drop:
			if matched {
				return nil, f.Name
			}
		case Keep:
			if !matched {
				return nil, f.Name
			}
		case Sample:
			if matched && !f.sampled(ev) {
				return nil, f.Name
			}
		case DropProperties, AllowProperties:
			if !matched {
				continue
			}
			if out, changed := f.edit(event); changed {
				if !owned {
					out = slices.Clone(out) // sjson may return its input's array
				}
				event, owned = out, true
				ev.Reset(event)
			}
		}
	}
	return event, ""
}

// sampled reports whether the event (read into ev) is among the Percent
// kept: a hash of the JSON of the value of the first of path the event
// has (not null), mapped to [0, 1).
func (f *filter) sampled(ev *fql.Event) bool {
	if f.Percent >= 1 {
		return true
	}
	if f.Percent <= 0 {
		return false
	}
	var raw string
	for _, p := range f.path {
		var ok bool
		if raw, ok = p.FieldJSON(ev); ok && raw != "null" {
			break
		}
	}
	return Share(raw) < f.Percent
}

// Share maps a value (its JSON) to [0, 1), the same way everywhere: the
// point a Sample filter compares with its Percent.
func Share(raw string) float64 {
	const offset64, prime64 = 14695981039346656037, 1099511628211 // FNV-1a
	h := uint64(offset64)
	for i := 0; i < len(raw); i++ {
		h ^= uint64(raw[i])
		h *= prime64
	}
	return float64(h>>11) / (1 << 53)
}

// edit drops or allows the filter's fields in event; changed says whether
// anything was removed.
func (f *filter) edit(event []byte) ([]byte, bool) {
	changed := false
	for i, obj := range f.objects {
		var o gjson.Result
		if obj == "" {
			o = gjson.ParseBytes(event)
		} else {
			o = gjson.GetBytes(event, obj)
		}
		if !o.IsObject() {
			continue
		}
		var remove []string
		o.ForEach(func(k, _ gjson.Result) bool {
			listed := slices.Contains(f.names[i], k.Str)
			if listed == (f.Action == DropProperties) {
				remove = append(remove, k.Str)
			}
			return true
		})
		for _, name := range remove {
			p := fql.EscapeName(name)
			if obj != "" {
				p = obj + "." + p
			}
			if out, err := sjson.DeleteBytes(event, p); err == nil {
				event, changed = out, true
			}
		}
	}
	return event, changed
}
