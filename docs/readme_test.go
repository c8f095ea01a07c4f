//go:build !race

package docs_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestREADME runs the commands of the README's ```sh blocks, in order, in
// a fresh clone of the repository's HEAD, as a newcomer would type them,
// and checks what the README promises of them. It keeps the README true:
// a command that no longer works, or no longer does what the README says,
// fails here.
//
// Every command runs in one shell, one after the other (so variables and
// exports carry over, as in a terminal), with standard input closed; a
// command is a line with its continuation lines (an open quote, a
// trailing backslash). It must exit 0. Two commands are recognised:
//
//   - make run starts in the background (its own terminal, in the README),
//     and the test waits until it listens on 127.0.0.1:8080 and :8081;
//   - make test is not run (it is what runs this test).
//
// An HTML comment on the line before a block sets up its terminal:
//
//   - <!-- readme-test: server stopped -->: the server is stopped first
//     (Ctrl-C), if it runs;
//   - <!-- readme-test: server running -->: make run is started first, if
//     the server does not run;
//   - <!-- readme-test: background -->: each command of the block runs in
//     the background until the server stops (a command that follows a
//     stream until interrupted);
//   - <!-- readme-test: skip -->: the block is not run.
//
// What the README promises of a command is in [promises]: the output of
// every command a promise's pattern matches must match the promise, and
// each promise must match some command. A new command needs no change
// here: it runs and must exit 0.
//
// The test builds the binary and the examples in the clone (Go's build
// cache makes that quick after the first build); it does not run under
// -race (this file's build constraint) or -short. It runs the README
// committed at HEAD: commit a change to the README to test it.
func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the README's commands build and run the server")
	}
	for _, tool := range []string{"git", "make", "go", "curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (%v): the README's commands need it", tool, err)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
		t.Skipf("%s is not a git checkout (%v): the test runs the README in a fresh clone of its HEAD", root, err)
	}
	clone := filepath.Join(t.TempDir(), "insertfn")
	if out, err := exec.Command("git", "clone", "--quiet", root, clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone %s: %v\n%s", root, err, out)
	}
	readme, err := os.ReadFile(filepath.Join(clone, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := shellBlocks(string(readme))
	if len(blocks) == 0 {
		t.Fatal("the README has no ```sh block")
	}

	r := &readmeRun{t: t, dir: clone, env: readmeEnv()}
	r.sh = startShell(t, clone, r.env)
	t.Cleanup(r.stopServer)
	matched := make([]bool, len(promises))
	for _, b := range blocks {
		switch b.mode {
		case "skip":
			t.Logf("README:%d: skipped (readme-test: skip)", b.line)
			continue
		case "server stopped":
			r.stopServer()
		case "server running":
			r.startServer()
		case "", "background":
		default:
			t.Fatalf("README:%d: unknown <!-- readme-test: %s --> (want server stopped, server running, background or skip)", b.line, b.mode)
		}
		for _, c := range commands(t, b) {
			switch {
			case strings.HasPrefix(c.text, "make run"):
				r.startServer()
				continue
			case strings.HasPrefix(c.text, "make test"):
				t.Logf("README:%d: make test not run (it runs this test)", c.line)
				continue
			case b.mode == "background":
				r.background(c)
				continue
			}
			out, code := r.sh.run(t, c.text, 5*time.Minute)
			t.Logf("README:%d: $ %s\n%s", c.line, c.text, clip(out))
			if code != 0 {
				t.Fatalf("README:%d: %s\nexited %d:\n%s", c.line, c.text, code, out)
			}
			for i, p := range promises {
				if p.command.MatchString(c.text) {
					matched[i] = true
					p.check(t, r, c, out)
				}
			}
		}
	}
	for i, p := range promises {
		if !matched[i] {
			t.Errorf("no README command matches %q: the README no longer shows it; update the promises of docs/readme_test.go", p.command)
		}
	}
}

// clip returns the first lines of a long output, for the test's log.
func clip(out string) string {
	const max = 30
	lines := strings.SplitAfter(out, "\n")
	if len(lines) <= max+1 {
		return out
	}
	return strings.Join(lines[:max], "") + fmt.Sprintf("... (%d more lines)\n", len(lines)-max)
}

// A promise is what the README says of the commands its pattern matches.
type promise struct {
	command *regexp.Regexp
	// output must match the command's output (stdout and stderr).
	output *regexp.Regexp
	// after, when set, checks the state the command leaves.
	after func(t *testing.T, r *readmeRun)
}

func (p promise) check(t *testing.T, r *readmeRun, c command, out string) {
	t.Helper()
	if p.output != nil && !p.output.MatchString(out) {
		t.Errorf("README:%d: %s\nprints\n%s\nwhich does not match %q, as the README promises", c.line, c.text, out, p.output)
	}
	if p.after != nil {
		p.after(t, r)
	}
}

// promises are what the README says of its commands.
var promises = []promise{
	{command: regexp.MustCompile(`^curl .*/v1/track`), output: regexp.MustCompile(`\{"success":true\}`)},
	{command: regexp.MustCompile(`^cat data/events\.ndjson`), after: eventsDelivered},
	// after eventsDelivered waited for the deliveries: every fate is told
	{command: regexp.MustCompile(`^bin/insertfn tail -n 10 --no-follow`),
		output: regexp.MustCompile(`(?s)"Order Completed"  user=u123  msg=ifn-\S+  routed: events-file queued\n.*dropped by consent-match: Consent mismatch\n.*"Segment Consent Preference Updated"  user=u123  msg=\S+  consent updated; routed: events-file queued\n.*delivered to events-file`)},
	{command: regexp.MustCompile(`^bin/insertfn consent history u123 --data data$`),
		// the imported record, then the change the third event made
		output: regexp.MustCompile(`(?s)Analytics\s+false\s+\(first\)\s+import:cmd/insertfn/testdata/consent\.ndjson:1 .*Analytics\s+true\s+\(was false\)\s+segment:`)},
	{command: regexp.MustCompile(`(?s)^bin/insertfn deploy bin/examples/consent-match\.wasm .*--settings`), output: regexp.MustCompile(`^consent-match: version [0-9a-f]{12} \(\d+ bytes\) is live\n$`)},
	// after the rollback to the configuration's version: that file again
	{command: regexp.MustCompile(`^bin/insertfn deploy bin/examples/consent-match\.wasm --name consent-match +#`),
		output: regexp.MustCompile(`^consent-match: version [0-9a-f]{12} \(\d+ bytes\) is already live with these settings: nothing changed\n$`)},
	{command: regexp.MustCompile(`^bin/insertfn functions`), output: regexp.MustCompile(`(?m)^consent-match\tlive: [0-9a-f]{12}\n(  [ *] [0-9a-f]{12} .*\n)+`)},
	{command: regexp.MustCompile(`^bin/insertfn rollback consent-match`), output: regexp.MustCompile(`^consent-match: version [0-9a-f]{12} is live again\n$`)},
	{command: regexp.MustCompile(`^bin/insertfn logs consent-match`), output: regexp.MustCompile(`consent-match has logged nothing since the server started`)},
	{command: regexp.MustCompile(`^curl .*:8081/metrics`), output: regexp.MustCompile(`insertfn_consent_lookups_total\{backend="embedded"`)},
	// make run imported the sample records again with --replace: the
	// change the quickstart made is gone.
	{command: regexp.MustCompile(`^bin/insertfn consent get u123`), output: regexp.MustCompile(`(?m)^  Analytics\s+false\s`)},
	{command: regexp.MustCompile(`^bin/insertfn consent import --replace`), output: regexp.MustCompile(`: 2 lines, 2 imported, 0 failed`)},
	{command: regexp.MustCompile(`^bin/insertfn build examples/consent-match -o cm\.wasm`), after: func(t *testing.T, r *readmeRun) {
		if _, err := os.Stat(filepath.Join(r.dir, "cm.wasm")); err != nil {
			t.Errorf("insertfn build wrote no cm.wasm: %v", err)
		}
	}},
	{command: regexp.MustCompile(`^bin/insertfn test cm\.wasm`), output: regexp.MustCompile(`Verdict:  drop: Consent mismatch`)},
}

// eventsDelivered checks what the quickstart's three events became: the
// one whose consent agrees and the consent update reach
// data/events.ndjson (delivery is asynchronous: it waits for them), the
// stale one never does.
func eventsDelivered(t *testing.T, r *readmeRun) {
	t.Helper()
	path := filepath.Join(r.dir, "data", "events.ndjson")
	agree := regexp.MustCompile(`"event":"Order Completed".*"Analytics":false`)
	stale := regexp.MustCompile(`"event":"Order Completed".*"Analytics":true`)
	update := regexp.MustCompile(`"event":"Segment Consent Preference Updated"`)
	var b []byte
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		b, _ = os.ReadFile(path)
		if agree.Match(b) && update.Match(b) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not have the delivered events a minute after they were sent:\n%s\nthe server's output:\n%s", path, b, r.serverOutput())
		}
	}
	if n := len(agree.FindAll(b, -1)); n != 1 {
		t.Errorf("%s has %d events whose consent agrees, want 1:\n%s", path, n, b)
	}
	if stale.Match(b) {
		t.Errorf("%s has the event with stale consent, which consent-match drops:\n%s", path, b)
	}
}

// A block is one ```sh block of the README.
type block struct {
	line int    // the line of its first command
	mode string // the readme-test comment before it, if any
	body []string
}

var marker = regexp.MustCompile(`^<!--\s*readme-test:\s*(.*?)\s*-->$`)

// shellBlocks returns the README's ```sh blocks, in order.
func shellBlocks(readme string) []block {
	var out []block
	var cur *block
	mode := ""
	for i, line := range strings.Split(readme, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.body = append(cur.body, line)
		case trimmed == "```sh":
			cur = &block{line: i + 2, mode: mode}
			mode = ""
		case marker.MatchString(trimmed):
			mode = marker.FindStringSubmatch(trimmed)[1]
		case trimmed != "":
			mode = ""
		}
	}
	return out
}

// A command is one command of a block: a line and its continuation lines.
type command struct {
	line int
	text string
}

// commands splits a block into its commands, leaving out lines that are
// only a comment. A command ends at the first line after which bash can
// parse it whole and which does not end in a backslash.
func commands(t *testing.T, b block) []command {
	t.Helper()
	var out []command
	var cur []string
	start := 0
	for i, line := range b.body {
		if len(cur) == 0 {
			if trimmed := strings.TrimSpace(line); trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			start = b.line + i
		}
		cur = append(cur, line)
		text := strings.Join(cur, "\n")
		if strings.HasSuffix(line, "\\") || exec.Command("bash", "-n", "-c", text).Run() != nil {
			continue
		}
		out = append(out, command{line: start, text: text})
		cur = nil
	}
	if len(cur) > 0 {
		t.Fatalf("README:%d: a command that does not end:\n%s", start, strings.Join(cur, "\n"))
	}
	return out
}

// readmeEnv is the environment of the README's commands: this process's,
// without what would change them (an admin token the README sets itself,
// the make of a make test that runs this test).
func readmeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "INSERTFN_ADMIN_TOKEN", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// readmeRun is the state of one run of the README: its clone, its shell,
// the server and the background commands.
type readmeRun struct {
	t      *testing.T
	dir    string
	env    []string
	sh     *shell
	server *exec.Cmd
	out    *syncBuffer // the server's output
	done   chan struct{}
	bg     []*exec.Cmd
}

// The addresses the README's server listens on.
var readmeAddrs = []string{"127.0.0.1:8080", "127.0.0.1:8081"}

// startServer runs make run in the background, as the README's second
// terminal does, and waits until it listens; nothing when it runs.
func (r *readmeRun) startServer() {
	t := r.t
	t.Helper()
	if r.server != nil {
		return
	}
	for _, addr := range readmeAddrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the README's server listens on %s, which is in use (%v): stop what listens there (a make run in another terminal?) and run the test again", addr, err)
		}
		ln.Close()
	}
	r.out = &syncBuffer{}
	cmd := exec.Command("make", "run")
	cmd.Dir, cmd.Env = r.dir, r.env
	cmd.Stdout, cmd.Stderr = r.out, r.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches make and the server
	if err := cmd.Start(); err != nil {
		t.Fatalf("make run: %v", err)
	}
	r.server, r.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(r.done) }()
	t.Log("$ make run (in the background)")
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		select {
		case <-r.done:
			t.Fatalf("make run exited (%v) before it listened:\n%s", cmd.ProcessState, r.out)
		default:
		}
		if listening(readmeAddrs) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("make run does not listen on %v after 10 minutes:\n%s", readmeAddrs, r.out)
		}
	}
}

func listening(addrs []string) bool {
	for _, addr := range addrs {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// stopServer stops the server as Ctrl-C does, and the background
// commands with it; nothing when it does not run.
func (r *readmeRun) stopServer() {
	t := r.t
	t.Helper()
	for _, c := range r.bg {
		syscall.Kill(-c.Process.Pid, syscall.SIGINT)
		c.Wait()
	}
	r.bg = nil
	if r.server == nil {
		return
	}
	t.Log("Ctrl-C in make run's terminal")
	syscall.Kill(-r.server.Process.Pid, syscall.SIGINT)
	select {
	case <-r.done:
	case <-time.After(time.Minute):
		syscall.Kill(-r.server.Process.Pid, syscall.SIGKILL)
		<-r.done
		t.Errorf("make run did not stop within a minute of Ctrl-C:\n%s", r.out)
	}
	r.server = nil
	t.Logf("make run's output:\n%s", r.out)
	for _, addr := range readmeAddrs {
		for deadline := time.Now().Add(30 * time.Second); listening([]string{addr}); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s still answers after make run stopped: another server listens there", addr)
			}
		}
	}
}

// serverOutput is what make run printed so far.
func (r *readmeRun) serverOutput() string {
	if r.out == nil {
		return "(make run has not run)"
	}
	return r.out.String()
}

// background starts a command in the background until the server stops.
func (r *readmeRun) background(c command) {
	cmd := exec.Command("bash", "-c", c.text)
	cmd.Dir, cmd.Env = r.dir, r.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("README:%d: %s: %v", c.line, c.text, err)
	}
	r.t.Logf("README:%d: $ %s (in the background)", c.line, c.text)
	r.bg = append(r.bg, cmd)
}

// shell is one bash process the commands run in, one after the other.
type shell struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // its output, stdout and stderr, line by line
	done  string      // the line that ends a command's output
}

func startShell(t *testing.T, dir string, env []string) *shell {
	t.Helper()
	sh := &shell{lines: make(chan string, 1024), done: "readme-test-done-" + rand.Text()}
	sh.cmd = exec.Command("bash", "--noprofile", "--norc")
	sh.cmd.Dir, sh.cmd.Env = dir, env
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	sh.cmd.Stdout, sh.cmd.Stderr = pw, pw
	if sh.stdin, err = sh.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := sh.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	go func() {
		defer close(sh.lines)
		s := bufio.NewScanner(pr)
		s.Buffer(nil, 16<<20)
		for s.Scan() {
			sh.lines <- s.Text()
		}
	}()
	t.Cleanup(func() {
		sh.stdin.Close()
		sh.cmd.Process.Kill()
		sh.cmd.Wait()
	})
	return sh
}

// run runs one command and returns its output and exit status; it fails
// t when the command runs longer than timeout.
func (sh *shell) run(t *testing.T, text string, timeout time.Duration) (string, int) {
	t.Helper()
	// The command's own stdin is closed, so that nothing it runs reads the
	// next commands; the newline before the end line ends a last line
	// without one.
	script := fmt.Sprintf("{\n%s\n} </dev/null\nprintf '\\n%s %%d\\n' $?\n", text, sh.done)
	if _, err := io.WriteString(sh.stdin, script); err != nil {
		t.Fatalf("the shell: %v", err)
	}
	var out []string
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-sh.lines:
			if !ok {
				t.Fatalf("the shell exited while running %s:\n%s", text, strings.Join(out, "\n"))
			}
			if rest, ok := strings.CutPrefix(line, sh.done+" "); ok {
				var code int
				fmt.Sscan(rest, &code)
				// Drop the newline the end line added.
				if n := len(out); n > 0 && out[n-1] == "" {
					out = out[:n-1]
				}
				if len(out) == 0 {
					return "", code
				}
				return strings.Join(out, "\n") + "\n", code
			}
			out = append(out, line)
		case <-timer.C:
			t.Fatalf("%s has run for %v:\n%s", text, timeout, strings.Join(out, "\n"))
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and readers at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
