package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/testkit/redistest"
	"github.com/insertfn/insertfn/sdk/consent"
)

const anon123 = "23adfd82-aa0f-45a7-a756-24f2a7a4c895"

// consentCLI runs "insertfn consent ARGS --data-dir DIR" and checks its
// exit status.
func consentCLI(t *testing.T, dir string, wantCode int, args ...string) (stdout, stderr string) {
	t.Helper()
	args = append(append([]string{"consent"}, args...), "--data-dir", dir)
	code, stdout, stderr := runCLI(t, args...)
	if code != wantCode {
		t.Fatalf("insertfn %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, stdout, stderr)
	}
	return stdout, stderr
}

func decodeRecord(t *testing.T, js string) *consent.Record {
	t.Helper()
	var r consent.Record
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("record %q: %v", js, err)
	}
	return &r
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func TestConsentSetGetHistoryDelete(t *testing.T) {
	dir := t.TempDir()
	// A read of a data directory that holds no store is a mistyped path:
	// refused, and nothing is created there.
	_, stderr := consentCLI(t, dir, 1, "get", "u123")
	wantContains(t, "get from a directory without a store", stderr, "there is no store in", "is --data right?")
	if _, err := os.Stat(filepath.Join(dir, "consent")); !os.IsNotExist(err) {
		t.Errorf("get created %s: %v", filepath.Join(dir, "consent"), err)
	}

	out, _ := consentCLI(t, dir, 0, "set", "u123", "--file", testdata("consent-update.json"))
	wantContains(t, "set", out,
		"3 changes:\n",
		"  category Advertising: unset -> true (2023-11-14T22:13:20.000Z)\n",
		"  purpose ccpa.data_sale_opt_out: unset -> true (2020-01-16T18:19:50.480Z)\n",
		"aliases  "+anon123+"\n")

	_, stderr = consentCLI(t, dir, 1, "get", "u999")
	wantContains(t, "get of an unknown id", stderr, `insertfn consent get: no record for "u999"`)

	// The record, by its alias, as JSON and as text.
	out, _ = consentCLI(t, dir, 0, "get", anon123, "--json")
	r := decodeRecord(t, out)
	if r.ID != "u123" || !slices.Equal(r.Aliases, []string{anon123}) {
		t.Errorf("get --json = %s", out)
	}
	if got := r.CategoryMap(); len(got) != 2 || !got["Advertising"] || got["Analytics"] {
		t.Errorf("categories = %v", got)
	}
	if p, ok := r.Purpose("ccpa", "data_sale_opt_out"); !ok || !p.Consented || p.Timestamp != 1579198790480 {
		t.Errorf("ccpa = %+v, %v", p, ok)
	}
	out, _ = consentCLI(t, dir, 0, "get", "u123")
	wantContains(t, "get", out, "id       u123\n", "categoryPreferences\n", "  Advertising  true   2023-11-14T22:13:20.000Z\n",
		"consent_state\n", "  ccpa.data_sale_opt_out  true  2020-01-16T18:19:50.480Z\n")

	// A bare boolean from standard input is a decision taken now.
	before := time.Now().UnixMilli()
	withStdin(t, `{"categoryPreferences":{"Analytics":true}}`)
	out, _ = consentCLI(t, dir, 0, "set", "u123", "--file", "-", "--json")
	var res setResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("set --json %q: %v", out, err)
	}
	if len(res.Changes) != 1 || res.Changes[0].Name != "Analytics" || res.Changes[0].Old == nil || res.Changes[0].Old.Consented ||
		!res.Changes[0].New.Consented || res.Changes[0].New.Timestamp < before {
		t.Errorf("set --json changes = %+v", res.Changes)
	}
	if c, _ := res.Record.Category("Analytics"); !c.Consented {
		t.Errorf("set --json record = %+v", res.Record)
	}
	// The same update again changes nothing.
	out, _ = consentCLI(t, dir, 0, "set", "u123", "--file", testdata("consent-update.json"))
	wantContains(t, "set again", out, "no change")

	// History: one line per decision, oldest first.
	out, _ = consentCLI(t, dir, 0, "history", "u123")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("history: %d lines, want 4:\n%s", len(lines), out)
	}
	wantContains(t, "history line 1", lines[0], "2020-01-16T18:19:50.480Z", "purpose ccpa.data_sale_opt_out", "true", "(first)", "cli:support ticket 4711", "recorded ")
	wantContains(t, "history line 3", lines[2], "2023-11-14T22:13:20.000Z", "category Analytics", "false", "(first)")
	wantContains(t, "history line 4", lines[3], "category Analytics", "true", "(was false)", " cli ")
	out, _ = consentCLI(t, dir, 0, "history", "u123", "--json")
	var hist []consentstore.HistoryEntry
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var h consentstore.HistoryEntry
		if err := json.Unmarshal([]byte(l), &h); err != nil {
			t.Fatalf("history --json line %q: %v", l, err)
		}
		hist = append(hist, h)
	}
	if len(hist) != 4 || hist[3].Name != "Analytics" || !hist[3].Consented || !hist[3].Changed || hist[3].Source != "cli" {
		t.Errorf("history --json = %+v", hist)
	}

	// AsOf: before the change of Analytics, and before any decision.
	out, _ = consentCLI(t, dir, 0, "history", "u123", "--at", "2024-01-01T00:00:00Z", "--json")
	if r := decodeRecord(t, out); len(r.Categories) != 2 || r.CategoryMap()["Analytics"] {
		t.Errorf("history --at 2024 = %s, want Analytics false", out)
	}
	out, _ = consentCLI(t, dir, 0, "history", anon123, "--at", "2019-06-01T00:00:00+02:00")
	wantContains(t, "history --at 2019", out, "id       u123\n", "(no categories or purposes)\n")
	_, stderr = consentCLI(t, dir, 2, "history", "u123", "--at", "yesterday")
	wantContains(t, "history --at yesterday", stderr, `--at "yesterday": want an RFC 3339 time`)

	// Delete, by alias: the record, its aliases and its history go.
	out, _ = consentCLI(t, dir, 0, "delete", anon123)
	wantContains(t, "delete", out, "deleted the record of")
	consentCLI(t, dir, 1, "get", "u123")
	consentCLI(t, dir, 1, "history", "u123")
	_, stderr = consentCLI(t, dir, 1, "delete", "u123")
	wantContains(t, "delete again", stderr, `no record for "u123"`)
	out, _ = consentCLI(t, dir, 1, "delete", "u123", "--json")
	if strings.TrimSpace(out) != `{"id":"u123","deleted":false}` {
		t.Errorf("delete --json = %q", out)
	}
}

// withStdin makes os.Stdin read content for the rest of the test.
func withStdin(t *testing.T, content string) {
	t.Helper()
	path := writeFile(t, "stdin", content)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = f
	t.Cleanup(func() { os.Stdin = old; f.Close() })
}

// TestConsentImportReplace: "make run" imports its sample records with
// --replace, so that the quickstart starts from them again after the
// person changed their mind: a plain import merges (the newer change
// stays); --replace gives back exactly the file's record, with a history
// that holds only the import.
func TestConsentImportReplace(t *testing.T) {
	dir := t.TempDir()
	sample := testdata("consent.ndjson")
	consentCLI(t, dir, 0, "import", sample)
	change := writeFile(t, "change.json", `{"categoryPreferences":{"Analytics":true}}`)
	consentCLI(t, dir, 0, "set", "u123", "--file", change)

	out, _ := consentCLI(t, dir, 0, "import", sample)
	if want := sample + ": 2 lines, 2 imported, 0 failed, 0 changes\n"; out != want {
		t.Errorf("import without --replace = %q, want %q (a merge: the newer change stays)", out, want)
	}
	got, _ := consentCLI(t, dir, 0, "get", anon123, "--json")
	if !decodeRecord(t, got).CategoryMap()["Analytics"] {
		t.Errorf("after a plain import, u123 = %s; want Analytics still true", got)
	}

	out, _ = consentCLI(t, dir, 0, "import", sample, "--replace")
	if want := sample + ": 2 lines, 2 imported, 0 failed, 6 changes\n"; out != want {
		t.Errorf("import --replace = %q, want %q", out, want)
	}
	got, _ = consentCLI(t, dir, 0, "get", anon123, "--json")
	if r := decodeRecord(t, got); r.ID != "u123" || r.CategoryMap()["Analytics"] || !slices.Equal(r.Aliases, []string{anon123}) {
		t.Errorf("after import --replace, u123 = %s; want the sample record (Analytics false, its alias)", got)
	}
	hist, _ := consentCLI(t, dir, 0, "history", "u123")
	if strings.Contains(hist, "cli") || strings.Count(hist, "\n") != 3 {
		t.Errorf("history after import --replace:\n%s\nwant the import's three decisions only", hist)
	}
	wantContains(t, "history after import --replace", hist, "import:"+sample+":1 ")
	// u456 is replaced by itself: as it was.
	got, _ = consentCLI(t, dir, 0, "get", "u456", "--json")
	if r := decodeRecord(t, got); len(r.Categories) != 2 || len(r.Purposes) != 1 {
		t.Errorf("u456 after import --replace = %s", got)
	}
}

func TestConsentImportExport(t *testing.T) {
	dir := t.TempDir()
	in := testdata("consent-import.ndjson")
	out, stderr := consentCLI(t, dir, 1, "import", in)
	if want := in + ": 6 lines, 4 imported, 2 failed, 5 changes\n"; out != want {
		t.Errorf("import summary = %q, want %q", out, want)
	}
	errLines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(errLines) != 2 || !strings.HasPrefix(errLines[0], in+":3: categoryPreferences.Advertising: want true, false or") ||
		!strings.HasPrefix(errLines[1], in+":5: want a consent record") {
		t.Errorf("import errors:\n%s", stderr)
	}

	out, _ = consentCLI(t, dir, 0, "export")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("export: %d lines, want 2:\n%s", len(lines), out)
	}
	u123, u456 := decodeRecord(t, lines[0]), decodeRecord(t, lines[1])
	if u123.ID != "u123" || !u123.CategoryMap()["Analytics"] || u456.ID != "u456" || len(u456.Purposes) != 2 {
		t.Errorf("export:\n%s", out)
	}
	// The line's source is kept in the history with its file and line.
	hist, _ := consentCLI(t, dir, 0, "history", "u123")
	wantContains(t, "history", hist, "import:"+in+":4:onetrust", "import:"+in+":1 ")

	// Round trip: the export imports into an empty store and exports the same.
	exported := writeFile(t, "export.ndjson", out)
	dir2 := t.TempDir()
	stats, _ := consentCLI(t, dir2, 0, "import", exported, "--json")
	var st consentstore.ImportStats
	if err := json.Unmarshal([]byte(stats), &st); err != nil || st != (consentstore.ImportStats{Lines: 2, Applied: 2, Changes: 4}) {
		t.Errorf("import --json = %q (%v)", stats, err)
	}
	again, _ := consentCLI(t, dir2, 0, "export")
	if again != out {
		t.Errorf("export after re-import:\n%s\nwant\n%s", again, out)
	}

	empty, stderr := consentCLI(t, t.TempDir(), 1, "export")
	if empty != "" || !strings.Contains(stderr, "there is no store in") {
		t.Errorf("export of a directory without a store = %q, %q; want a refusal", empty, stderr)
	}
}

func TestConsentUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"consent"}, 2, "", "missing SUBCOMMAND"},
		{[]string{"consent", "-h"}, 0, "Usage: insertfn consent SUBCOMMAND", ""},
		{[]string{"help", "consent"}, 0, "Store flags", ""},
		{[]string{"help", "consent", "set"}, 0, "Usage: insertfn consent set ID --file UPDATE.json", ""},
		{[]string{"help", "consent", "frobnicate"}, 2, "", `unknown command "consent frobnicate"`},
		{[]string{"consent", "frobnicate"}, 2, "", `unknown subcommand "frobnicate"`},
		{[]string{"consent", "get", "-h"}, 0, "Usage: insertfn consent get ID", ""},
		{[]string{"consent", "get"}, 2, "", "insertfn consent get: missing ID\nRun 'insertfn consent get -h' for usage."},
		{[]string{"consent", "get", "a", "b"}, 2, "", `unexpected argument "b"`},
		{[]string{"consent", "get", ""}, 2, "", "ID is empty"},
		{[]string{"consent", "get", "a", "--frob"}, 2, "", "flag provided but not defined: -frob"},
		{[]string{"consent", "export", "x"}, 2, "", `unexpected argument "x"`},
		{[]string{"consent", "set", "u1"}, 2, "", "missing --file UPDATE.json"},
		{[]string{"consent", "set", "u1", "--file", "nope.json"}, 2, "", "nope.json: no such file or directory"},
		{[]string{"consent", "set", "u2", "--file", testdata("consent.json")}, 2, "", "want a consent record (a JSON object), got ["},
		{[]string{"consent", "set", "u2", "--file", writeFile(t, "u.json", `{"id":"u1","categoryPreferences":{"A":true}}`)}, 2, "", `is about "u1", not "u2": remove its "id" or make the two match`},
		{[]string{"consent", "set", "u2", "--file", writeFile(t, "u.json", `{"source":"x"}`)}, 2, "", "names no category, purpose or alias: nothing to set"},
		{[]string{"consent", "set", "u2", "--file", writeFile(t, "u.json", `{"categoryPreference":{"A":true}}`)}, 2, "", `unknown field "categoryPreference"`},
		{[]string{"consent", "set", "u2", "--file", writeFile(t, "u.json", `{"categoryPreferences":{"A":{"consented":true,"timestamp_unixtime_ms":-1}}}`)}, 1, "", "negative timestamp"},
		{[]string{"consent", "import"}, 2, "", "missing FILE.ndjson"},
		{[]string{"consent", "import", "nope.ndjson"}, 2, "", "nope.ndjson: no such file or directory"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := tc.args
			if args[0] == "consent" && len(args) > 1 { // never the default data directory
				args = append(slices.Clone(args), "--data-dir", dir)
			}
			code, stdout, stderr := runCLI(t, args...)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s\nwant stdout with %q, stderr with %q", code, tc.code, stdout, stderr, tc.stdout, tc.stderr)
			}
		})
	}
	// Nothing above wrote to the store.
	if out, _ := consentCLI(t, dir, 0, "export"); out != "" {
		t.Errorf("store after bad usage: %q", out)
	}
}

// TestTestConsentUpdates: "insertfn test --consent" reads an import file of
// partial updates like the store does: bare booleans are decisions taken
// now, and an older line changes nothing whatever its place.
func TestTestConsentUpdates(t *testing.T) {
	res := testJSON(t, 0, "--event", testdata("event.json"), "--consent", testdata("consent-updates.ndjson"))
	if res.Verdict != "deliver" {
		t.Errorf("event.json: %+v, want deliver", res)
	}
	res = testJSON(t, 0, "--event", testdata("event-mismatch.json"), "--consent", testdata("consent-updates.ndjson"))
	if res.Verdict != "drop" || res.Reason != "Consent mismatch" {
		t.Errorf("event-mismatch.json: %+v, want drop", res)
	}

	// The same file through the store gives the same record.
	dir := t.TempDir()
	consentCLI(t, dir, 0, "import", testdata("consent-updates.ndjson"))
	out, _ := consentCLI(t, dir, 0, "get", anon123, "--json")
	if got := decodeRecord(t, out).CategoryMap(); len(got) != 3 || !got["Advertising"] || got["Analytics"] || !got["Functional"] {
		t.Errorf("imported record = %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "consent", "consent.db")); err != nil {
		t.Errorf("the embedded store's file: %v", err)
	}
}

// TestConsentConfig: --config reads the server's configuration file and
// resolves the store as the server does; the flags override it.
func TestConsentConfig(t *testing.T) {
	cfgDir := t.TempDir()
	cfg := filepath.Join(cfgDir, "insertfn.yaml")
	writeConfig := func(consentSection string) {
		t.Helper()
		yaml := "data: var\nsources:\n  - name: web\n    write_keys: [k1]\n" + consentSection
		if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(code int, args ...string) (string, string) {
		t.Helper()
		c, stdout, stderr := runCLI(t, append([]string{"consent"}, args...)...)
		if c != code {
			t.Fatalf("insertfn consent %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), c, code, stdout, stderr)
		}
		return stdout, stderr
	}

	// The embedded store in DATA/consent, DATA relative to the file.
	writeConfig("consent:\n  backend: embedded\n")
	run(0, "set", "u123", "--file", testdata("consent-update.json"), "--config", cfg)
	if _, err := os.Stat(filepath.Join(cfgDir, "var", "consent", "consent.db")); err != nil {
		t.Fatalf("the store is not where the server keeps it: %v", err)
	}
	out, _ := consentCLI(t, filepath.Join(cfgDir, "var"), 0, "get", "u123", "--json")
	if decodeRecord(t, out).ID != "u123" {
		t.Errorf("--data-dir of the same directory: %s", out)
	}
	// --data, as serve spells it, is --data-dir.
	out, _ = run(0, "get", "u123", "--json", "--data", filepath.Join(cfgDir, "var"))
	if decodeRecord(t, out).ID != "u123" {
		t.Errorf("--data: %s", out)
	}
	// --data-dir overrides the file's data.
	other := t.TempDir()
	run(1, "get", "u123", "--config", cfg, "--data-dir", other)
	// consent.dir, relative to the file.
	writeConfig("consent:\n  dir: mystore\n")
	run(0, "set", "u1", "--file", testdata("consent-update.json"), "--config", cfg)
	if _, err := os.Stat(filepath.Join(cfgDir, "mystore", "consent.db")); err != nil {
		t.Errorf("consent.dir: %v", err)
	}

	// Errors name the problem and what to do.
	for _, tc := range []struct {
		yaml string
		args []string
		want string
	}{
		{"consent:\n  backend: mongo\n", nil, `consent: backend: unknown backend "mongo"`},
		{"consent:\n  backnd: redis\n", nil, "field backnd not found"},
		{"consent: [\n", nil, "yaml"},
		{"", []string{"--backend", "mongo"}, `backend: unknown backend "mongo"`},
		{"", []string{"--backend", "http"}, "http.url"},
		{"", []string{"--redis-addr", "127.0.0.1:1", "--consent-url", "http://x/{id}"}, "say which with --backend redis or --backend http"},
	} {
		args := append([]string{"get", "u1"}, tc.args...)
		if tc.yaml != "" {
			if err := os.WriteFile(cfg, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--config", cfg)
		} else {
			args = append(args, "--data-dir", other)
		}
		_, stderr := run(2, args...)
		wantContains(t, strings.Join(args, " "), stderr, tc.want)
	}
	_, stderr := run(2, "get", "u1", "--config", filepath.Join(cfgDir, "nope.yaml"))
	wantContains(t, "a missing configuration", stderr, "nope.yaml", "no such file")

	// The memory backend works, and says it keeps nothing.
	_, stderr = run(0, "set", "u1", "--file", testdata("consent-update.json"), "--backend", "memory")
	wantContains(t, "set on memory", stderr, "the memory backend keeps nothing")
}

// TestConsentHTTP: the http backend reads the company's service and refuses
// writes, saying where to make them.
func TestConsentHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/users/u123" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"u123","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":1700000000000}}}`)
	}))
	defer srv.Close()
	url := srv.URL + "/users/{id}"
	code, stdout, stderr := runCLI(t, "consent", "get", "u123", "--consent-url", url)
	if code != 0 || !strings.Contains(stdout, "Advertising  true") {
		t.Errorf("get: exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = runCLI(t, "consent", "get", "u999", "--consent-url", url)
	if code != 1 || !strings.Contains(stderr, `no record for "u999"`) {
		t.Errorf("get of an unknown id: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLI(t, "consent", "set", "u123", "--file", testdata("consent-update.json"), "--consent-url", url)
	if code != 1 || !strings.Contains(stderr, "read-only") || !strings.Contains(stderr, "change the consent service itself") {
		t.Errorf("set: exit %d: %s", code, stderr)
	}
}

// TestConsentRedis: two invocations share the store through Redis.
func TestConsentRedis(t *testing.T) {
	srv := redistest.Start(t)
	consentCLI(t, t.TempDir(), 0, "set", "u123", "--file", testdata("consent-update.json"), "--redis-addr", srv.Addr)
	out, _ := consentCLI(t, t.TempDir(), 0, "get", anon123, "--json", "--redis-addr", srv.Addr)
	if r := decodeRecord(t, out); r.ID != "u123" || !r.CategoryMap()["Advertising"] {
		t.Errorf("get through Redis: %s", out)
	}
	out, _ = consentCLI(t, t.TempDir(), 0, "history", "u123", "--redis-addr", srv.Addr)
	wantContains(t, "history through Redis", out, "cli:support ticket 4711")
}
