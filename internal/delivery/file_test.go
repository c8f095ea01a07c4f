package delivery

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tidwall/gjson"
)

// readLines returns the lines of path, failing the test on a line that is
// not valid JSON or a file that does not end in a newline.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 {
		return nil
	}
	if data[len(data)-1] != '\n' {
		t.Fatalf("%s does not end with a newline", path)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if !gjson.Valid(sc.Text()) {
			t.Fatalf("%s: malformed line %q", path, sc.Text())
		}
		lines = append(lines, sc.Text())
	}
	return lines
}

func TestFileAppendsNDJSONAndCreatesDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "events.ndjson")
	s, err := NewFile(FileConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	pretty := []byte("{\n  \"type\": \"track\",\n  \"event\": \"two\\nlines\"\n}")
	events := append(testEvents(2), tricky, pretty)
	if err := s.Deliver(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4", len(lines))
	}
	for i := range 3 {
		if lines[i] != string(events[i]) {
			t.Errorf("line %d = %s, want the event byte for byte: %s", i, lines[i], events[i])
		}
	}
	if lines[3] != `{"type":"track","event":"two\nlines"}` {
		t.Errorf("pretty-printed event written as %s", lines[3])
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	if err := s.Deliver(context.Background(), events); !errors.Is(err, ErrClosed) {
		t.Fatalf("Deliver after Close: %v", err)
	}
}

func TestFileReopenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.ndjson")
	for i := range 3 {
		s, err := NewFile(FileConfig{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Deliver(context.Background(), testEvents(i+1)); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if n := len(readLines(t, path)); n != 1+2+3 {
		t.Fatalf("%d lines after three opens, want 6", n)
	}
}

func TestFileRemovesTornLastLine(t *testing.T) {
	for name, content := range map[string]string{
		"partial":      `{"a":1}` + "\n" + `{"b":2}` + "\n" + `{"c":`,
		"only partial": `{"c":3`,
		"whole":        `{"a":1}` + "\n",
		"long partial": `{"a":1}` + "\n" + `{"c":"` + strings.Repeat("z", 200<<10),
		"empty":        "",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.ndjson")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := NewFile(FileConfig{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Deliver(context.Background(), [][]byte{[]byte(`{"d":4}`)}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			lines := readLines(t, path)
			if lines[len(lines)-1] != `{"d":4}` {
				t.Fatalf("last line %q", lines[len(lines)-1])
			}
			wantWhole := strings.Count(content, "\n")
			if len(lines) != wantWhole+1 {
				t.Fatalf("%d lines, want the %d whole ones kept and the new one", len(lines), wantWhole)
			}
		})
	}
}

func TestFileRotationKeepsEveryEvent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.ndjson")
	s, err := NewFile(FileConfig{Path: path, MaxBytes: 1000, MaxFiles: -1})
	if err != nil {
		t.Fatal(err)
	}
	// Unrelated files in the directory are never touched.
	for _, n := range []string{"events-old.ndjson", "other.txt", "events-20260102T030405.000000000Z.json"} {
		os.WriteFile(filepath.Join(dir, n), []byte("keep"), 0o600)
	}
	const delivers = 30
	for i := range delivers {
		ev := fmt.Appendf(nil, `{"type":"track","messageId":"m-%03d","pad":"%s"}`, i, strings.Repeat("p", 200))
		if err := s.Deliver(context.Background(), [][]byte{ev}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	rotated, err := s.Rotated()
	if err != nil {
		t.Fatal(err)
	}
	if len(rotated) < 5 {
		t.Fatalf("%d rotated files after %d deliveries of ~250 bytes with max_bytes 1000", len(rotated), delivers)
	}
	var ids []string
	for _, f := range append(rotated, path) {
		fi, _ := os.Stat(f)
		if fi.Size() > 1000 {
			t.Errorf("%s is %d bytes, over max_bytes", f, fi.Size())
		}
		for _, l := range readLines(t, f) {
			ids = append(ids, gjson.Get(l, "messageId").String())
		}
	}
	if len(ids) != delivers {
		t.Fatalf("%d events across files, want %d", len(ids), delivers)
	}
	for i, id := range ids {
		if id != fmt.Sprintf("m-%03d", i) {
			t.Fatalf("event %d is %s: files out of order or events lost", i, id)
		}
	}
	for _, n := range []string{"events-old.ndjson", "other.txt", "events-20260102T030405.000000000Z.json"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("unrelated file %s: %v", n, err)
		}
	}
}

func TestFileMaxFilesCleanup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.ndjson")
	s, err := NewFile(FileConfig{Path: path, MaxBytes: 100, MaxFiles: 2, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const delivers = 12
	for i := range delivers {
		ev := fmt.Appendf(nil, `{"messageId":"m-%02d","pad":"%s"}`, i, strings.Repeat("p", 60))
		if err := s.Deliver(context.Background(), [][]byte{ev}); err != nil {
			t.Fatal(err)
		}
	}
	rotated, err := s.Rotated()
	if err != nil {
		t.Fatal(err)
	}
	if len(rotated) != 2 {
		t.Fatalf("%d rotated files kept, want max_files 2: %v", len(rotated), rotated)
	}
	// Each file holds one event (two would pass 100 bytes): the newest two
	// rotated files hold the two events before the current file's.
	for i, f := range rotated {
		lines := readLines(t, f)
		want := fmt.Sprintf("m-%02d", delivers-3+i)
		if len(lines) != 1 || gjson.Get(lines[0], "messageId").String() != want {
			t.Errorf("rotated file %d holds %v, want %s", i, lines, want)
		}
		if base := filepath.Base(f); !strings.HasPrefix(base, "events-") || !strings.HasSuffix(base, ".ndjson") {
			t.Errorf("rotated file name %s", base)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("%d files in the directory, want current + 2", len(entries))
	}
}

func TestFileOversizedDeliverIsNotSplit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.ndjson")
	s, err := NewFile(FileConfig{Path: path, MaxBytes: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 2 {
		if err := s.Deliver(context.Background(), testEvents(3)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(readLines(t, path)); n != 3 {
		t.Fatalf("current file has %d lines, want the last Deliver's 3 whole", n)
	}
}

func TestFileConcurrentDeliver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.ndjson")
	s, err := NewFile(FileConfig{Path: path, MaxBytes: 8 << 10, MaxFiles: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	const workers, delivers, perDeliver = 8, 40, 3
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for d := range delivers {
				evs := make([][]byte, perDeliver)
				for e := range evs {
					evs[e] = fmt.Appendf(nil, `{"messageId":"w%d-d%d-e%d","properties":{"s":"Zoë \"q\""}}`, w, d, e)
				}
				if err := s.Deliver(context.Background(), evs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	s.Close()
	rotated, _ := s.Rotated()
	seen := map[string]bool{}
	for _, f := range append(rotated, path) {
		lines := readLines(t, f)
		for i := 0; i < len(lines); i += perDeliver {
			// A Deliver's lines are adjacent and in order.
			first := gjson.Get(lines[i], "messageId").String()
			prefix := strings.TrimSuffix(first, "-e0")
			for e := range perDeliver {
				id := gjson.Get(lines[i+e], "messageId").String()
				if id != fmt.Sprintf("%s-e%d", prefix, e) {
					t.Fatalf("%s line %d: %s, want %s-e%d (lines of concurrent Delivers interleaved)", f, i+e, id, prefix, e)
				}
				seen[id] = true
			}
		}
	}
	if len(seen) != workers*delivers*perDeliver {
		t.Fatalf("%d distinct events written, want %d", len(seen), workers*delivers*perDeliver)
	}
}

func TestFileRejectsNonObject(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.ndjson")
	s, err := NewFile(FileConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, bad := range [][]byte{nil, []byte(`[1,2]`), []byte("{\n\"a\": }")} {
		err := s.Deliver(context.Background(), [][]byte{[]byte(`{"ok":1}`), bad})
		var e *Error
		if !errors.As(err, &e) || Retryable(err) || !Rejected(err) || e.Event != 2 || e.Delivered != 0 || !strings.Contains(err.Error(), "event 1") {
			t.Errorf("event %q: got %#v, want a permanent error naming event 1 (Event 2, nothing delivered)", bad, err)
		}
	}
	if n := len(readLines(t, path)); n != 0 {
		t.Fatalf("%d lines written by rejected Delivers", n)
	}
}

func TestFileConfigPathErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewFile(FileConfig{}); err == nil || !strings.Contains(err.Error(), "path") {
		t.Errorf("no path: %v", err)
	}
	if _, err := NewFile(FileConfig{Path: dir + "/"}); err == nil {
		t.Errorf("directory path accepted")
	}
	if _, err := NewFile(FileConfig{Path: dir}); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("existing directory as path: %v", err)
	}
}

func TestStdoutConcurrentLines(t *testing.T) {
	var buf bytes.Buffer
	s := NewStdout(&buf)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for d := range 20 {
				evs := [][]byte{fmt.Appendf(nil, `{"w":%d,"d":%d,"e":0}`, w, d), fmt.Appendf(nil, `{"w":%d,"d":%d,"e":1}`, w, d)}
				if err := s.Deliver(context.Background(), evs); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 4*20*2 {
		t.Fatalf("%d lines, want %d", len(lines), 4*20*2)
	}
	for i := 0; i < len(lines); i += 2 {
		a, b := gjson.Parse(lines[i]), gjson.Parse(lines[i+1])
		if !gjson.Valid(lines[i]) || a.Get("e").Int() != 0 || b.Get("e").Int() != 1 || a.Get("w").Int() != b.Get("w").Int() || a.Get("d").Int() != b.Get("d").Int() {
			t.Fatalf("lines %d-%d not one Deliver's pair: %s / %s", i, i+1, lines[i], lines[i+1])
		}
	}
	s.Close()
	if err := s.Deliver(context.Background(), testEvents(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestStdoutWriteErrorIsRetryable(t *testing.T) {
	err := NewStdout(failWriter{}).Deliver(context.Background(), testEvents(1))
	if err == nil || !Retryable(err) || !strings.Contains(err.Error(), "broken pipe") {
		t.Fatalf("got %v", err)
	}
}

func FuzzAppendNDJSON(f *testing.F) {
	f.Add([]byte(`{"a":1}`))
	f.Add([]byte("{\n\"a\":\"x\"\n}"))
	f.Add([]byte("{\"a\":\"\n\"}"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, ev []byte) {
		out, err := appendNDJSON(nil, [][]byte{ev, []byte(`{"z":0}`)}, "file")
		if err != nil {
			if Retryable(err) {
				t.Fatalf("bad event gave a retryable error: %v", err)
			}
			return
		}
		if n := bytes.Count(out, []byte{'\n'}); n != 2 {
			t.Fatalf("event %q made %d lines, want 1 plus the next event's", ev, n-1)
		}
		if !bytes.HasSuffix(out, []byte("\n{\"z\":0}\n")) {
			t.Fatalf("next event not on its own line: %q", out)
		}
	})
}
