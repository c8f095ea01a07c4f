package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/internal/queue"
)

var deadCmd = &command{
	name:  "dead",
	short: "list, replay or drop the events a destination gave up on (dead letters)",
	usage: `usage: insertfn dead list|replay|drop [DESTINATION | --inbox] [SEQ...] [--data DIR | --config FILE] [--json]

Events a destination refused for good (a 4xx answer) or kept failing past
delivery.backoff.max_attempts are kept as dead letters in the durable queue.

  insertfn dead list [DESTINATION]        every dead letter (of one destination):
                                          seq, time, attempts, reason, event
  insertfn dead replay DESTINATION [SEQ...]  put them back in the destination's
                                          backlog (all when no SEQ is given)
  insertfn dead drop DESTINATION [SEQ...]    delete them for good

The inbox has dead letters too: accepted requests the pipeline could not
read (damaged on disk, or accepted by a newer insertfn and met by an
older one after a downgrade: upgrade again, then replay them). "insertfn dead list" shows them after the destinations' (one line
per event, all with the request's seq); --inbox instead of a destination
lists, replays (into the inbox, to be processed again) or drops only them.

The queue is locked by a running server: stop it first.

  --inbox         the inbox's dead letters instead of a destination's
  --data DIR      the data directory (default ./data)
  --config FILE   the server's configuration (for its data directory)
  --json          list as NDJSON
`,
	run: runDead,
}

func runDead(c *command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, c.usage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return exitOK
		}
		return exitUsage
	}
	sub := args[0]
	fs := newFlagSet("dead " + sub)
	var data, cfgPath string
	var asJSON, inbox bool
	fs.StringVar(&data, "data", "", "")
	fs.StringVar(&cfgPath, "config", "", "")
	fs.BoolVar(&asJSON, "json", false, "")
	fs.BoolVar(&inbox, "inbox", false, "")
	pos, code, ok := parseArgs(c, fs, args[1:], stdout, stderr)
	if !ok {
		return code
	}
	named := 1 // positional arguments before the sequence numbers
	if inbox {
		named = 0
	}
	switch {
	case sub != "list" && sub != "replay" && sub != "drop":
		fmt.Fprintf(stderr, "insertfn dead: unknown subcommand %q (list, replay or drop)\n", sub)
		return exitUsage
	case sub == "list" && len(pos) > named:
		fmt.Fprint(stderr, c.usage)
		return exitUsage
	case sub != "list" && len(pos) < named:
		fmt.Fprintf(stderr, "insertfn dead %s: which destination (or --inbox)?\n", sub)
		return exitUsage
	}
	path := queuePath(data)
	if cfgPath != "" {
		cfg, err := config.Load(cfgPath)
		if err != nil {
			fmt.Fprintf(stderr, "insertfn dead: %v\n", err)
			return exitUsage
		}
		if data != "" {
			cfg.Data = data
		}
		path = cfg.QueuePath()
	}
	q, err := queue.Open(path, queue.Options{LockTimeout: time.Second})
	if err != nil {
		fmt.Fprintf(stderr, "insertfn dead: %v\n", err)
		if errors.Is(err, queue.ErrLocked) {
			fmt.Fprintln(stderr, "(a running insertfn serve holds the queue: stop it first)")
		}
		return exitFail
	}
	defer q.Close()
	ctx := context.Background()

	switch sub {
	case "list":
		var query queue.DeadQuery // every destination's, then the inbox's
		switch {
		case inbox:
			query.Topic = queue.InboxTopic
		case len(pos) == 1:
			query.Topic = queue.DestinationTopic(pos[0])
		}
		page, err := q.ListDead(query)
		if inbox && errors.Is(err, queue.ErrNotFound) {
			err = nil // nothing was ever accepted
		}
		if err != nil {
			fmt.Fprintf(stderr, "insertfn dead: %v\n", err)
			return exitFail
		}
		for _, d := range page.Letters {
			if d.Topic.IsInbox() {
				printInboxDead(stdout, d, asJSON)
			} else {
				printDestinationDead(stdout, d, asJSON)
			}
		}
		return exitOK
	default: // replay, drop
		var seqs []uint64
		for _, s := range pos[named:] {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				fmt.Fprintf(stderr, "insertfn dead %s: %q is not a sequence number (see insertfn dead list)\n", sub, s)
				return exitUsage
			}
			seqs = append(seqs, n)
		}
		topic, what := queue.InboxTopic, "the inbox"
		if !inbox {
			topic, what = queue.DestinationTopic(pos[0]), pos[0]
		}
		var n int
		if sub == "replay" {
			n, err = q.Replay(ctx, topic, seqs...)
		} else {
			n, err = q.DropDead(ctx, topic, seqs...)
		}
		if err != nil {
			fmt.Fprintf(stderr, "insertfn dead %s: %v\n", sub, err)
			return exitFail
		}
		verb := map[string]string{"replay": "put back in the backlog", "drop": "deleted"}[sub]
		if inbox && sub == "replay" {
			verb = "put back to be processed again"
		}
		fmt.Fprintf(stdout, "%d dead letters of %s %s\n", n, what, verb)
		return exitOK
	}
}

// printDestinationDead prints a destination's dead letter: two lines, or
// one JSON object.
func printDestinationDead(w io.Writer, d queue.DeadLetter, asJSON bool) {
	dest, ok := d.Topic.Destination()
	if !ok {
		dest = string(d.Topic) // a topic of no destination is shown by its name
	}
	ev := d.Events[0]
	if !asJSON {
		fmt.Fprintf(w, "%s\t%d\t%s\tattempts: %d\t%s\n\t%s\n", dest, d.Seq, d.At.UTC().Format(time.RFC3339), d.Tries, d.Reason, ev)
		return
	}
	b, _ := json.Marshal(struct {
		Destination string          `json:"destination"`
		Source      string          `json:"source,omitempty"`
		Seq         uint64          `json:"seq"`
		At          time.Time       `json:"at"`
		Attempts    int             `json:"attempts"`
		Reason      string          `json:"reason"`
		Event       json.RawMessage `json:"event"`
	}{dest, d.Source, d.Seq, d.At, d.Tries, d.Reason, rawOrString(ev)})
	fmt.Fprintf(w, "%s\n", b)
}

// printInboxDead prints an inbox dead letter: a line, then one line per
// event of its request; or one JSON object per event.
func printInboxDead(w io.Writer, d queue.DeadLetter, asJSON bool) {
	if !asJSON {
		fmt.Fprintf(w, "(inbox)\t%d\t%s\tattempts: %d\t%s\n", d.Seq, d.At.UTC().Format(time.RFC3339), d.Tries, d.Reason)
	}
	for _, ev := range d.Events {
		if !asJSON {
			fmt.Fprintf(w, "\t%s\n", ev)
			continue
		}
		b, _ := json.Marshal(struct {
			Inbox    bool            `json:"inbox"`
			Source   string          `json:"source,omitempty"`
			Seq      uint64          `json:"seq"`
			At       time.Time       `json:"at"`
			Attempts int             `json:"attempts"`
			Reason   string          `json:"reason"`
			Event    json.RawMessage `json:"event"`
		}{true, d.Source, d.Seq, d.At, d.Tries, d.Reason, rawOrString(ev)})
		fmt.Fprintf(w, "%s\n", b)
	}
}

// queuePath is the queue of the data directory dir (default ./data).
func queuePath(dir string) string {
	c := config.Config{Data: dir}
	if dir == "" {
		c.Data = config.DefaultData
	}
	return c.QueuePath()
}

// rawOrString returns b as a JSON value: itself when valid JSON, else a
// JSON string of it.
func rawOrString(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}
