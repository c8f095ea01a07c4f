package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/insertfn/insertfn/internal/app"
	"github.com/insertfn/insertfn/internal/config"
)

var serveCmd = &command{
	name:  "serve",
	short: "run the server: Segment-compatible ingest, functions, consent routing, delivery",
	usage: `usage: insertfn serve [--config FILE] [--listen ADDR] [--admin-listen ADDR] [--data DIR] [--write-key KEY] [--function FILE.wasm]...

Runs the server: it accepts events the way Segment's HTTP tracking API does
(POST /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias,
/v1/batch), answers 200 once they are in the durable queue, updates the
consent store from "Segment Consent Preference" events, runs each source's
functions, routes what survives to destinations by consent, and delivers.

With no --config it runs on embedded defaults: 127.0.0.1:8080, data in
./data (embedded consent store, queue, data/events.ndjson as destination),
the consent-match example (bin/examples/consent-match.wasm, built by
"make examples") as the function of one source "default", whose write key
is kept in data/write-key and printed at start-up.

Flags override the configuration:
  --config FILE       the YAML configuration
  --listen ADDR       the address to listen on
  --admin-listen ADDR the admin API's address (default 127.0.0.1:8081)
  --data DIR          the data directory
  --write-key KEY     the write key of the first source
  --function FILE     a wasm function for the first source's chain (repeatable;
                      replaces the chain; named after the file)

SIGINT or SIGTERM stops it gracefully: no new requests, requests in flight
finish, batches in hand are handed on; what is not delivered yet stays in
the queue for the next start.
`,
	run: runServe,
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func runServe(c *command, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, c.usage) }
	var cfgPath, listen, adminListen, data, writeKey string
	var fns stringList
	fs.StringVar(&cfgPath, "config", "", "")
	fs.StringVar(&listen, "listen", "", "")
	fs.StringVar(&adminListen, "admin-listen", "", "")
	fs.StringVar(&data, "data", "", "")
	fs.StringVar(&writeKey, "write-key", "", "")
	fs.Var(&fns, "function", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "insertfn serve: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg, err := serveConfig(cfgPath, listen, data, writeKey, fns)
	if err == nil && adminListen != "" {
		cfg.Admin.Listen = adminListen
	}
	if err != nil {
		fmt.Fprintf(stderr, "insertfn serve: %v\n", err)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	h, err := app.Start(ctx, cfg, app.Options{Logger: log, SummaryEvery: 5 * time.Second})
	if err != nil {
		fmt.Fprintf(stderr, "insertfn serve: %v\n", err)
		return exitFail
	}
	printBanner(stdout, cfg, h)
	err = h.Wait(ctx)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "insertfn serve: %v\n", err)
	}
	fmt.Fprintln(stdout, "insertfn: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "insertfn serve: shutdown: %v\n", err)
		return exitFail
	}
	return exitOK
}

// serveConfig loads the configuration (or the default) and applies the
// flags.
func serveConfig(path, listen, data, writeKey string, fns []string) (*config.Config, error) {
	var cfg *config.Config
	var err error
	if path != "" {
		// The configuration resolves its relative paths against its own
		// directory; a flag's path is the command line's, relative to
		// the working directory.
		if data, err = absPath(data); err != nil {
			return nil, err
		}
		fns = slices.Clone(fns)
		for i := range fns {
			if fns[i], err = absPath(fns[i]); err != nil {
				return nil, err
			}
		}
		cfg, err = config.Load(path)
	} else {
		if data == "" {
			data = config.DefaultData
		}
		if writeKey == "" {
			writeKey, err = config.WriteKey(data)
			if err != nil {
				return nil, err
			}
		}
		cfg, err = config.Default(writeKey)
		if err == nil {
			cfg.Destinations[0].FileConfig.Path = filepath.Join(data, "events.ndjson")
		}
	}
	if err != nil {
		return nil, err
	}
	if listen != "" {
		cfg.Listen, cfg.Server.Listen = listen, listen
	}
	if data != "" {
		cfg.Data = data
	}
	if writeKey != "" {
		cfg.Sources[0].WriteKeys = []string{writeKey}
	}
	if len(fns) > 0 {
		var chain []string
		for _, f := range fns {
			name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".wasm"), ".js")
			cfg.Functions = append(cfg.Functions, config.Function{Name: name, Wasm: f})
			chain = append(chain, name)
		}
		// Drop functions no longer used, so a default consent-match that
		// was not built does not stop the start.
		cfg.Sources[0].Functions = chain
		cfg.Functions = usedFunctions(cfg)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// absPath returns p as an absolute path; "" stays "".
func absPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("insertfn serve: path %s: %w", p, err)
	}
	return abs, nil
}

// usedFunctions keeps the functions some source or destination names, the
// last definition of each name winning.
func usedFunctions(cfg *config.Config) []config.Function {
	used := make(map[string]bool)
	for _, s := range cfg.Sources {
		for _, f := range s.Functions {
			used[f] = true
		}
	}
	for _, d := range cfg.Destinations {
		for _, f := range d.Functions {
			used[f] = true
		}
	}
	var out []config.Function
	seen := make(map[string]int)
	for _, f := range cfg.Functions {
		if !used[f.Name] {
			continue
		}
		if i, ok := seen[f.Name]; ok {
			out[i] = f
			continue
		}
		seen[f.Name] = len(out)
		out = append(out, f)
	}
	return out
}

func printBanner(w io.Writer, cfg *config.Config, h *app.Server) {
	addr := h.Addr().String()
	fmt.Fprintf(w, "insertfn serving on http://%s (data in %s)\n", addr, cfg.DataDir())
	for _, s := range cfg.Sources {
		fmt.Fprintf(w, "  source %s: write key %s; functions: %s\n", s.Name, strings.Join(s.WriteKeys, ", "), orNone(s.Functions))
	}
	for _, d := range cfg.Destinations {
		where := d.Type
		switch d.Type {
		case "file":
			where += " " + cfg.Path(d.FileConfig.Path)
		case "webhook":
			where += " " + d.WebhookConfig.URL
		}
		fmt.Fprintf(w, "  destination %s (%s); categories: %s\n", d.Name, where, orNone(d.Categories))
	}
	fmt.Fprintf(w, "  admin API on http://%s (token: %s); delivery overview: http://%s/admin/overview/\n",
		h.AdminAddr(), adminTokenHint(cfg, h), h.AdminAddr())
	if len(cfg.Sources) > 0 && len(cfg.Sources[0].WriteKeys) > 0 {
		fmt.Fprintf(w, "try:\n  curl -u %s: http://%s/v1/track -H 'Content-Type: application/json' \\\n"+
			"    -d '{\"userId\":\"u123\",\"event\":\"Order Completed\",\"context\":{\"consent\":{\"categoryPreferences\":{\"Advertising\":true,\"Analytics\":false}}}}'\n",
			cfg.Sources[0].WriteKeys[0], addr)
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// adminTokenHint says where the admin token is, without printing a
// configured one.
func adminTokenHint(cfg *config.Config, h *app.Server) string {
	path := filepath.Join(cfg.DataDir(), "admin-token")
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == h.AdminToken() {
		return "in " + path
	}
	return "as configured"
}
