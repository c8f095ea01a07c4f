package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/internal/app"
	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/internal/delivery"
	"github.com/insertfn/insertfn/internal/ingest"
	"github.com/insertfn/insertfn/internal/pipeline"
	"github.com/insertfn/insertfn/internal/pipeline/destfilter"
)

const filterEvent = `{"type":"track","event":"Signed Up","userId":"u1","context":{"traits":{"email":"A@Example.com"}},"properties":{"plan":"pro"}}`

// TestFilterTest: an expression that matches exits 0, one that does not
// 1, and both say why with the values read from the event; one that does
// not parse exits 2 with a caret under its position.
func TestFilterTest(t *testing.T) {
	event := writeFile(t, "event.json", filterEvent)

	code, stdout, stderr := runCLI(t, "filter", "test", "--if", "lowercase(context.traits.email) = 'a@example.com' and type = 'track'", "--event", event)
	for _, want := range []string{
		"match: true\n",
		`IR:    ["and",["=",["lowercase","context.traits.email"],{"value":"a@example.com"}],["=","type",{"value":"track"}]]`,
		"  lowercase(context.traits.email) = 'a@example.com' → true\n",
		"      context.traits.email = \"A@Example.com\"\n",
		"    lowercase(context.traits.email) → \"a@example.com\"\n",
		"  type = 'track' → true\n      type = \"track\"\n",
	} {
		if code != exitOK || !strings.Contains(stdout, want) {
			t.Errorf("a match: exit %d, stdout:\n%s\nstderr: %s\nwant exit 0 and %q", code, stdout, stderr, want)
		}
	}

	code, stdout, _ = runCLI(t, "filter", "test", "--event", event, "--if", `properties.plan = 'free' or anonymousId != null`)
	for _, want := range []string{"match: false\n", "properties.plan = \"pro\"", "anonymousId is absent (read as null)"} {
		if code != exitFail || !strings.Contains(stdout, want) {
			t.Errorf("no match: exit %d, stdout:\n%s\nwant exit 1 and %q", code, stdout, want)
		}
	}

	// The caret sits under the position, on the line that holds it.
	code, stdout, stderr = runCLI(t, "filter", "test", "--event", event, "--if", "type = 'track'\n\tand event = = 'x'")
	if want := "fql: at position 28: expected a value"; code != exitUsage || stdout != "" || !strings.Contains(stderr, want) {
		t.Errorf("a syntax error: exit %d, stdout %q, stderr %q; want exit 2 and %q", code, stdout, stderr, want)
	}
	if want := "\n  \tand event = = 'x'\n  \t            ^\n"; !strings.HasSuffix(stderr, want) {
		t.Errorf("the caret:\n%s\nwant it to end with\n%s", stderr, want)
	}

	code, stdout, _ = runCLI(t, "filter", "test", "--json", "--event", filterEvent, "--if", "event = 'Signed Up'")
	var res struct {
		Match bool            `json:"match"`
		IR    json.RawMessage `json:"ir"`
	}
	err := json.Unmarshal([]byte(stdout), &res)
	var ir bytes.Buffer
	json.Compact(&ir, res.IR)
	if code != exitOK || err != nil || !res.Match || ir.String() != `["=","event",{"value":"Signed Up"}]` {
		t.Errorf("--json: exit %d, %v, %s", code, err, stdout)
	}

	for _, args := range [][]string{
		{"filter", "test", "--if", "type = 'track'"},                                 // no event
		{"filter", "test", "--if", "type = 'track'", "--event", `[1]`},               // not an object
		{"filter", "test", "--if", "type = 'track'", "--event", "/nonexistent.json"}, // no file
		{"filter", "test", "--event", event},                                         // no expression
		{"filter", "test", "--if", "type", "= 'track'", "--event", event},            // unquoted
		{"filter", "frobnicate"},
		{"filter", "test", "--event", event, "--filters", writeFile(t, "f.yaml", "- name: x\n  action: explode\n")},
	} {
		if code, _, stderr := runCLI(t, args...); code != exitUsage || stderr == "" {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
}

// TestFilterTestList: --filters applies a list in order, saying what each
// filter did; exit 0 when the event gets through, 1 when it is dropped.
func TestFilterTestList(t *testing.T) {
	event := writeFile(t, "event.json", filterEvent)
	list := writeFile(t, "filters.yaml", `filters:
  - name: no-plan
    if: type = 'track'
    action: drop_properties
    fields: {properties: [plan]}
  - name: pros
    if: properties.plan = 'pro'
    action: keep
`)
	code, stdout, stderr := runCLI(t, "filter", "test", "--filters", list, "--event", event)
	for _, want := range []string{
		"no-plan (drop_properties): matches, changed\n",
		"pros (keep): does not match, dropped\n", "properties.plan is absent", // no-plan removed it first
		"dropped by pros\n",
	} {
		if code != exitFail || !strings.Contains(stdout, want) {
			t.Errorf("exit %d, stdout:\n%s\nstderr: %s\nwant exit 1 and %q", code, stdout, stderr, want)
		}
	}
	list = writeFile(t, "filters.json", `[{"name":"no-plan","action":"drop_properties","fields":{"properties":["plan"]}}]`)
	code, stdout, _ = runCLI(t, "filter", "test", "--filters", list, "--event", event)
	if code != exitOK || !strings.Contains(stdout, "delivered:\n") || strings.Contains(stdout, `"plan"`) {
		t.Errorf("exit %d, stdout:\n%s\nwant exit 0 and the event without its plan", code, stdout)
	}
}

// TestFiltersCommand drives a running server's filters: list, set (a bad
// list refused with the position, the filters in place staying), reset.
func TestFiltersCommand(t *testing.T) {
	t.Setenv("INSERTFN_ADMIN_TOKEN", "")
	data := t.TempDir()
	c, err := config.Parse(fmt.Appendf(nil, "data: %s\n", data))
	if err != nil {
		t.Fatal(err)
	}
	c.Sources = []config.Source{{Source: ingest.Source{Name: "web", WriteKeys: []string{"k"}}}}
	c.Destinations = []config.Destination{{
		Destination: pipeline.Destination{Name: "ads", Filters: []destfilter.Filter{{Name: "from-config", If: "type = 'page'", Action: destfilter.Drop}}},
		Config:      delivery.Config{Type: "stdout"},
	}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	adminLn, _ := net.Listen("tcp", "127.0.0.1:0")
	h, err := app.Start(context.Background(), c, app.Options{Listener: ln, AdminListener: adminLn, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	flags := []string{"--admin", h.AdminAddr().String(), "--data", data}
	cli := func(args ...string) (int, string, string) { return runCLI(t, append(args, flags...)...) }

	if code, stdout, stderr := cli("filters", "ads"); code != exitOK || stdout != "1. from-config: drop  if type = 'page'\n" {
		t.Errorf("list: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	set := writeFile(t, "set.yaml", "- name: few\n  if: event = 'Scrolled'\n  action: sample\n  percent: 0.1\n- name: off\n  action: drop\n  disabled: true\n")
	code, stdout, stderr := cli("filters", "ads", "--set", set)
	if code != exitOK || !strings.Contains(stdout, "1. few: sample 10%  if event = 'Scrolled'\n2. off: drop  (every event)  [disabled]\n") {
		t.Errorf("--set: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	bad := writeFile(t, "bad.json", `[{"name":"broken","if":"event = 'a' or","action":"drop"}]`)
	code, stdout, stderr = cli("filters", "ads", "--set", bad)
	if want := `filters[0].if: fql: at position 14: expected a value`; code != exitUsage || stdout != "" || !strings.Contains(stderr, want) || !strings.Contains(stderr, `(filter "broken")`) {
		t.Errorf("--set of a bad list: exit %d, stdout %q, stderr %q; want exit 2 and %q", code, stdout, stderr, want)
	}
	code, stdout, _ = cli("filters", "ads", "--json")
	var got []destfilter.Filter
	if err := json.Unmarshal([]byte(stdout), &got); code != exitOK || err != nil || len(got) != 2 || got[0].Name != "few" || got[0].Percent != 0.1 {
		t.Errorf("--json after the refused set: exit %d, %v, %s; want the list set before", code, err, stdout)
	}
	if code, stdout, _ = cli("filters", "ads", "--reset"); code != exitOK || !strings.Contains(stdout, "1. from-config: drop") {
		t.Errorf("--reset: exit %d, stdout %q", code, stdout)
	}
	if code, _, stderr = cli("filters", "nowhere"); code != exitUsage || !strings.Contains(stderr, `no destination "nowhere"`) {
		t.Errorf("an unknown destination: exit %d, stderr %q", code, stderr)
	}
}
