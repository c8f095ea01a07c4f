package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/internal/admin"
)

// Built once by TestMain with the build subcommand: the seed's
// consent-match function, and a compilation cache the tests share.
var (
	consentMatchWasm string
	cacheDir         string
	exampleDir       = filepath.Join("..", "..", "examples", "consent-match")
)

func TestMain(m *testing.M) {
	// Run as the insertfn binary itself when a test asks for it (the
	// serve tests start real processes and signal them); the arguments
	// are newline-separated.
	if args := os.Getenv("INSERTFN_RUN_MAIN"); args != "" {
		os.Exit(run(strings.Split(args, "\n"), os.Stdout, os.Stderr))
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	tmp, err := os.MkdirTemp("", "insertfn-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	consentMatchWasm = filepath.Join(tmp, "consent-match.wasm")
	cacheDir = filepath.Join(tmp, "cache")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"build", exampleDir, "-o", consentMatchWasm}, &stdout, &stderr); code != 0 {
		fmt.Fprintf(os.Stderr, "insertfn build %s: exit %d\n%s%s", exampleDir, code, stdout.String(), stderr.String())
		return 1
	}
	return m.Run()
}

// runCLI runs the command line and returns its exit status and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// testJSON runs "insertfn test WASM --json --cache-dir ... ARGS" and decodes
// its output.
func testJSON(t *testing.T, wantCode int, args ...string) testResult {
	t.Helper()
	args = append([]string{"test", consentMatchWasm, "--json", "--cache-dir", cacheDir}, args...)
	code, stdout, stderr := runCLI(t, args...)
	if code != wantCode {
		t.Fatalf("insertfn %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, stdout, stderr)
	}
	var res testResult
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("--json output %q: %v", stdout, err)
	}
	return res
}

func testdata(name string) string { return filepath.Join("testdata", name) }

// writeFile writes a file in a fresh temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func sameJSON(t *testing.T, got []byte, wantFile string) {
	t.Helper()
	want, err := os.ReadFile(wantFile)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("event %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("event = %s\nwant the event of %s", got, wantFile)
	}
}

func TestTestConsentMatches(t *testing.T) {
	for _, consentFile := range []string{"consent.ndjson", "consent.json"} {
		t.Run(consentFile, func(t *testing.T) {
			res := testJSON(t, 0, "--event", testdata("event.json"), "--consent", testdata(consentFile))
			if res.Verdict != "deliver" || res.Reason != "" || res.ErrorKind != "" {
				t.Errorf("result = %+v, want deliver", res)
			}
			sameJSON(t, res.Event, testdata("event.json"))
			if res.DurationNS <= 0 {
				t.Errorf("duration_ns = %d", res.DurationNS)
			}
			if res.Logs == nil {
				t.Error("logs is null, want an array")
			}
		})
	}
}

func TestTestConsentMismatch(t *testing.T) {
	res := testJSON(t, 0, "--event", testdata("event-mismatch.json"), "--consent", testdata("consent.ndjson"))
	if res.Verdict != "drop" || res.Reason != "Consent mismatch" || res.ErrorKind != "" {
		t.Errorf("result = %+v, want drop with reason \"Consent mismatch\"", res)
	}
	if string(res.Event) != "null" {
		t.Errorf("event = %s, want null for a dropped event", res.Event)
	}
}

func TestTestLookupByAlias(t *testing.T) {
	// Only the anonymousId, an alias of u123 in the consent file; Analytics disagrees.
	event := writeFile(t, "event.json", `{"type":"track","event":"Signed Up","anonymousId":"23adfd82-aa0f-45a7-a756-24f2a7a4c895",
		"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}}`)
	res := testJSON(t, 0, "--event", event, "--consent", testdata("consent.ndjson"))
	if res.Verdict != "drop" || res.Reason != "Consent mismatch" {
		t.Errorf("result = %+v, want drop: the record is found by its alias", res)
	}
}

func TestTestSettings(t *testing.T) {
	// No stored record for this anonymous user: pass by default, drop or retry by setting.
	res := testJSON(t, 0, "--event", testdata("event-anonymous.json"), "--consent", testdata("consent.ndjson"))
	if res.Verdict != "deliver" {
		t.Errorf("default settings: %+v, want deliver", res)
	}
	for _, settings := range []string{testdata("settings-drop-missing.json"), `{"missingRecord":"drop"}`} {
		res := testJSON(t, 0, "--event", testdata("event-anonymous.json"), "--consent", testdata("consent.ndjson"), "--settings", settings)
		if res.Verdict != "drop" || res.Reason != "No stored consent" {
			t.Errorf("--settings %s: %+v, want drop \"No stored consent\"", settings, res)
		}
	}
	// Without --consent there is no store at all: same policy.
	res = testJSON(t, 0, "--event", testdata("event.json"), "--settings", `{"missingRecord":"drop"}`)
	if res.Verdict != "drop" || res.Reason != "No stored consent" {
		t.Errorf("no store: %+v, want drop", res)
	}
}

func TestTestFunctionError(t *testing.T) {
	res := testJSON(t, 1, "--event", testdata("event-anonymous.json"), "--settings", `{"missingRecord":"retry"}`)
	if res.Verdict != "error" || res.ErrorKind != "RetryError" || res.Reason != "No stored consent" {
		t.Errorf("result = %+v, want error RetryError \"No stored consent\"", res)
	}
	if string(res.Event) != "null" {
		t.Errorf("event = %s, want null", res.Event)
	}
}

// TestTestSandboxFailures: a function the sandbox stops (a timeout, a
// panic) is an error verdict with exit 1, its kind and the logs written
// before it failed; a delivered event shows its logs too, in text and
// JSON.
func TestTestSandboxFailures(t *testing.T) {
	wasm := filepath.Join(t.TempDir(), "logloop.wasm")
	if code, _, stderr := runCLI(t, "build", testdata("logloop"), "-o", wasm); code != 0 {
		t.Fatalf("build: exit %d: %s", code, stderr)
	}
	wantLogs := []admin.TestLog{{Level: "info", Message: "checking track"}, {Level: "warn", Message: "about to decide"}}
	for _, c := range []struct {
		event, timeout, verdict, kind, reason string
		code                                  int
	}{
		{`{"type":"track"}`, "10s", "deliver", "", "", 0},
		{`{"type":"track","hostile":"loop"}`, "100ms", "error", "Timeout", "100ms", 1},
		{`{"type":"track","hostile":"panic"}`, "10s", "error", "GuestExit", "logloop: told to panic", 1},
	} {
		args := []string{"test", wasm, "--event", c.event, "--timeout", c.timeout, "--cache-dir", cacheDir}
		code, stdout, stderr := runCLI(t, append(args, "--json")...)
		var res testResult
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatalf("%s: --json output %q (stderr %q): %v", c.event, stdout, stderr, err)
		}
		if code != c.code || res.Verdict != c.verdict || res.ErrorKind != c.kind || !strings.Contains(res.Reason, c.reason) {
			t.Errorf("%s: exit %d, %+v; want exit %d, %s %s %q", c.event, code, res, c.code, c.verdict, c.kind, c.reason)
		}
		// A panic's message and stack follow, from the guest's stderr.
		if len(res.Logs) < len(wantLogs) || !slices.Equal(res.Logs[:len(wantLogs)], wantLogs) ||
			(c.kind == "GuestExit") != (len(res.Logs) > len(wantLogs) && res.Logs[len(wantLogs)] == admin.TestLog{Level: "error", Message: "panic: " + c.reason}) {
			t.Errorf("%s: logs %+v, want %+v first", c.event, res.Logs, wantLogs)
		}
		code, stdout, _ = runCLI(t, args...)
		if code != c.code || !strings.Contains(stdout, "Logs:\n  info    checking track\n  warn    about to decide\n") {
			t.Errorf("%s: text output, exit %d:\n%s", c.event, code, stdout)
		}
	}
}

func TestTestJSONKeys(t *testing.T) {
	code, stdout, stderr := runCLI(t, "test", consentMatchWasm, "--event", testdata("event.json"), "--json", "--cache-dir", cacheDir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"duration_ns", "error_kind", "event", "logs", "reason", "verdict"}; !slices.Equal(keys, want) {
		t.Errorf("keys = %v, want %v", keys, want)
	}
	if m["event"][0] != '{' {
		t.Errorf("event = %s, want the event as a JSON object", m["event"])
	}
	if strings.Count(strings.TrimSpace(stdout), "\n") != 0 {
		t.Errorf("--json output is not one line: %q", stdout)
	}
}

func TestTestText(t *testing.T) {
	code, stdout, stderr := runCLI(t, "test", consentMatchWasm, "--event", testdata("event.json"), "--consent", testdata("consent.ndjson"), "--cache-dir", cacheDir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"Verdict:  deliver\n", "Event:    (unchanged)\n{\n  \"type\": \"track\",\n", "Logs:     (none)\n", "Duration: "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = runCLI(t, "test", consentMatchWasm, "--event", testdata("event-mismatch.json"), "--consent", testdata("consent.ndjson"), "--cache-dir", cacheDir)
	if code != 0 || !strings.Contains(stdout, "Verdict:  drop: Consent mismatch\n") || !strings.Contains(stdout, "(none: the event was not delivered)") {
		t.Errorf("mismatch: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runCLI(t, "test", consentMatchWasm, "--event", testdata("event-anonymous.json"), "--settings", `{"missingRecord":"retry"}`, "--cache-dir", cacheDir)
	if code != 1 || !strings.Contains(stdout, "Verdict:  error: RetryError: No stored consent\n") {
		t.Errorf("retry: exit %d\n%s", code, stdout)
	}
}

func TestTestFlagOrder(t *testing.T) {
	ev, cs := testdata("event-mismatch.json"), testdata("consent.ndjson")
	for _, args := range [][]string{
		{"test", consentMatchWasm, "--event", ev, "--consent", cs, "--json"},
		{"test", "--event", ev, "--consent", cs, "--json", consentMatchWasm},
		{"test", "--json", "--event", ev, consentMatchWasm, "--consent", cs, "--timeout", "2s"},
		{"test", "-json=true", "-event=" + ev, "-consent=" + cs, consentMatchWasm},
		{"test", "--json", "--event", ev, "--consent", cs, "--", consentMatchWasm},
	} {
		code, stdout, stderr := runCLI(t, slices.Insert(slices.Clone(args), 1, "--cache-dir", cacheDir)...)
		if code != 0 || !strings.Contains(stdout, `"verdict":"drop"`) {
			t.Errorf("insertfn %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
		}
	}
}

func TestTestBadInput(t *testing.T) {
	dir := t.TempDir()
	missingEvent := filepath.Join(dir, "no-such-event.json")
	badEvent := writeFile(t, "bad-event.json", "{\n  \"type\": \"track\",\n  \"userId\": u123\n}\n")
	arrayEvent := writeFile(t, "array.json", `[{"type":"track"}]`)
	badSettings := writeFile(t, "settings.json", `{"missingRecord": }`)
	badConsent := writeFile(t, "consent.ndjson", "{\"id\":\"u1\"}\n\n{\"id\":\n")
	notWasm := testdata("event.json")
	emptyModule := writeFile(t, "empty.wasm", "\x00asm\x01\x00\x00\x00")
	brokenModule := writeFile(t, "broken.wasm", "\x00asm\x01\x00\x00\x00garbage")
	ev := testdata("event.json")
	for _, tc := range []struct {
		name string
		args []string
		want []string // in stderr
	}{
		{"missing event file", []string{consentMatchWasm, "--event", missingEvent}, []string{missingEvent, "no such file"}},
		{"invalid event JSON", []string{consentMatchWasm, "--event", badEvent}, []string{badEvent + ":3:", "invalid JSON"}},
		{"event not an object", []string{consentMatchWasm, "--event", arrayEvent}, []string{arrayEvent, "want a JSON object, got an array"}},
		{"invalid inline event", []string{consentMatchWasm, "--event", `{"type":`}, []string{"--event", "invalid JSON"}},
		{"invalid settings", []string{consentMatchWasm, "--event", ev, "--settings", badSettings}, []string{badSettings, "invalid JSON"}},
		{"settings not an object", []string{consentMatchWasm, "--event", ev, "--settings", `["drop"]`}, []string{"--settings", "want a JSON object"}},
		{"missing settings file", []string{consentMatchWasm, "--event", ev, "--settings", filepath.Join(dir, "s.json")}, []string{filepath.Join(dir, "s.json"), "no such file"}},
		{"invalid consent file", []string{consentMatchWasm, "--event", ev, "--consent", badConsent}, []string{badConsent + ":3:"}},
		{"missing consent file", []string{consentMatchWasm, "--event", ev, "--consent", filepath.Join(dir, "c.ndjson")}, []string{filepath.Join(dir, "c.ndjson"), "no such file"}},
		{"missing wasm", []string{filepath.Join(dir, "f.wasm"), "--event", ev}, []string{filepath.Join(dir, "f.wasm"), "no such file"}},
		{"not wasm", []string{notWasm, "--event", ev}, []string{notWasm, "not a WebAssembly module"}},
		{"not a function", []string{emptyModule, "--event", ev}, []string{emptyModule, "does not export"}},
		{"does not compile", []string{brokenModule, "--event", ev}, []string{brokenModule, "compile"}},
		{"no event", []string{consentMatchWasm}, []string{"missing --event"}},
		{"no wasm", []string{"--event", ev}, []string{"missing FILE.wasm"}},
		{"two files", []string{consentMatchWasm, consentMatchWasm, "--event", ev}, []string{"one FILE.wasm or FILE.js expected"}},
		{"unknown flag", []string{consentMatchWasm, "--event", ev, "--verbose"}, []string{"flag provided but not defined: -verbose", "insertfn test -h"}},
		{"flag without value", []string{consentMatchWasm, "--event"}, []string{"flag needs an argument: -event"}},
		{"bad timeout", []string{consentMatchWasm, "--event", ev, "--timeout", "soon"}, []string{"-timeout"}},
		{"negative timeout", []string{consentMatchWasm, "--event", ev, "--timeout", "-1s"}, []string{"negative"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"test"}, tc.args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr = %q\nwant it to contain %q", stderr, w)
				}
			}
		})
	}
}

func TestBuild(t *testing.T) {
	// consentMatchWasm was built by TestMain with -o; check the module and
	// the default output name.
	wasm, err := os.ReadFile(consentMatchWasm)
	if err != nil || !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		t.Fatalf("%s is not a WebAssembly module: %v", consentMatchWasm, err)
	}
	example, err := filepath.Abs(exampleDir)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wasm, []byte(example)) {
		t.Errorf("the module holds the build machine's path %s (want -trimpath)", example)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	code, stdout, stderr := runCLI(t, "build", example)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "consent-match.wasm")); err != nil {
		t.Errorf("default output: %v", err)
	}
	// -o before DIR, relative to the current directory, not to DIR.
	if code, _, stderr := runCLI(t, "build", "-o", "out/f.wasm", example); code != 0 {
		t.Fatalf("build -o out/f.wasm DIR: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "f.wasm")); err != nil {
		t.Errorf("-o out/f.wasm: %v", err)
	}
}

func TestBuildFailures(t *testing.T) {
	t.Run("compile error", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module broken\n\ngo 1.24\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { undefinedThing() }\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runCLI(t, "build", dir, "-o", filepath.Join(dir, "out.wasm"))
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		// The go command's own message is passed through.
		if !strings.Contains(stderr, "undefinedThing") || !strings.Contains(stderr, "go build failed") {
			t.Errorf("stderr = %q", stderr)
		}
	})
	t.Run("go not on PATH", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		code, _, stderr := runCLI(t, "build", exampleDir, "-o", filepath.Join(t.TempDir(), "f.wasm"))
		if code != 1 || !strings.Contains(stderr, "the go command is not on PATH") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no dir", nil, "missing DIR"},
		{"missing dir", []string{"no-such-dir"}, "no-such-dir: no such file"},
		{"not a dir", []string{"main_test.go"}, "main_test.go is not a directory"},
		{"two dirs", []string{".", "."}, "one DIR expected"},
		{"-o without value", []string{".", "-o"}, "flag needs an argument: -o"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, append([]string{"build"}, tc.args...)...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.want)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		stdout   string // a part of it
		stderrOK bool
	}{
		{[]string{"help"}, 0, "Commands:\n  serve", false},
		{[]string{"-h"}, 0, "Commands:\n  serve", false},
		{[]string{"--help"}, 0, "Commands:\n  serve", false},
		{[]string{"help", "test"}, 0, "Usage: insertfn test FILE.wasm|FILE.js --event EVENT.json [flags]", false},
		{[]string{"help", "build"}, 0, "Usage: insertfn build DIR [-o FILE.wasm]", false},
		{[]string{"test", "-h"}, 0, "Usage: insertfn test FILE.wasm", false},
		{[]string{"test", "f.wasm", "--help"}, 0, "Usage: insertfn test FILE.wasm", false},
		{[]string{"build", "-h"}, 0, "Usage: insertfn build DIR", false},
		{[]string{"version", "-h"}, 0, "Usage: insertfn version", false},
		{[]string{"help", "-h"}, 0, "Usage: insertfn help", false},
		{[]string{"version"}, 0, "insertfn ", false},
		{[]string{"--version"}, 0, "function ABI version 1", false},
		{nil, 2, "", true},
		{[]string{"frobnicate"}, 2, "", true},
		{[]string{"help", "frobnicate"}, 2, "", true},
		{[]string{"version", "extra"}, 2, "", true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout, tc.stdout)
			}
			if tc.stderrOK != (stderr != "") {
				t.Errorf("stderr = %q", stderr)
			}
		})
	}
	// Every command appears in the list with its short description.
	_, stdout, _ := runCLI(t, "help")
	for _, c := range commands {
		if !strings.Contains(stdout, c.name) || !strings.Contains(stdout, c.short) {
			t.Errorf("help lacks %s", c.name)
		}
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		o    string
		v    bool
	}{
		{[]string{"a", "-o", "x", "b"}, []string{"a", "b"}, "x", false},
		{[]string{"-v", "a", "-o=x"}, []string{"a"}, "x", true},
		{[]string{"a", "--", "-o", "x"}, []string{"a", "-o", "x"}, "", false},
		{[]string{"-", "-v"}, []string{"-"}, "", true},
		{nil, nil, "", false},
	} {
		fs := newFlagSet("t")
		o := fs.String("o", "", "")
		v := fs.Bool("v", false, "")
		var out, errOut bytes.Buffer
		pos, _, ok := parseArgs(&command{name: "t"}, fs, tc.args, &out, &errOut)
		if !ok || !slices.Equal(pos, tc.pos) || *o != tc.o || *v != tc.v {
			t.Errorf("parseArgs(%q) = %q, o=%q v=%v, ok=%v; want %q, %q, %v (%s)", tc.args, pos, *o, *v, ok, tc.pos, tc.o, tc.v, errOut.String())
		}
	}
}
