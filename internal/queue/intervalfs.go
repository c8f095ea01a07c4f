package queue

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// intervalFS is the file system of a SyncInterval queue. Pebble writes
// its write-ahead log from a buffer of its own, and a write applied
// without a sync may sit in that buffer for a while: a kill -9 then loses
// it. So under SyncInterval every write that must survive a kill -9
// (Append, Dead, Replay, DropDead) asks Pebble for a sync, as under
// SyncAlways; Pebble then writes the log to the file (the OS page cache,
// which a process crash does not lose) and calls the file's sync, which
// intervalFS makes return at once. The log files are fsynced for real
// every Interval by syncAll, and when Pebble closes them.
type intervalFS struct {
	vfs.FS
	mu   sync.Mutex
	logs map[*intervalLog]struct{} // the open log files
}

func newIntervalFS(fs vfs.FS) *intervalFS {
	return &intervalFS{FS: fs, logs: make(map[*intervalLog]struct{})}
}

// isLog reports whether a file name is a write-ahead log's (NNNNNN.log).
func isLog(name string) bool { return strings.HasSuffix(name, ".log") }

// Create creates a file, wrapping it when it is a log.
func (fs *intervalFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(name, f, err)
}

// ReuseForWrite recycles an old log as a new one, wrapping it.
func (fs *intervalFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(newname, f, err)
}

func (fs *intervalFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !isLog(name) {
		return f, err
	}
	l := &intervalLog{File: f, fs: fs}
	fs.mu.Lock()
	fs.logs[l] = struct{}{}
	fs.mu.Unlock()
	return l, nil
}

// syncAll fsyncs every open log file written since its last fsync.
func (fs *intervalFS) syncAll() error {
	fs.mu.Lock()
	logs := make([]*intervalLog, 0, len(fs.logs))
	for l := range fs.logs {
		logs = append(logs, l)
	}
	fs.mu.Unlock()
	var first error
	for _, l := range logs {
		if err := l.syncNow(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// intervalLog is a log file whose syncs are deferred to syncAll.
type intervalLog struct {
	vfs.File
	fs    *intervalFS
	dirty atomic.Bool // a sync was asked for since the last fsync
	mu    sync.Mutex  // serializes the fsync and Close
	shut  bool
}

// Sync, SyncData and SyncTo return at once: what was written is in the
// page cache. syncAll fsyncs it.
func (l *intervalLog) Sync() error { l.dirty.Store(true); return nil }

// SyncData: see Sync.
func (l *intervalLog) SyncData() error { l.dirty.Store(true); return nil }

// SyncTo: see Sync.
func (l *intervalLog) SyncTo(int64) (fullSync bool, err error) {
	l.dirty.Store(true)
	return true, nil
}

// syncNow fsyncs the file if a sync was asked for since the last one.
func (l *intervalLog) syncNow() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shut || !l.dirty.Swap(false) {
		return nil
	}
	if err := l.File.SyncData(); err != nil {
		l.dirty.Store(true)
		return err
	}
	return nil
}

// Close fsyncs what the file holds unsynced, then closes it.
func (l *intervalLog) Close() error {
	l.fs.mu.Lock()
	delete(l.fs.logs, l)
	l.fs.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shut = true
	var err error
	if l.dirty.Swap(false) {
		err = l.File.SyncData()
	}
	if cerr := l.File.Close(); err == nil {
		err = cerr
	}
	return err
}
