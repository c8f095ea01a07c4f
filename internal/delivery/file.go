package delivery

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/insertfn/insertfn/internal/atomicfile"
)

// Defaults of [FileConfig].
const (
	DefaultFileMaxBytes = 100 << 20
	DefaultFileMaxFiles = 10
)

// rotatedLayout is the timestamp in a rotated file's name: fixed width, UTC,
// so names sort in the order they were rotated.
const rotatedLayout = "20060102T150405.000000000Z"

// FileConfig configures a [File] sink. Only Path is required; every zero
// field takes its default.
type FileConfig struct {
	// Path is the NDJSON file events are appended to, e.g.
	// ./data/events.ndjson. Its directory is created (mode 0700) if missing;
	// the file is created with mode 0600 (events are personal data).
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// MaxBytes is the size at which the file is rotated: before a Deliver
	// whose lines would take a non-empty file past MaxBytes, the file is
	// renamed and a new one started. A Deliver's lines are never split
	// across files, so a file exceeds MaxBytes only by holding one Deliver
	// larger than that. Default 100 MiB; negative never rotates.
	MaxBytes int64 `yaml:"max_bytes,omitempty" json:"max_bytes,omitempty"`
	// MaxFiles is how many rotated files are kept besides the current one;
	// the oldest beyond it are deleted at each rotation. A rotated file of
	// events.ndjson is named events-20060102T150405.000000000Z.ndjson (UTC
	// time of rotation), so names sort by age. Default 10; negative keeps
	// them all.
	MaxFiles int `yaml:"max_files,omitempty" json:"max_files,omitempty"`
	// NoSync turns off the fsync after each Deliver. By default Deliver
	// returns nil only once its lines are on disk, so a delivered event
	// survives a crash or power loss; with NoSync it returns once they are
	// in the operating system's cache.
	NoSync bool `yaml:"no_sync,omitempty" json:"no_sync,omitempty"`
}

// Validate reports the first bad field, naming its key.
func (c *FileConfig) Validate() error {
	if c.Path == "" {
		return &ConfigError{Key: "path", Problem: "required for a file destination (the NDJSON file to append events to)"}
	}
	if base := filepath.Base(c.Path); base == "." || base == ".." || base == string(filepath.Separator) || strings.HasSuffix(c.Path, string(filepath.Separator)) {
		return &ConfigError{Key: "path", Problem: fmt.Sprintf("%q names a directory, not a file", c.Path)}
	}
	return nil
}

// File is a [Sink] that appends events as NDJSON (one JSON object per line)
// to a file, rotating it by size and deleting the oldest rotated files (see
// [FileConfig]).
//
// It is safe for concurrent use: each Deliver builds its lines, then writes
// them with one write and (by default) one fsync under a mutex, so lines of
// concurrent calls never interleave and Deliver calls are serialized. A
// failed write or fsync is undone by truncating the file back to where the
// call started, so the file holds only whole lines; the error is retryable.
// On open, a partial last line left by a crash mid-write (never reported
// delivered) is removed.
type File struct {
	mu       sync.Mutex
	path     string
	dir      string
	stem     string // base name without extension: "events"
	ext      string // ".ndjson", or ""
	maxBytes int64
	maxFiles int
	sync     bool
	f        *os.File // nil after a failed rotation; reopened by Deliver
	size     int64
	closed   bool
}

// NewFile validates cfg, creates the directory if needed, and opens (or
// creates) the file for appending.
func NewFile(cfg FileConfig) (*File, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &File{
		path:     filepath.Clean(cfg.Path),
		maxBytes: cfg.MaxBytes,
		maxFiles: cfg.MaxFiles,
		sync:     !cfg.NoSync,
	}
	s.dir = filepath.Dir(s.path)
	base := filepath.Base(s.path)
	s.ext = filepath.Ext(base)
	s.stem = strings.TrimSuffix(base, s.ext)
	if s.maxBytes == 0 {
		s.maxBytes = DefaultFileMaxBytes
	}
	if s.maxFiles == 0 {
		s.maxFiles = DefaultFileMaxFiles
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("delivery: file sink: create directory: %w", err)
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// open opens s.path for appending, removes a torn last line, and records
// the size. The caller holds s.mu (or owns s).
func (s *File) open() error {
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("delivery: file sink: open: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("delivery: file sink: open: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("delivery: file sink: open %s: not a regular file", s.path)
	}
	size, err := trimTornTail(f, fi.Size())
	if err != nil {
		f.Close()
		return fmt.Errorf("delivery: file sink: open %s: removing a partial last line: %w", s.path, err)
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("delivery: file sink: open: %w", err)
	}
	s.f, s.size = f, size
	return nil
}

// trimTornTail truncates f after its last '\n', removing a partial line a
// crash left, and returns the new size.
func trimTornTail(f *os.File, size int64) (int64, error) {
	if size == 0 {
		return 0, nil
	}
	buf := make([]byte, 64<<10)
	end := size
	for end > 0 {
		start := max(0, end-int64(len(buf)))
		chunk := buf[:end-start]
		if _, err := f.ReadAt(chunk, start); err != nil {
			return 0, err
		}
		if end == size && chunk[len(chunk)-1] == '\n' {
			return size, nil
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			end = start + int64(i) + 1
			break
		}
		end = start
	}
	if err := f.Truncate(end); err != nil {
		return 0, err
	}
	return end, f.Sync()
}

// Deliver appends events, one per line (see [Sink.Deliver]). Events are
// copied byte for byte, except that an event holding line breaks is
// compacted onto one line. An event that is not a JSON object is a
// permanent *Error and nothing is written. File system errors are
// retryable.
func (s *File) Deliver(ctx context.Context, events [][]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	buf := getScratch()
	defer putScratch(buf)
	var err error
	if buf.b, err = appendNDJSON(buf.b[:0], events, "file"); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.f == nil {
		if err := s.open(); err != nil {
			return &Error{Sink: "file", Op: "reopen", Err: err}
		}
	}
	if s.maxBytes > 0 && s.size > 0 && s.size+int64(len(buf.b)) > s.maxBytes {
		if err := s.rotate(); err != nil {
			return &Error{Sink: "file", Op: "rotate " + s.path, Err: err}
		}
	}
	if _, err := s.f.Write(buf.b); err != nil {
		return s.undo("write", err)
	}
	if s.sync {
		if err := s.f.Sync(); err != nil {
			return s.undo("fsync", err)
		}
	}
	s.size += int64(len(buf.b))
	return nil
}

// undo truncates the file back to s.size after a failed write or fsync so
// it holds only whole lines, and returns the retryable error.
func (s *File) undo(op string, err error) error {
	if terr := s.f.Truncate(s.size); terr != nil {
		err = fmt.Errorf("%w (and removing the partial lines failed: %v)", err, terr)
	}
	return &Error{Sink: "file", Op: op + " " + s.path, Err: err}
}

// rotate renames the current file to its rotated name, opens a new one, and
// deletes rotated files beyond maxFiles. The caller holds s.mu. If renaming
// fails, the current file is reopened and stays in use.
func (s *File) rotate() error {
	if err := s.f.Close(); err != nil {
		s.f = nil
		return err
	}
	s.f = nil
	name, err := s.rotatedName(time.Now())
	if err != nil {
		if oerr := s.open(); oerr != nil {
			return fmt.Errorf("%w (reopening: %v)", err, oerr)
		}
		return err
	}
	if err := os.Rename(s.path, name); err != nil {
		if oerr := s.open(); oerr != nil {
			return fmt.Errorf("%w (reopening: %v)", err, oerr)
		}
		return err
	}
	if err := s.open(); err != nil { // also syncs the directory: rename and create
		return err
	}
	s.removeOld()
	return nil
}

// rotatedName returns a free name for a file rotated at t.
func (s *File) rotatedName(t time.Time) (string, error) {
	t = t.UTC()
	for range 1000 {
		name := filepath.Join(s.dir, s.stem+"-"+t.Format(rotatedLayout)+s.ext)
		if _, err := os.Lstat(name); os.IsNotExist(err) {
			return name, nil
		} else if err != nil {
			return "", err
		}
		t = t.Add(time.Nanosecond)
	}
	return "", fmt.Errorf("no free name for the rotated file in %s", s.dir)
}

// Rotated lists the rotated files of this sink, oldest first, as paths.
func (s *File) Rotated() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	prefix := s.stem + "-"
	var names []string
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, s.ext) {
			continue
		}
		ts := n[len(prefix) : len(n)-len(s.ext)]
		if len(ts) != len(rotatedLayout) {
			continue
		}
		if _, err := time.Parse(rotatedLayout, ts); err != nil {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		names[i] = filepath.Join(s.dir, n)
	}
	return names, nil
}

// removeOld deletes the oldest rotated files beyond maxFiles. It is best
// effort: a file it cannot delete is tried again at the next rotation, and
// the delivery that caused the rotation is not failed for it.
func (s *File) removeOld() {
	if s.maxFiles < 0 {
		return
	}
	names, err := s.Rotated()
	if err != nil || len(names) <= s.maxFiles {
		return
	}
	for _, n := range names[:len(names)-s.maxFiles] {
		_ = os.Remove(n)
	}
}

// Path returns the path of the file currently appended to.
func (s *File) Path() string { return s.path }

// Close syncs (unless NoSync) and closes the file, waiting for a Deliver in
// progress to finish; later Deliver calls return [ErrClosed].
func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.f == nil {
		return nil
	}
	var err error
	if s.sync {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if err != nil {
		return fmt.Errorf("delivery: file sink: close %s: %w", s.path, err)
	}
	return nil
}
