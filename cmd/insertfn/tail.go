package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/pipeline/tap"
)

var tailCmd = &command{
	name:  "tail",
	short: "watch what becomes of a running server's events, live",
	usage: `usage: insertfn tail [--source S] [--type T] [--user ID] [--fate F] [--json] [--full]
                     [-n N] [--rate N] [--sample N] [--no-follow] [admin flags]

Prints one line per event and stage as events pass through a running server:
what the source's functions did (dropped, and by which function and why), the
consent update a preference event made, each destination's fate (queued,
filtered by consent with the categories not granted, filtered by the
integrations object, dropped by its own function), then each delivery,
retry and dead letter. Ctrl-C ends it.

  18:02:11.412  web  track  "Order Completed"  user=u123  msg=4f1c2d3e77b0…  dropped by consent-match: Consent mismatch
  18:02:11.415  web  track  "Order Completed"  user=u123  msg=9a2e7b10c4d1…  routed: events-file queued; ads filtered by consent (Advertising)
  18:02:11.530  web  track  "Order Completed"  user=u123  msg=9a2e7b10c4d1…  delivered to events-file

Filters (all must match):
  --source S     events of source S
  --type T       events of type T (track, identify, page, screen, group, alias)
  --user ID      events whose userId or anonymousId is ID
  --fate F       records of fate F: dropped, routed, filtered, delivered,
                 retried, failed, or a destination's: queued,
                 filtered_consent, filtered_integrations, filtered_filter

Output:
  --json         one record a line, as JSON
  --full         the event itself after each line (as the stage received it)
  -n N           first print up to N of the last records the server kept
                 (at most 256; default 0, or all it kept with --no-follow)
  --no-follow    print the last records and end
  --rate N       at most N records a second (default 100, at most 2000)
  --sample N     one in N of the records that match

A watcher never slows the server down: what it cannot take is left out and
reported on stderr as missed.
` + adminFlagsHelp,
	run: runTail,
}

func runTail(c *command, args []string, stdout, stderr io.Writer) int {
	var q admin.TailQuery
	var asJSON bool
	var fate string
	n := -1 // not given
	af, pos, code, ok := parseAdmin(c, args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&q.Filter.Source, "source", "", "")
		fs.StringVar(&q.Filter.Type, "type", "", "")
		fs.StringVar(&q.Filter.User, "user", "", "")
		fs.StringVar(&fate, "fate", "", "")
		fs.BoolVar(&asJSON, "json", false, "")
		fs.BoolVar(&q.Filter.Full, "full", false, "")
		fs.IntVar(&n, "n", -1, "")
		fs.IntVar(&q.Filter.Rate, "rate", 0, "")
		fs.IntVar(&q.Filter.Sample, "sample", 0, "")
		fs.BoolVar(&q.NoFollow, "no-follow", false, "")
	})
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(c, stderr, fmt.Sprintf("unexpected argument %q", pos[0]))
	}
	q.Filter.Fate = tap.Fate(fate)
	if err := q.Filter.Validate(); err != nil {
		return usageError(c, stderr, "--"+err.Error())
	}
	switch {
	case n == -1 && q.NoFollow:
		n = tap.HistorySize
	case n == -1:
		n = 0
	case n < 0 || n > tap.HistorySize:
		return usageError(c, stderr, fmt.Sprintf("-n %d: want 0 to %d (the records the server keeps)", n, tap.HistorySize))
	}
	q.Recent = n
	cl, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "insertfn tail: %v\n", err)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &tailPrinter{w: stdout, json: asJSON, full: q.Filter.Full}
	err = cl.Tail(ctx, q, func(m admin.TailMessage) error {
		if m.Record == nil {
			fmt.Fprintf(stderr, "insertfn tail: missed %d events (the watcher fell behind: narrow the filters, or --sample)\n", m.Missed)
			return nil
		}
		return p.print(m.Record)
	})
	var apiErr *admin.APIError
	var opErr *net.OpError
	switch {
	case err == nil && p.printed == 0:
		// Not an error, but an empty screen says nothing: say why.
		fmt.Fprintf(stderr, "insertfn tail: none of the last records the server kept matches (it keeps the last %d, at most %d a second)\n",
			tap.HistorySize, tap.HistoryRate)
		return exitOK
	case err == nil || ctx.Err() != nil: // the end of --no-follow, or Ctrl-C
		return exitOK
	case errors.Is(err, admin.ErrTailEnded):
		fmt.Fprintln(stderr, "insertfn tail: the server ended the stream: it is shutting down")
	case errors.As(err, &apiErr) && apiErr.StatusCode == 401:
		fmt.Fprintf(stderr, "insertfn tail: the admin API at %s refused the token: set %s to the server's admin token, or --data to its data directory (it keeps DATA/admin-token)\n",
			cl.URL, admin.DefaultTokenEnv)
	case errors.As(err, &apiErr) && apiErr.StatusCode == 400:
		fmt.Fprintf(stderr, "insertfn tail: %v\n", err)
		return exitUsage
	case errors.As(err, &opErr) && opErr.Op == "dial":
		fmt.Fprintf(stderr, "insertfn tail: cannot reach the admin API at %s: is insertfn serve running? (--admin sets the address)\n  %v\n", cl.URL, opErr.Err)
	default:
		fmt.Fprintf(stderr, "insertfn tail: %v\n", err)
	}
	return exitFail
}

// Widths of the columns of tail's lines: they grow to the widest value
// seen, up to these, so that lines line up without one long value
// pushing every other line.
const (
	maxSourceWidth = 16
	maxTypeWidth   = 8
	maxEventWidth  = 32
	maxUserWidth   = 24
)

// tailPrinter prints tail's records: aligned lines, or JSON lines.
type tailPrinter struct {
	w          io.Writer
	json, full bool
	widths     [4]int // source, type, event, user
	printed    int    // records printed
}

// print prints one record.
func (p *tailPrinter) print(r *tap.Record) error {
	p.printed++
	if p.json {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode a record: %w", err)
		}
		_, err = fmt.Fprintf(p.w, "%s\n", b)
		return err
	}
	var b strings.Builder
	b.WriteString(r.Time.Local().Format("15:04:05.000"))
	user := "user=" + orDash(r.UserID)
	if r.UserID == "" && r.AnonymousID != "" {
		user = "anon=" + r.AnonymousID
	}
	event := "-"
	if r.Event != "" {
		event = fmt.Sprintf("%q", r.Event)
	}
	for i, col := range []struct {
		s   string
		max int
	}{{orDash(r.Source), maxSourceWidth}, {orDash(r.Type), maxTypeWidth}, {event, maxEventWidth}, {user, maxUserWidth}} {
		w := utf8.RuneCountInString(col.s)
		p.widths[i] = max(p.widths[i], min(w, col.max))
		b.WriteString("  ")
		b.WriteString(col.s)
		b.WriteString(strings.Repeat(" ", max(p.widths[i]-w, 0)))
	}
	b.WriteString("  msg=")
	b.WriteString(shortID(r.MessageID))
	b.WriteString("  ")
	b.WriteString(outcome(r))
	b.WriteByte('\n')
	if p.full {
		switch {
		case r.PayloadBytes > 0:
			fmt.Fprintf(&b, "    (the event, %d bytes, is larger than the %d bytes a record carries)\n", r.PayloadBytes, tap.MaxPayload)
		case len(r.Payload) > 0:
			var ind bytes.Buffer
			if json.Indent(&ind, r.Payload, "    ", "  ") != nil {
				ind.Reset()
				ind.Write(r.Payload)
			}
			b.WriteString("    ")
			b.Write(ind.Bytes())
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(p.w, b.String())
	return err
}

// shortID shortens a messageId to its first characters: enough to tell
// an event's records from others' on one screen.
func shortID(id string) string {
	const keep = 12
	if utf8.RuneCountInString(id) <= keep+1 {
		return orDash(id)
	}
	return string([]rune(id)[:keep]) + "…"
}

// outcome says in words what became of the event in r.
func outcome(r *tap.Record) string {
	var parts []string
	if r.ConsentUpdate == tap.ConsentApplied {
		parts = append(parts, "consent updated")
	} else if r.ConsentUpdate != "" {
		parts = append(parts, "consent update "+r.ConsentUpdate)
	}
	attempt := func() string {
		if r.Attempt > 1 {
			return fmt.Sprintf(" (attempt %d)", r.Attempt)
		}
		return ""
	}
	switch r.Fate {
	case tap.Dropped:
		parts = append(parts, fmt.Sprintf("dropped by %s: %s", orDash(r.Function), orDash(r.Reason)))
	case tap.Routed, tap.Filtered:
		s := string(r.Fate)
		if d := destinationFates(r.Destinations); d != "" {
			s += ": " + d
		}
		parts = append(parts, s)
	case tap.Delivered:
		parts = append(parts, "delivered to "+r.Destination+attempt())
	case tap.Retried:
		parts = append(parts, fmt.Sprintf("delivery to %s failed (attempt %d), will retry: %s", r.Destination, r.Attempt, r.Error))
	case tap.Failed:
		parts = append(parts, fmt.Sprintf("delivery to %s failed for good (attempt %d), dead-lettered: %s", r.Destination, r.Attempt, r.Error))
	default:
		parts = append(parts, string(r.Fate))
	}
	return strings.Join(parts, "; ")
}

// destinationFates says each destination's fate: "events-file queued; ads
// filtered by consent (Advertising)".
func destinationFates(ds []tap.DestinationFate) string {
	var out []string
	for _, d := range ds {
		var s string
		switch d.Fate {
		case tap.Queued:
			s = d.Name + " queued"
		case tap.FilteredConsent:
			s = d.Name + " filtered by consent"
			if len(d.Categories) > 0 {
				s += " (" + strings.Join(d.Categories, ", ") + ")"
			}
		case tap.FilteredIntegrations:
			s = d.Name + " filtered by the integrations object"
		case tap.FilteredFilter:
			s = d.Name + " filtered by its filter " + strconv.Quote(d.Filter)
		case tap.Dropped:
			s = fmt.Sprintf("%s dropped by %s: %s", d.Name, orDash(d.Function), orDash(d.Reason))
		default:
			s = d.Name + " " + string(d.Fate)
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}
