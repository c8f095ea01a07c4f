package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/pipeline/destfilter"
	"github.com/insertfn/insertfn/internal/pipeline/fql"
)

// The destination filter commands: trying FQL offline, and a running
// server's filters through its admin API.
var (
	filterCmd = &command{
		name:  "filter",
		short: "try an FQL expression or a list of destination filters on an event",
		usage: `Usage: insertfn filter test --if 'FQL' --event EVENT.json [--json]
       insertfn filter test --filters FILE.json|yaml --event EVENT.json [--json]

Evaluates a destination filter's condition, written in Segment's FQL, on
an event, without a server, and prints whether it matches, its IR (what
Segment's evaluator @segment/tsub takes), and why: each comparison and
function call with the values it read from the event. An expression that
does not parse is shown with a caret under the position.

With --filters, applies a list of filters (as destinations[].filters has
them in the configuration, or as 'insertfn filters DESTINATION --json'
prints them) in order, and prints what each did and the event the
destination would get.

Flags:
  --if FQL              the expression
  --filters FILE        a list of filters, JSON or YAML ("-": standard input)
  --event EVENT.json    the event, a JSON object (or the JSON itself when it
                        starts with '{')
  --json                print the admin API's answer (POST /admin/filters/test)

Exit status: 0 the expression matches (with --filters: the event gets
through), 1 it does not (the event is dropped), 2 bad usage or input (an
expression that does not parse, filters that do not compile, an event that
is not a JSON object).
`,
		run: runFilter,
	}
	filtersCmd = &command{
		name:  "filters",
		short: "list or set a destination's filters on a running server",
		usage: `Usage: insertfn filters DESTINATION [--json] [admin flags]
       insertfn filters DESTINATION --set FILE.json|yaml [admin flags]
       insertfn filters DESTINATION --reset [admin flags]

Lists the filters DESTINATION applies now; --json prints them as the list
--set takes.

--set replaces them with the list in FILE (JSON or YAML: a list, or a
mapping whose filters key holds it, as in the configuration; "-" reads
standard input), checked as at start: a list that does not compile is
refused with each filter, key and FQL position, and the filters in place
stay. Filters set this way outlive restarts and apply instead of the
configuration's, until --reset goes back to the configuration's.
` + adminFlagsHelp,
		run: runFilters,
	}
)

func runFilter(c *command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "test" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprint(stdout, c.usage)
			return exitOK
		}
		return usageError(c, stderr, "want a subcommand: insertfn filter test --if 'FQL' --event EVENT.json")
	}
	var expr, filtersFile, eventArg string
	var asJSON bool
	fs := newFlagSet("filter test")
	fs.StringVar(&expr, "if", "", "")
	fs.StringVar(&filtersFile, "filters", "", "")
	fs.StringVar(&eventArg, "event", "", "")
	fs.BoolVar(&asJSON, "json", false, "")
	pos, code, ok := parseArgs(c, fs, args[1:], stdout, stderr)
	if !ok {
		return code
	}
	switch {
	case len(pos) > 0:
		return usageError(c, stderr, fmt.Sprintf("unexpected argument %q (quote the expression: --if 'type = \"track\"')", pos[0]))
	case eventArg == "":
		return usageError(c, stderr, "--event is required")
	case (expr == "") == (filtersFile == ""):
		return usageError(c, stderr, "want one of --if and --filters")
	}
	event, err := readObject("event", eventArg)
	if err != nil {
		fmt.Fprintf(stderr, "insertfn filter test: %v\n", err)
		return exitUsage
	}
	req := admin.FilterTestRequest{If: expr, Event: event}
	if filtersFile != "" {
		if req.Filters, err = readFilters(filtersFile); err != nil {
			fmt.Fprintf(stderr, "insertfn filter test: %v\n", err)
			return exitUsage
		}
	}
	res, err := admin.TestFilters(req)
	var se *fql.SyntaxError
	switch {
	case errors.As(err, &se):
		fmt.Fprintf(stderr, "insertfn filter test: --if does not parse: %v\n%s", se, caret(expr, se.Pos))
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "insertfn filter test: %v\n", err)
		return exitUsage
	}
	if asJSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else if res.Match != nil {
		printMatch(stdout, res)
	} else {
		printOutcomes(stdout, res)
	}
	if res.Match != nil && *res.Match || res.Delivered != nil && *res.Delivered {
		return exitOK
	}
	return exitFail
}

// caret returns the line of expr holding byte offset pos, indented, and
// a caret under pos.
func caret(expr string, pos int) string {
	pos = max(0, min(pos, len(expr)))
	start := strings.LastIndexByte(expr[:pos], '\n') + 1
	end := strings.IndexByte(expr[pos:], '\n')
	if end < 0 {
		end = len(expr)
	} else {
		end += pos
	}
	line := expr[start:end]
	var pad strings.Builder
	for _, r := range expr[start:pos] {
		if r == '\t' {
			pad.WriteByte('\t') // the same width as the tab above it
		} else {
			pad.WriteByte(' ')
		}
	}
	return "  " + line + "\n  " + pad.String() + "^\n"
}

// printMatch prints an expression's answer and why.
func printMatch(w io.Writer, res admin.FilterTestResult) {
	fmt.Fprintf(w, "match: %v\nIR:    %s\n", *res.Match, res.IR)
	if len(res.Steps) > 0 {
		fmt.Fprintln(w, "why:")
		printSteps(w, res.Steps, "  ")
	}
}

// printSteps prints the steps of an expression at indent: each with its
// value, the fields it read under the outermost ones.
func printSteps(w io.Writer, steps []fql.Step, indent string) {
	for _, s := range steps {
		in := indent + strings.Repeat("  ", s.Depth)
		note := ""
		if r := string(s.Result); s.Depth == 0 && r != "true" && r != "false" {
			note = " (as a condition: false; only true is true)"
		}
		fmt.Fprintf(w, "%s%s → %s%s\n", in, s.Expr, shortJSON(s.Result), note)
		if s.Depth > 0 {
			continue // its fields are under the step it is in
		}
		for _, f := range s.Fields {
			if f.Absent {
				fmt.Fprintf(w, "%s    %s is absent (read as null)\n", in, f.Path)
				continue
			}
			fmt.Fprintf(w, "%s    %s = %s\n", in, f.Path, shortJSON(f.Value))
		}
	}
}

// shortJSON returns v compacted, cut after 120 bytes.
func shortJSON(v json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		b.Reset()
		b.Write(v)
	}
	s := b.String()
	const limit = 120
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "… (" + strconv.Itoa(len(s)) + " bytes)"
	}
	return s
}

// printOutcomes prints what each filter of a list did, and the event.
func printOutcomes(w io.Writer, res admin.FilterTestResult) {
	for _, f := range res.Filters {
		match := "matches"
		if !f.Match {
			match = "does not match"
		}
		fmt.Fprintf(w, "%s (%s): %s, %s\n", f.Name, f.Action, match, f.Outcome)
		printSteps(w, f.Steps, "    ")
	}
	if !*res.Delivered {
		fmt.Fprintf(w, "dropped by %s\n", res.DroppedBy)
		return
	}
	fmt.Fprintf(w, "delivered:\n%s\n", indentJSON(res.Event))
}

// readFilters reads a list of filters from a file ("-": standard input),
// JSON or YAML: a list, or a mapping whose filters key holds one.
func readFilters(name string) ([]destfilter.Filter, error) {
	data, err := readInput(name, admin.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Filters []destfilter.Filter `yaml:"filters"`
	}
	var list []destfilter.Filter
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '[' {
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&list); err != nil {
			return nil, fmt.Errorf("%s: %v (want a list of filters: [{\"name\": ..., \"if\": ..., \"action\": ...}])", inputName(name), err)
		}
		return list, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var node yaml.Node
	if err := dec.Decode(&node); err != nil {
		return nil, fmt.Errorf("%s: %v (want a list of filters, JSON or YAML)", inputName(name), err)
	}
	if len(node.Content) == 1 && node.Content[0].Kind == yaml.MappingNode {
		err = decodeStrict(&node, &doc)
		list = doc.Filters
	} else {
		err = decodeStrict(&node, &list)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v (want a list of filters, or a mapping with filters: [...])", inputName(name), err)
	}
	if list == nil {
		list = []destfilter.Filter{}
	}
	return list, nil
}

// decodeStrict decodes a YAML document into v, refusing unknown keys.
func decodeStrict(node *yaml.Node, v any) error {
	b, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func runFilters(c *command, args []string, stdout, stderr io.Writer) int {
	var setFile string
	var reset, asJSON bool
	af, pos, code, ok := parseAdmin(c, args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&setFile, "set", "", "")
		fs.BoolVar(&reset, "reset", false, "")
		fs.BoolVar(&asJSON, "json", false, "")
	})
	if !ok {
		return code
	}
	switch {
	case len(pos) != 1:
		return usageError(c, stderr, "want one destination")
	case setFile != "" && reset:
		return usageError(c, stderr, "--set and --reset go separately")
	}
	dest := pos[0]
	var filters []destfilter.Filter
	var err error
	if setFile != "" {
		if filters, err = readFilters(setFile); err != nil {
			fmt.Fprintf(stderr, "insertfn filters: %v\n", err)
			return exitUsage
		}
	}
	cl, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "insertfn filters: %v\n", err)
		return exitUsage
	}
	ctx := context.Background()
	switch {
	case setFile != "":
		filters, err = cl.SetFilters(ctx, dest, filters)
	case reset:
		filters, err = cl.ResetFilters(ctx, dest)
	default:
		filters, err = cl.GetFilters(ctx, dest)
	}
	if err != nil {
		return adminFailed(stderr, "filters", err)
	}
	if asJSON {
		if filters == nil {
			filters = []destfilter.Filter{}
		}
		b, _ := json.MarshalIndent(filters, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return exitOK
	}
	switch {
	case setFile != "":
		fmt.Fprintf(stdout, "%s: %d filter(s) set; they outlive restarts and apply instead of the configuration's (--reset goes back to those)\n", dest, len(filters))
	case reset:
		fmt.Fprintf(stdout, "%s: the configuration's filters apply again\n", dest)
	}
	printFilters(stdout, dest, filters)
	return exitOK
}

// printFilters prints a destination's filters, one a line.
func printFilters(w io.Writer, dest string, filters []destfilter.Filter) {
	if len(filters) == 0 {
		fmt.Fprintf(w, "%s: no filters\n", dest)
		return
	}
	for i, f := range filters {
		line := fmt.Sprintf("%d. %s: %s", i+1, f.Name, f.Action)
		switch f.Action {
		case destfilter.Sample:
			line += fmt.Sprintf(" %g%%", f.Percent*100)
			if f.Path != "" {
				line += " by " + f.Path
			}
		case destfilter.DropProperties, destfilter.AllowProperties:
			b, _ := json.Marshal(f.Fields)
			line += " " + string(b)
		}
		if strings.TrimSpace(f.If) != "" {
			line += "  if " + f.If
		} else {
			line += "  (every event)"
		}
		if f.Disabled {
			line += "  [disabled]"
		}
		fmt.Fprintln(w, line)
	}
}
