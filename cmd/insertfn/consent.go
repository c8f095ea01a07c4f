package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/consentstore/storeconfig"
	"github.com/insertfn/insertfn/sdk/consent"
)

// storeFlagsUsage documents the flags every consent subcommand takes.
const storeFlagsUsage = `Store flags (every subcommand; before or after its arguments):
  --config FILE          the server's configuration file (YAML): its consent:
                         section says which store to use, as for the server
  --backend NAME         embedded, redis, http or memory (default: the
                         configuration's, else embedded)
  --data-dir DIR         the server's data directory ('insertfn serve --data';
                         --data works here too): the embedded store is
                         DIR/consent (default: the configuration's data, else
                         ./data)
  --redis-addr ADDR      the Redis server (host:port; several, comma-separated,
                         for a cluster); alone, chooses the redis backend
  --consent-url URL      the URL template of the http backend, the company's
                         consent service (https://consent.internal/users/{id});
                         alone, chooses the http backend (read-only)
  --json                 print JSON (one value per line) instead of text

The flags override the configuration file. The embedded store is one file
that only one process may have open: while 'insertfn serve' runs on the same
data directory, stop it first. The memory backend keeps nothing after the
command exits.

Exit status: 0 done, 1 not found, a line that did not import, or a store
failure, 2 bad usage, configuration or input.
`

var consentCmd = &command{
	name:  "consent",
	short: "read and change the stored consent: get, set, delete, history, import, export",
	usage: `Usage: insertfn consent SUBCOMMAND [ARGUMENTS] [flags]

Reads and changes the consent store the server uses, on the same
configuration file and flags.

Subcommands:
  get ID                        print the record of ID (a userId, anonymousId
                                or any alias of it)
  set ID --file UPDATE.json     merge an update into the record of ID
  delete ID                     erase the record of ID, its aliases and history
  history ID [--at TIME]        print ID's history, or with --at what ID had
                                consented to at TIME (RFC 3339)
  import FILE.ndjson            merge NDJSON into the store, one record or
                                update per line (--replace: replace the
                                records of the people it names)
  export                        print every record as NDJSON

Run 'insertfn consent SUBCOMMAND -h' for the details of one.

` + storeFlagsUsage,
	run: runConsent,
}

// consentSubcommands are the subcommands of "insertfn consent".
var consentSubcommands = []*command{
	{name: "consent get", usage: `Usage: insertfn consent get ID [flags]

Prints the stored record whose id or alias is ID: its id, aliases,
categories and consent_state purposes, each with the time of the decision.
With --json, the record in the wire format of the consent record.

` + storeFlagsUsage, run: runConsentGet},
	{name: "consent set", usage: `Usage: insertfn consent set ID --file UPDATE.json [flags]

Merges an update into the record of ID (created when there is none), like
the server does: per category and purpose, the newer decision wins; entries
the update does not name stay as they are.

  --file UPDATE.json     the update ("-": standard input): a record in the
                         wire format of the consent record, partial:
                           {"categoryPreferences": {"Advertising": true},
                            "consent_state": {"ccpa": {"data_sale_opt_out":
                              {"consented": true, "timestamp_unixtime_ms": 1700000000000}}},
                            "aliases": ["an-anonymous-id"]}
                         A bare boolean, or an entry without a timestamp, is
                         a decision taken now; a timestamp more than 5
                         minutes past this machine's clock is refused (exit
                         status 2). Its "id", if any, must be ID;
                         "source" (optional) is kept in the history.
                         An id or alias given as a JSON number is stored as
                         JavaScript writes it (123.0 and 1.23e2 are "123").

Prints the changes the update made to stored values and the resulting record.

` + storeFlagsUsage, run: runConsentSet},
	{name: "consent delete", usage: `Usage: insertfn consent delete ID [flags]

Erases the record whose id or alias is ID, all its aliases and its history
(a person's erasure request). Exit status 1 when there was none.

` + storeFlagsUsage, run: runConsentDelete},
	{name: "consent history", usage: `Usage: insertfn consent history ID [--at TIME] [flags]

Without --at, prints every decision stored for ID, oldest first, one per
line: when it was taken, the category or purpose, the value and the one
before it, where it came from and when it was recorded. With --json, one
JSON object per line.

  --at TIME              print instead what ID had consented to at TIME
                         (RFC 3339: 2024-01-02T15:04:05Z), as a record

` + storeFlagsUsage, run: runConsentHistory},
	{name: "consent import", usage: `Usage: insertfn consent import FILE.ndjson [--replace] [flags]

Merges FILE ("-": standard input) into the store: one record or update per
line in the wire format of the consent record (what 'insertfn consent
export' prints), in order. Each line is merged like 'insertfn consent set';
its history source is import:FILE:LINE. A bad line is reported on standard
error as FILE:LINE: ERROR and the rest still imports; a line that dates a
decision more than 5 minutes past this machine's clock is a bad line. Prints a summary
(with --json: {"lines", "applied", "failed", "changes"}).

  --replace              replace instead of merge: the first time FILE names
                         an id (a line's id or alias), the record stored under
                         it is erased, with its aliases and history, as
                         'insertfn consent delete' erases it; the person then
                         holds exactly what FILE says, even where the stored
                         decisions were newer ('make run' resets its sample
                         records this way). Later lines about the same person
                         merge. A bad line erases nothing; ids FILE does not
                         name are left as they are.

Exit status 1 when a line failed (the others are imported).

` + storeFlagsUsage, run: runConsentImport},
	{name: "consent export", usage: `Usage: insertfn consent export [flags]

Prints every stored record as NDJSON, one record per line in the wire format
of the consent record, in the store's order (by id for the embedded store).
'insertfn consent import' and 'insertfn test --consent' read it back. The
history is not exported.

` + storeFlagsUsage, run: runConsentExport},
}

func runConsent(c *command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usageError(c, stderr, "missing SUBCOMMAND (get, set, delete, history, import or export)")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, c.usage)
		return exitOK
	}
	for _, sub := range consentSubcommands {
		if sub.name == "consent "+args[0] {
			return sub.run(sub, args[1:], stdout, stderr)
		}
	}
	return usageError(c, stderr, fmt.Sprintf("unknown subcommand %q (want get, set, delete, history, import or export)", args[0]))
}

// consentEnv is what every consent subcommand shares: its store flags, and
// once parsed, its output mode.
type consentEnv struct {
	c              *command
	flags          storeFlags
	asJSON         bool
	stdout, stderr io.Writer
}

// newConsentEnv returns a flag set with the store flags and --json.
func newConsentEnv(c *command, stdout, stderr io.Writer) (*consentEnv, *flag.FlagSet) {
	e := &consentEnv{c: c, stdout: stdout, stderr: stderr}
	fs := newFlagSet(c.name)
	e.flags.register(fs)
	fs.BoolVar(&e.asJSON, "json", false, "")
	return e, fs
}

// parse parses args and checks the number of positional arguments; names
// are the missing ones' names, in order. ok false: exit with code.
func (e *consentEnv) parse(fs *flag.FlagSet, args []string, names ...string) (pos []string, code int, ok bool) {
	pos, code, ok = parseArgs(e.c, fs, args, e.stdout, e.stderr)
	if !ok {
		return nil, code, false
	}
	if len(pos) < len(names) {
		return nil, usageError(e.c, e.stderr, "missing "+strings.Join(names[len(pos):], " ")), false
	}
	if len(pos) > len(names) {
		return nil, usageError(e.c, e.stderr, fmt.Sprintf("unexpected argument %q", pos[len(names)])), false
	}
	for i, p := range pos {
		if p == "" {
			return nil, usageError(e.c, e.stderr, names[i]+" is empty"), false
		}
	}
	return pos, 0, true
}

// failf prints an error of the subcommand and returns code.
func (e *consentEnv) failf(code int, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "insertfn %s: %s\n", e.c.name, fmt.Sprintf(format, args...))
	return code
}

// open opens the configured store; on failure it prints why and returns
// the exit status.
func (e *consentEnv) open(ctx context.Context) (*consentstore.Store, int, bool) {
	s, err := e.flags.open(ctx)
	if err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			return nil, e.failf(exitUsage, "%v", err), false
		}
		return nil, e.storeError(err), false
	}
	return s, 0, true
}

// storeError prints a store failure with what to do about it.
func (e *consentEnv) storeError(err error) int {
	switch {
	case errors.Is(err, consentstore.ErrReadOnly):
		return e.failf(exitFail, "%v: change the consent service itself, or configure a writable backend (embedded or redis)", err)
	case errors.Is(err, consentstore.ErrUnavailable):
		return e.failf(exitFail, "%v (is the store running and reachable? try again later)", err)
	case errors.Is(err, context.Canceled):
		return e.failf(exitFail, "interrupted")
	}
	return e.failf(exitFail, "%v", err)
}

// notFound prints that there is no record for id (for an id written as a
// non-canonical number, where such a number is stored) and returns 1.
func (e *consentEnv) notFound(id string) int {
	if hint := consentstore.NumericIDHint(id); hint != "" {
		return e.failf(exitFail, "no record for %q %s", id, hint)
	}
	return e.failf(exitFail, "no record for %q", id)
}

// printJSON writes v as one line of JSON.
func (e *consentEnv) printJSON(v any) int {
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return e.failf(exitFail, "write: %v", err)
	}
	return exitOK
}

// signalContext is the context of a subcommand: done on an interrupt, so
// that the store is closed cleanly.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

// warnMemory says, after a write to the memory backend, that it is gone.
func (e *consentEnv) warnMemory() {
	if e.flags.opened == storeconfig.Memory {
		fmt.Fprintf(e.stderr, "insertfn %s: note: the memory backend keeps nothing after this command\n", e.c.name)
	}
}

// withStore runs fn with the opened store and closes it after.
func (e *consentEnv) withStore(fn func(ctx context.Context, s *consentstore.Store) int) int {
	ctx, stop := signalContext()
	defer stop()
	s, code, ok := e.open(ctx)
	if !ok {
		return code
	}
	code = fn(ctx, s)
	if err := s.Close(); err != nil && code == exitOK {
		return e.failf(exitFail, "close the store: %v", err)
	}
	return code
}

func runConsentGet(c *command, args []string, stdout, stderr io.Writer) int {
	e, fs := newConsentEnv(c, stdout, stderr)
	pos, code, ok := e.parse(fs, args, "ID")
	if !ok {
		return code
	}
	id := pos[0]
	e.flags.reads = true
	return e.withStore(func(ctx context.Context, s *consentstore.Store) int {
		rec, err := s.Get(ctx, id)
		if errors.Is(err, consent.ErrNotFound) {
			return e.notFound(id)
		}
		if err != nil {
			return e.storeError(err)
		}
		return e.printRecord(rec)
	})
}

func (e *consentEnv) printRecord(rec *consent.Record) int {
	if e.asJSON {
		return e.printJSON(rec)
	}
	if _, err := e.stdout.Write(recordText(rec)); err != nil {
		return e.failf(exitFail, "write: %v", err)
	}
	return exitOK
}

// recordText formats a record for people.
func recordText(rec *consent.Record) []byte {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\n", rec.ID)
	if len(rec.Aliases) > 0 {
		fmt.Fprintf(tw, "aliases\t%s\n", strings.Join(rec.Aliases, " "))
	}
	if rec.UpdatedAt != 0 {
		fmt.Fprintf(tw, "updated\t%s\n", msTime(rec.UpdatedAt))
	}
	tw.Flush()
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	if len(rec.Categories) > 0 {
		fmt.Fprintln(tw, "categoryPreferences")
		for _, c := range rec.Categories {
			fmt.Fprintf(tw, "  %s\t%t\t%s\n", c.Name, c.Consented, msTime(c.Timestamp))
		}
	}
	if len(rec.Purposes) > 0 {
		fmt.Fprintln(tw, "consent_state")
		for _, p := range rec.Purposes {
			fmt.Fprintf(tw, "  %s.%s\t%t\t%s%s\n", p.Regulation, p.Name, p.Consented, msTime(p.Timestamp), purposeContext(p.Document, p.Location, p.HardwareID))
		}
	}
	if len(rec.Categories) == 0 && len(rec.Purposes) == 0 {
		fmt.Fprintln(tw, "(no categories or purposes)")
	}
	tw.Flush()
	return b.Bytes()
}

// purposeContext formats a purpose's optional context fields.
func purposeContext(document, location, hardwareID string) string {
	var b strings.Builder
	for _, f := range [...]struct{ k, v string }{{"document", document}, {"location", location}, {"hardware_id", hardwareID}} {
		if f.v != "" {
			fmt.Fprintf(&b, "  %s=%q", f.k, f.v)
		}
	}
	return b.String()
}

// msTime formats Unix milliseconds as RFC 3339 in UTC, to the millisecond.
func msTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// setResult is the --json output of "consent set".
type setResult struct {
	ID      string           `json:"id"`
	Changes []consent.Change `json:"changes"`
	Record  *consent.Record  `json:"record"`
}

func runConsentSet(c *command, args []string, stdout, stderr io.Writer) int {
	e, fs := newConsentEnv(c, stdout, stderr)
	file := fs.String("file", "", "")
	pos, code, ok := e.parse(fs, args, "ID")
	if !ok {
		return code
	}
	if *file == "" {
		return usageError(c, stderr, "missing --file UPDATE.json (\"-\" for standard input)")
	}
	id := pos[0]
	data, err := readInput(*file, consentstore.MaxImportLine)
	if err != nil {
		return e.failf(exitUsage, "%v", err)
	}
	u, err := consentstore.ParseUpdate(data)
	if err != nil {
		return e.failf(exitUsage, "update %s: %v", inputName(*file), err)
	}
	switch r := &u.Record; {
	case r.ID != "" && r.ID != id:
		return e.failf(exitUsage, "update %s is about %q, not %q: remove its \"id\" or make the two match", inputName(*file), r.ID, id)
	case len(r.Categories) == 0 && len(r.Purposes) == 0 && len(r.Aliases) == 0:
		return e.failf(exitUsage, "update %s names no category, purpose or alias: nothing to set", inputName(*file))
	}
	u.Record.ID = id
	if u.Source != "" {
		u.Source = "cli:" + u.Source
	} else {
		u.Source = "cli"
	}
	return e.withStore(func(ctx context.Context, s *consentstore.Store) int {
		changes, err := s.Update(ctx, u)
		if errors.Is(err, consentstore.ErrFutureTime) {
			return e.failf(exitUsage, "update %s: %v", inputName(*file), err)
		}
		if err != nil {
			return e.storeError(fmt.Errorf("update %s: %w", inputName(*file), err))
		}
		e.warnMemory()
		rec, err := s.Get(ctx, id)
		if err != nil {
			return e.storeError(err)
		}
		if e.asJSON {
			if changes == nil {
				changes = []consent.Change{}
			}
			return e.printJSON(setResult{ID: id, Changes: changes, Record: rec})
		}
		var b bytes.Buffer
		switch len(changes) {
		case 0:
			b.WriteString("no change (the stored decisions are as new or newer)\n")
		case 1:
			b.WriteString("1 change:\n")
		default:
			fmt.Fprintf(&b, "%d changes:\n", len(changes))
		}
		for _, ch := range changes {
			fmt.Fprintf(&b, "  %s\n", changeText(ch))
		}
		b.WriteString("\n")
		b.Write(recordText(rec))
		if _, err := stdout.Write(b.Bytes()); err != nil {
			return e.failf(exitFail, "write: %v", err)
		}
		return exitOK
	})
}

// changeText formats one change: "category Advertising: false -> true (TIME)".
func changeText(ch consent.Change) string {
	name := ch.Name
	if ch.Kind == consentstore.KindPurpose {
		name = ch.Regulation + "." + ch.Name
	}
	old := "unset"
	if ch.Old != nil {
		old = fmt.Sprint(ch.Old.Consented)
	}
	return fmt.Sprintf("%s %s: %s -> %t (%s)", ch.Kind, name, old, ch.New.Consented, msTime(ch.New.Timestamp))
}

// readInput reads a file, or standard input for "-", up to limit bytes.
func readInput(name string, limit int64) ([]byte, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, unwrapPath(err))
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", inputName(name), err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: longer than %d bytes", inputName(name), limit)
	}
	return data, nil
}

// inputName names a file argument in messages.
func inputName(name string) string {
	if name == "-" {
		return "standard input"
	}
	return name
}

// deleteResult is the --json output of "consent delete".
type deleteResult struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

func runConsentDelete(c *command, args []string, stdout, stderr io.Writer) int {
	e, fs := newConsentEnv(c, stdout, stderr)
	pos, code, ok := e.parse(fs, args, "ID")
	if !ok {
		return code
	}
	id := pos[0]
	return e.withStore(func(ctx context.Context, s *consentstore.Store) int {
		deleted, err := s.Delete(ctx, id)
		if err != nil {
			return e.storeError(err)
		}
		e.warnMemory()
		code := exitOK
		if !deleted {
			code = exitFail
		}
		if e.asJSON {
			if c := e.printJSON(deleteResult{ID: id, Deleted: deleted}); c != exitOK {
				return c
			}
			return code
		}
		if !deleted {
			return e.notFound(id)
		}
		fmt.Fprintf(stdout, "deleted the record of %q, its aliases and its history\n", id)
		return exitOK
	})
}

func runConsentHistory(c *command, args []string, stdout, stderr io.Writer) int {
	e, fs := newConsentEnv(c, stdout, stderr)
	at := fs.String("at", "", "")
	pos, code, ok := e.parse(fs, args, "ID")
	if !ok {
		return code
	}
	id := pos[0]
	var atTime time.Time
	if *at != "" {
		t, err := time.Parse(time.RFC3339Nano, *at)
		if err != nil {
			return usageError(c, stderr, fmt.Sprintf("--at %q: want an RFC 3339 time such as 2024-01-02T15:04:05Z", *at))
		}
		atTime = t
	}
	e.flags.reads = true
	return e.withStore(func(ctx context.Context, s *consentstore.Store) int {
		if *at != "" {
			rec, err := s.AsOf(ctx, id, atTime)
			if errors.Is(err, consent.ErrNotFound) {
				return e.notFound(id)
			}
			if err != nil {
				return e.storeError(err)
			}
			return e.printRecord(rec)
		}
		_, hist, err := s.History(ctx, id)
		if errors.Is(err, consent.ErrNotFound) {
			return e.notFound(id)
		}
		if err != nil {
			return e.storeError(err)
		}
		var b bytes.Buffer
		if e.asJSON {
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			for i := range hist {
				if err := enc.Encode(&hist[i]); err != nil {
					return e.failf(exitFail, "%v", err)
				}
			}
		} else {
			b.Write(historyText(hist))
		}
		if _, err := stdout.Write(b.Bytes()); err != nil {
			return e.failf(exitFail, "write: %v", err)
		}
		return exitOK
	})
}

// historyText formats history entries for people, one per line.
func historyText(hist []consentstore.HistoryEntry) []byte {
	var b bytes.Buffer
	if len(hist) == 0 {
		b.WriteString("(no history)\n")
		return b.Bytes()
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for i := range hist {
		h := &hist[i]
		name := h.Name
		if h.Kind == consentstore.KindPurpose {
			name = h.Regulation + "." + h.Name
		}
		was := "(first)"
		switch {
		case h.Old != nil && h.Changed:
			was = fmt.Sprintf("(was %t)", h.Old.Consented)
		case h.Old != nil:
			was = "(unchanged)"
		}
		src := h.Source
		if src == "" {
			src = "-"
		}
		recorded := ""
		if h.RecordedAt != 0 {
			recorded = "recorded " + msTime(h.RecordedAt)
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%t\t%s\t%s\t%s%s\n", msTime(h.Timestamp), h.Kind, name, h.Consented, was, src, recorded,
			purposeContext(h.Document, h.Location, h.HardwareID))
	}
	tw.Flush()
	return b.Bytes()
}

func runConsentImport(c *command, args []string, stdout, stderr io.Writer) int {
	e, fs := newConsentEnv(c, stdout, stderr)
	replace := fs.Bool("replace", false, "")
	pos, code, ok := e.parse(fs, args, "FILE.ndjson")
	if !ok {
		return code
	}
	file := pos[0]
	var r io.Reader = os.Stdin
	name := "stdin"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return e.failf(exitUsage, "%s: %v", file, unwrapPath(err))
		}
		defer f.Close()
		r, name = f, file
	}
	return e.withStore(func(ctx context.Context, s *consentstore.Store) int {
		importFn := consentstore.Import
		if *replace {
			importFn = consentstore.ImportReplace
		}
		st, err := importFn(ctx, s, r, name, func(line int, err error) {
			fmt.Fprintf(stderr, "%s:%d: %v\n", name, line, err)
		})
		if err != nil {
			e.storeError(err)
		} else {
			e.warnMemory()
		}
		if e.asJSON {
			e.printJSON(st)
		} else {
			fmt.Fprintf(stdout, "%s: %d %s, %d imported, %d failed, %d %s\n", name,
				st.Lines, plural(st.Lines, "line", "lines"), st.Applied, st.Failed, st.Changes, plural(st.Changes, "change", "changes"))
		}
		if err != nil || st.Failed > 0 {
			return exitFail
		}
		return exitOK
	})
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func runConsentExport(c *command, args []string, stdout, stderr io.Writer) int {
	e, fs := newConsentEnv(c, stdout, stderr)
	if _, code, ok := e.parse(fs, args); !ok {
		return code
	}
	e.flags.reads = true
	return e.withStore(func(ctx context.Context, s *consentstore.Store) int {
		if err := consentstore.Export(ctx, s, stdout); err != nil {
			return e.storeError(err)
		}
		return exitOK
	})
}
