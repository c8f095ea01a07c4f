package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/sdk/consent"
)

var testCmd = &command{
	name:  "test",
	short: "run a function once on one event, like Segment's Test button",
	usage: `Usage: insertfn test FILE.wasm|FILE.js --event EVENT.json [flags]

Loads the function in FILE (a WebAssembly module built with 'insertfn build',
or a Segment JavaScript function file, run in the JavaScript engine embedded
in insertfn), runs it once on the event and prints, like
the "Test" button of Segment's function editor: the verdict (deliver, drop
with its reason, or the error's kind and message), the resulting event, the
function's logs and the time the call took.

Flags (before or after FILE):
  --event EVENT.json     the event, a JSON object (required)
  --consent RECORDS      the stored consent the function looks up: a JSON
                         array of records, one record, or NDJSON (one record
                         or update per line, as 'insertfn consent import'
                         reads and 'insertfn consent export' writes), in the
                         wire format of the consent record
  --settings SETTINGS    the function's settings, a JSON object (default {})
  --json                 print one JSON object with the keys verdict
                         ("deliver", "drop" or "error"), reason, error_kind,
                         event, logs and duration_ns
  --timeout D            the time the event may take, e.g. 500ms (default 1s)
  --fetch-allow PREFIX   a URL prefix a JavaScript function may fetch, as a
                         manifest's fetch.allow lists them (repeatable);
                         without it, fetch fails the event
  --fetch-timeout D      the time one fetch may take (default 2s)
  --cache-dir DIR        keep compiled code in DIR: the next run of the same
                         module (or of any JavaScript function: the engine's
                         code) starts faster

--event and --settings take a file name, or the JSON itself when it starts
with '{' (or '[').

Exit status: 0 the event was delivered or dropped, 1 the function failed
(verdict error), 2 bad usage or input (a file that cannot be read, invalid
JSON, a module that does not load).
`,
	run: runTest,
}

// testResult is the --json output.
type testResult = admin.RunReport

func runTest(c *command, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("test")
	eventArg := fs.String("event", "", "")
	consentArg := fs.String("consent", "", "")
	settingsArg := fs.String("settings", "", "")
	asJSON := fs.Bool("json", false, "")
	timeout := fs.Duration("timeout", 0, "")
	cacheDir := fs.String("cache-dir", "", "")
	var fetchAllow stringList
	fs.Var(&fetchAllow, "fetch-allow", "")
	fetchTimeout := fs.Duration("fetch-timeout", 0, "")
	pos, code, ok := parseArgs(c, fs, args, stdout, stderr)
	if !ok {
		return code
	}
	switch {
	case len(pos) == 0:
		return usageError(c, stderr, "missing FILE.wasm or FILE.js, the function to run")
	case len(pos) > 1:
		return usageError(c, stderr, fmt.Sprintf("one FILE.wasm or FILE.js expected, got %d arguments: %s", len(pos), strings.Join(pos, " ")))
	case *eventArg == "":
		return usageError(c, stderr, "missing --event EVENT.json")
	case *timeout < 0:
		return usageError(c, stderr, fmt.Sprintf("--timeout %s is negative", *timeout))
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "insertfn test: "+format+"\n", a...)
		return exitUsage
	}

	wasmPath := pos[0]
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return fail("function %s: %v", wasmPath, unwrapPath(err))
	}
	lang := runtime.WebAssembly
	switch {
	case strings.EqualFold(filepath.Ext(wasmPath), ".js"):
		lang = runtime.JavaScript
	case !bytes.HasPrefix(wasm, []byte("\x00asm")):
		return fail("function %s: not a WebAssembly module (build one with 'insertfn build') nor a file named .js (a JavaScript function)", wasmPath)
	}
	event, err := readObject("event", *eventArg)
	if err != nil {
		return fail("%v", err)
	}
	var settings []byte
	if *settingsArg != "" {
		if settings, err = readObject("settings", *settingsArg); err != nil {
			return fail("%v", err)
		}
	}
	var store consent.Store
	if *consentArg != "" {
		m, err := consentstore.LoadFile(*consentArg)
		if err != nil {
			return fail("stored consent: %v", err)
		}
		store = m
	}

	ctx := context.Background()
	engine, err := runtime.NewEngine(runtime.Config{CacheDir: *cacheDir})
	if err != nil {
		return fail("%v", err)
	}
	defer engine.Close(ctx)
	fn, err := engine.Load(ctx, wasm, runtime.Options{
		Name:      strings.TrimSuffix(filepath.Base(wasmPath), filepath.Ext(wasmPath)),
		Language:  lang,
		File:      filepath.Base(wasmPath),
		Settings:  settings,
		Store:     store,
		Limits:    runtime.Limits{Timeout: *timeout, PoolSize: 1},
		Fetch:     runtime.FetchPolicy{Allow: fetchAllow, Timeout: *fetchTimeout},
		TimeEvery: 1, // the run reports its duration
	})
	if err != nil {
		return fail("load %s: %v", wasmPath, err)
	}
	defer fn.Close(ctx)

	var res runtime.Result
	if err := fn.Invoke(ctx, event, &res); err != nil {
		var sandbox *runtime.Error
		if !errors.As(err, &sandbox) {
			fmt.Fprintf(stderr, "insertfn test: %v\n", err)
			return exitFail
		}
		// A sandbox failure: res says which, like an error the function returned.
	}

	if *asJSON {
		err = printJSON(stdout, &res)
	} else {
		err = printText(stdout, &res)
	}
	if err != nil {
		fmt.Fprintf(stderr, "insertfn test: %v\n", err)
		return exitFail
	}
	if res.Verdict == runtime.Fail {
		return exitFail
	}
	return exitOK
}

// readObject reads the JSON object of --NAME: the value itself when it
// starts with '{' or '[' (to say that an array is not an object), else the
// file it names.
func readObject(name, arg string) ([]byte, error) {
	what := name + " " + arg
	var data []byte
	if t := strings.TrimSpace(arg); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
		what, data = "--"+name, []byte(arg)
	} else {
		b, err := os.ReadFile(arg)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", what, unwrapPath(err))
		}
		data = b
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := position(data, int(se.Offset))
			return nil, fmt.Errorf("%s:%d:%d: invalid JSON: %v", what, line, col, se)
		}
		return nil, fmt.Errorf("%s: invalid JSON: %v", what, err)
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%s: want a JSON object, got %s", what, jsonKind(t))
	}
	return data, nil
}

// jsonKind names the kind of a valid JSON value.
func jsonKind(v []byte) string {
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// position returns the 1-based line and column of the byte before offset
// (where encoding/json reports a syntax error).
func position(data []byte, offset int) (line, col int) {
	offset = max(0, min(offset-1, len(data)))
	before := data[:offset]
	line = 1 + bytes.Count(before, []byte("\n"))
	return line, offset - bytes.LastIndexByte(before, '\n')
}

func verdictText(res *runtime.Result) string {
	switch res.Verdict {
	case runtime.Deliver:
		return "deliver"
	case runtime.Drop:
		if res.Reason == "" {
			return "drop"
		}
		return "drop: " + res.Reason
	}
	return fmt.Sprintf("error: %s: %s", res.Kind, res.Reason)
}

func printText(w io.Writer, res *runtime.Result) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Verdict:  %s\n", verdictText(res))
	switch {
	case res.Verdict != runtime.Deliver:
		fmt.Fprintf(&b, "Event:    (none: the event was not delivered)\n")
	case res.Modified:
		fmt.Fprintf(&b, "Event:    (changed by the function)\n%s\n", indentJSON(res.Event))
	default:
		fmt.Fprintf(&b, "Event:    (unchanged)\n%s\n", indentJSON(res.Event))
	}
	if len(res.Logs) == 0 {
		b.WriteString("Logs:     (none)\n")
	} else {
		b.WriteString("Logs:\n")
		for _, l := range res.Logs {
			msg := strings.ReplaceAll(strings.TrimRight(l.Message, "\n"), "\n", "\n          ")
			fmt.Fprintf(&b, "  %-7s %s\n", l.Level, msg)
		}
	}
	fmt.Fprintf(&b, "Duration: %s\n", roundDuration(res.Duration))
	_, err := w.Write(b.Bytes())
	return err
}

func printJSON(w io.Writer, res *runtime.Result) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(admin.ReportRun(res))
}

// indentJSON pretty-prints an event, or returns it as it is when it is not
// valid JSON.
func indentJSON(event []byte) []byte {
	var b bytes.Buffer
	if err := json.Indent(&b, bytes.TrimSpace(event), "", "  "); err != nil {
		return event
	}
	return b.Bytes()
}

func roundDuration(d time.Duration) time.Duration {
	if d >= time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d
}
