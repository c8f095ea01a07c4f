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
	"github.com/insertfn/insertfn/internal/pipeline"
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
		var topics []string
		switch {
		case inbox:
		case len(pos) == 1:
			topics = []string{pipeline.DestinationTopic(pos[0])}
		default:
			for _, t := range q.Topics() {
				if t != pipeline.InboxTopic {
					topics = append(topics, t)
				}
			}
		}
		for _, t := range topics {
			items, err := q.DeadLetters(t, 0, 0)
			if err != nil {
				fmt.Fprintf(stderr, "insertfn dead: %v\n", err)
				return exitFail
			}
			dest := strings.TrimPrefix(t, "dest:")
			for _, it := range items {
				source, ev, err := pipeline.DecodeItem(it.Data)
				if err != nil {
					source, ev = "", it.Data
				}
				if asJSON {
					b, _ := json.Marshal(struct {
						Destination string          `json:"destination"`
						Source      string          `json:"source,omitempty"`
						Seq         uint64          `json:"seq"`
						At          time.Time       `json:"at"`
						Attempts    int             `json:"attempts"`
						Reason      string          `json:"reason"`
						Event       json.RawMessage `json:"event"`
					}{dest, source, it.Seq, it.At, it.Attempts + 1, it.Reason, rawOrString(ev)})
					fmt.Fprintf(stdout, "%s\n", b)
					continue
				}
				fmt.Fprintf(stdout, "%s\t%d\t%s\tattempts: %d\t%s\n\t%s\n", dest, it.Seq, it.At.UTC().Format(time.RFC3339), it.Attempts+1, it.Reason, ev)
			}
		}
		if inbox || len(pos) == 0 {
			if err := listInboxDead(q, stdout, asJSON); err != nil {
				fmt.Fprintf(stderr, "insertfn dead: %v\n", err)
				return exitFail
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
		topic, what := pipeline.InboxTopic, "the inbox"
		if !inbox {
			topic, what = pipeline.DestinationTopic(pos[0]), pos[0]
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

// listInboxDead lists the inbox's dead letters, one line (or one JSON
// object) per event; an item that does not decode is shown as it is.
func listInboxDead(q *queue.Queue, w io.Writer, asJSON bool) error {
	items, err := q.DeadLetters(pipeline.InboxTopic, 0, 0)
	if errors.Is(err, queue.ErrNotFound) { // nothing was ever accepted
		return nil
	}
	if err != nil {
		return err
	}
	for _, it := range items {
		source, events, err := pipeline.DecodeInboxItem(it.Data)
		if err != nil {
			source, events = "", [][]byte{it.Data}
		}
		if !asJSON {
			fmt.Fprintf(w, "(inbox)\t%d\t%s\tattempts: %d\t%s\n", it.Seq, it.At.UTC().Format(time.RFC3339), it.Attempts+1, it.Reason)
		}
		for _, ev := range events {
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
			}{true, source, it.Seq, it.At, it.Attempts + 1, it.Reason, rawOrString(ev)})
			fmt.Fprintf(w, "%s\n", b)
		}
	}
	return nil
}

// queuePath is the queue of the data directory dir (default ./data).
func queuePath(dir string) string {
	c := config.Config{Data: dir}
	if dir == "" {
		c.Data = config.DefaultData
	}
	return c.QueuePath()
}

func rawOrString(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}
