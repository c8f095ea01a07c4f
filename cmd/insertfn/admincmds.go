package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/admin"
	"github.com/insertfn/insertfn/internal/config"
	"github.com/insertfn/insertfn/internal/pipeline"
)

// The commands that drive a running server through its admin API.
var (
	deployCmd = &command{
		name:  "deploy",
		short: "upload a function version to a running server and make it live",
		usage: `usage: insertfn deploy FILE.wasm|FILE.js --name NAME [--settings FILE] [--on-error drop|deliver] [--retries N]
                      [--fetch-allow PREFIX ...] [--fetch-timeout D] [admin flags]

Uploads FILE.wasm as a new version of function NAME. The server compiles and
starts it before it goes live; a module that fails to compile, fails the ABI
check or traps at start is refused with the reason, and the version already
live keeps serving. Events in flight are never dropped by the swap. A file
and settings identical to the live version's change nothing (it says
"already live"); a version deployed before is made live again, and
'insertfn rollback' goes back to the one it replaced.

A JavaScript function's fetch reaches only the URL prefixes --fetch-allow
gives (repeatable; its manifest's fetch.allow), each request within
--fetch-timeout (default 2s).
` + adminFlagsHelp,
		run: runDeploy,
	}
	functionsCmd = &command{
		name:  "functions",
		short: "list a running server's functions and their versions",
		usage: "usage: insertfn functions [--json] [admin flags]\n\n" + adminFlagsHelp,
		run:   runFunctions,
	}
	rollbackCmd = &command{
		name:  "rollback",
		short: "make a function's previous version live again",
		usage: "usage: insertfn rollback NAME [admin flags]\n\nRolls NAME back to the version that was live before the current one (its\nsettings too). A second rollback undoes the first.\n" + adminFlagsHelp,
		run:   runRollback,
	}
	logsCmd = &command{
		name:  "logs",
		short: "print the last lines a function logged, with each event's messageId",
		usage: "usage: insertfn logs NAME [-n N] [--json] [admin flags]\n\n" + adminFlagsHelp,
		run:   runLogs,
	}
)

const adminFlagsHelp = `
Admin flags (the server's admin API):
  --admin URL    its address (default http://127.0.0.1:8081)
  --data DIR     read the token a default server keeps in DIR/admin-token
                 (default ./data) when INSERTFN_ADMIN_TOKEN is not set
`

// adminFlags are the flags every admin command takes.
type adminFlags struct {
	url, data string
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.url, "admin", "http://"+admin.DefaultListen, "")
	fs.StringVar(&a.data, "data", config.DefaultData, "")
}

// client returns the admin client: the token from INSERTFN_ADMIN_TOKEN, or
// else from DATA/admin-token.
func (a *adminFlags) client() (*admin.Client, error) {
	tok := os.Getenv(admin.DefaultTokenEnv)
	if tok == "" {
		b, err := os.ReadFile(filepath.Join(a.data, "admin-token"))
		if err != nil {
			return nil, fmt.Errorf("no admin token: set %s, or point --data at the server's data directory (%v)", admin.DefaultTokenEnv, err)
		}
		tok = strings.TrimSpace(string(b))
	}
	u := a.url
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return &admin.Client{URL: strings.TrimRight(u, "/"), Token: tok, HTTP: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// parseAdmin parses an admin command's flags (before or after its
// arguments) with the admin flags and extra's.
func parseAdmin(c *command, args []string, stdout, stderr io.Writer, extra func(*flag.FlagSet)) (*adminFlags, []string, int, bool) {
	fs := newFlagSet(c.name)
	var af adminFlags
	af.register(fs)
	if extra != nil {
		extra(fs)
	}
	pos, code, ok := parseArgs(c, fs, args, stdout, stderr)
	return &af, pos, code, ok
}

func adminFailed(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "insertfn %s: %v\n", name, err)
	var apiErr *admin.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode < 500 {
		return exitUsage
	}
	return exitFail
}

func runDeploy(c *command, args []string, stdout, stderr io.Writer) int {
	var name, settings, onError string
	var retries int
	var fetchAllow stringList
	var fetchTimeout time.Duration
	af, pos, code, ok := parseAdmin(c, args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.Var(&fetchAllow, "fetch-allow", "")
		fs.DurationVar(&fetchTimeout, "fetch-timeout", 0, "")
		fs.StringVar(&name, "name", "", "")
		fs.StringVar(&settings, "settings", "", "")
		fs.StringVar(&onError, "on-error", "", "")
		fs.IntVar(&retries, "retries", 0, "")
	})
	if !ok {
		return code
	}
	if len(pos) != 1 || name == "" {
		fmt.Fprint(stderr, c.usage)
		return exitUsage
	}
	wasm, err := os.ReadFile(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "insertfn deploy: %v\n", err)
		return exitUsage
	}
	m := functions.Manifest{Name: name, OnError: functions.FailurePolicy(onError), Retries: retries,
		Fetch: functions.ManifestFetch{Allow: fetchAllow, Timeout: functions.Duration{Duration: fetchTimeout}}}
	if strings.HasSuffix(strings.ToLower(pos[0]), ".js") {
		m.Runtime = functions.RuntimeJS // a Segment function file, as it is
	}
	if settings != "" {
		if m.Settings, err = os.ReadFile(settings); err != nil {
			fmt.Fprintf(stderr, "insertfn deploy: %v\n", err)
			return exitUsage
		}
	}
	cl, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "insertfn deploy: %v\n", err)
		return exitUsage
	}
	info, err := cl.Deploy(context.Background(), m, wasm)
	if err != nil {
		return adminFailed(stderr, "deploy", err)
	}
	if info.Unchanged {
		fmt.Fprintf(stdout, "%s: version %s (%d bytes) is already live with these settings: nothing changed\n", info.Name, short(info.Hash), info.Size)
		return exitOK
	}
	fmt.Fprintf(stdout, "%s: version %s (%d bytes) is live\n", info.Name, short(info.Hash), info.Size)
	return exitOK
}

func runFunctions(c *command, args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	af, pos, code, ok := parseAdmin(c, args, stdout, stderr, func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "") })
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprint(stderr, c.usage)
		return exitUsage
	}
	cl, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "insertfn functions: %v\n", err)
		return exitUsage
	}
	list, err := cl.Functions(context.Background())
	if err != nil {
		return adminFailed(stderr, "functions", err)
	}
	if asJSON {
		json.NewEncoder(stdout).Encode(list)
		return exitOK
	}
	for _, f := range list {
		fmt.Fprintf(stdout, "%s\tlive: %s\n", f.Name, orDash(short(f.Active)))
		for _, v := range f.Versions {
			mark := " "
			if v.Active {
				mark = "*"
			}
			fmt.Fprintf(stdout, "  %s %s  %7d bytes  uploaded %s\n", mark, short(v.Hash), v.Size, v.UploadedAt.UTC().Format(time.RFC3339))
		}
	}
	return exitOK
}

func runRollback(c *command, args []string, stdout, stderr io.Writer) int {
	af, pos, code, ok := parseAdmin(c, args, stdout, stderr, nil)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, c.usage)
		return exitUsage
	}
	cl, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "insertfn rollback: %v\n", err)
		return exitUsage
	}
	info, err := cl.Rollback(context.Background(), pos[0])
	if err != nil {
		return adminFailed(stderr, "rollback", err)
	}
	fmt.Fprintf(stdout, "%s: version %s is live again\n", info.Name, short(info.Hash))
	return exitOK
}

func runLogs(c *command, args []string, stdout, stderr io.Writer) int {
	var n int
	var asJSON bool
	af, pos, code, ok := parseAdmin(c, args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.IntVar(&n, "n", 100, "")
		fs.BoolVar(&asJSON, "json", false, "")
	})
	if !ok {
		return code
	}
	if len(pos) != 1 || n < 1 {
		fmt.Fprint(stderr, c.usage)
		return exitUsage
	}
	cl, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "insertfn logs: %v\n", err)
		return exitUsage
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/admin/functions/%s/logs?n=%d", cl.URL, url.PathEscape(pos[0]), n), nil)
	req.Header.Set("Authorization", "Bearer "+cl.Token)
	resp, err := cl.HTTP.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "insertfn logs: %v\n", err)
		return exitFail
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "insertfn logs: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		return exitFail
	}
	var lines []pipeline.LogEntry
	if err := json.Unmarshal(body, &lines); err != nil {
		fmt.Fprintf(stderr, "insertfn logs: %v\n", err)
		return exitFail
	}
	if len(lines) == 0 && !asJSON {
		// Not an error, but an empty screen says nothing: say why.
		fmt.Fprintf(stderr, "insertfn logs: %s has logged nothing since the server started (the server keeps a function's last lines in memory)\n", pos[0])
	}
	for _, l := range lines {
		if asJSON {
			b, _ := json.Marshal(l)
			fmt.Fprintf(stdout, "%s\n", b)
			continue
		}
		fmt.Fprintf(stdout, "%s %-5s %s  %s\n", l.Time.UTC().Format(time.RFC3339Nano), l.Level, orDash(l.MessageID), l.Message)
	}
	return exitOK
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
