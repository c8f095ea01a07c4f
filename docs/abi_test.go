package docs_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/internal/testkit/exampletest"
	"github.com/insertfn/insertfn/sdk/abi"
)

// fence matches a fenced code block of a Markdown page: its language and
// its text.
var fence = regexp.MustCompile("(?ms)^```(\\w+)\n(.*?)^```$")

// abiBlocks returns the code blocks of docs/abi.md in the language lang.
func abiBlocks(t *testing.T, lang string) []string {
	t.Helper()
	b, err := os.ReadFile("abi.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range fence.FindAllStringSubmatch(string(b), -1) {
		if m[1] == lang {
			out = append(out, m[2])
		}
	}
	return out
}

// abiCommand returns the command of docs/abi.md's sh blocks that starts
// with prefix.
func abiCommand(t *testing.T, prefix string) string {
	t.Helper()
	for _, sh := range abiBlocks(t, "sh") {
		for line := range strings.Lines(sh) {
			if strings.HasPrefix(line, prefix) {
				return strings.TrimSpace(line)
			}
		}
	}
	t.Fatalf("docs/abi.md has no command starting with %q", prefix)
	return ""
}

// guestDir makes a directory that holds the repository's sdk/, as the
// page's build commands expect, and source written to name; it returns
// the directory.
func guestDir(t *testing.T, name, source string) string {
	t.Helper()
	dir := t.TempDir()
	sdk, err := filepath.Abs("../sdk")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sdk, filepath.Join(dir, "sdk")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// build runs a build command of the page in dir and returns the module it
// writes to out.
func build(t *testing.T, dir, command, out string) []byte {
	t.Helper()
	cmd := exec.Command("sh", "-c", command)
	cmd.Dir = dir
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		t.Fatalf("the page's command failed: %s: %v\n%s", command, err, output.String())
	}
	wasm, err := os.ReadFile(filepath.Join(dir, out))
	if err != nil {
		t.Fatalf("%s wrote no %s: %v\n%s", command, out, err, output.String())
	}
	return wasm
}

// pageGuest is what the guests of docs/abi.md do, in C and AssemblyScript
// alike: drop a conflict, retry when the store is down, let consent
// updates and the rest through.
var pageGuest = exampletest.Table{
	Records: []string{`{"id":"u1","categoryPreferences":{"Advertising":false,"Analytics":true}}`},
	Cases: []exampletest.Case{
		{
			Name:  "consent matches",
			Event: `{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
		},
		{
			Name:    "consent conflicts",
			Event:   `{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			Verdict: abi.ResultDrop, Reason: "Consent mismatch",
		},
		{
			Name:  "a consent update is let through",
			Event: `{"type":"track","event":"Segment Consent Preference Updated","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
		},
		{
			Name:  "no record",
			Event: `{"type":"track","userId":"u2","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
		},
		{
			Name:     "store unavailable",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			StoreErr: errors.New("connection refused"),
			Verdict:  abi.ResultRetry, Reason: "consent store unavailable",
		},
	},
}

// TestABIPageCGuest compiles the C guest of docs/abi.md with the page's own
// command and runs it in the runtime: the page's example cannot go stale.
func TestABIPageCGuest(t *testing.T) {
	command := abiCommand(t, "clang")
	compiler, _, _ := strings.Cut(command, " ")
	if _, err := exec.LookPath(compiler); err != nil {
		exampletest.SkipWithoutToolchain(t, compiler+" is missing: apt-get install -y clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32")
	}
	code := abiBlocks(t, "c")
	if len(code) != 1 {
		t.Fatalf("docs/abi.md has %d C blocks, want the one guest", len(code))
	}
	dir := guestDir(t, "consent-match.c", code[0])
	wasm := build(t, dir, command, "consent-match.wasm")
	exampletest.Module(t, "abi-page-c", wasm, pageGuest)
}

// TestABIPageAssemblyScriptGuest compiles the AssemblyScript guest of
// docs/abi.md with the page's own command, with the compiler make fetches
// (sdk/assemblyscript/node_modules), and runs it in the runtime.
func TestABIPageAssemblyScriptGuest(t *testing.T) {
	command := abiCommand(t, "sdk/assemblyscript/node_modules/.bin/asc ")
	if _, err := os.Stat("../sdk/assemblyscript/node_modules/.bin/asc"); err != nil {
		exampletest.SkipWithoutToolchain(t, "the AssemblyScript compiler is not fetched: make examples fetches it (with npm)")
	}
	code := abiBlocks(t, "ts")
	if len(code) != 1 {
		t.Fatalf("docs/abi.md has %d ts blocks, want the one guest", len(code))
	}
	dir := guestDir(t, "consent-match.ts", code[0])
	wasm := build(t, dir, command, "consent-match.wasm")
	exampletest.Module(t, "abi-page-as", wasm, pageGuest)
}
