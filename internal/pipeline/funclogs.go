package pipeline

import (
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/sdk/hostcall"
)

// DefaultLogLines is how many log lines [FunctionLogs] keeps per function
// when not told otherwise.
const DefaultLogLines = 1000

// LogEntry is one line a function logged (through the SDK's Log, or on its
// stdout or stderr) while it handled an event.
type LogEntry struct {
	Time      time.Time `json:"time"`
	Function  string    `json:"function"`
	MessageID string    `json:"messageId,omitempty"` // of the event being handled
	Level     string    `json:"level"`
	Message   string    `json:"message"`
}

// FunctionLogs keeps the last lines each function logged, for operators
// (the admin API, `insertfn logs`). It is safe for concurrent use; an event
// whose functions log nothing costs nothing here.
type FunctionLogs struct {
	max int

	mu    sync.Mutex
	rings map[string]*logRing
}

type logRing struct {
	lines []LogEntry
	next  int // where the next line goes once lines is full
}

// NewFunctionLogs keeps up to perFunction lines per function (0:
// DefaultLogLines).
func NewFunctionLogs(perFunction int) *FunctionLogs {
	if perFunction <= 0 {
		perFunction = DefaultLogLines
	}
	return &FunctionLogs{max: perFunction, rings: make(map[string]*logRing)}
}

// record keeps the lines a function logged on one event.
func (f *FunctionLogs) record(function string, event []byte, lines []hostcall.LogLine) {
	if len(lines) == 0 {
		return
	}
	id := gjson.GetBytes(event, "messageId").String() // GetBytes copies
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rings[function]
	if r == nil {
		r = &logRing{}
		f.rings[function] = r
	}
	for _, l := range lines {
		e := LogEntry{Time: now, Function: function, MessageID: id, Level: l.Level.String(), Message: l.Message}
		if len(r.lines) < f.max {
			r.lines = append(r.lines, e)
			continue
		}
		r.lines[r.next] = e
		r.next = (r.next + 1) % f.max
	}
}

// Last returns up to n of the newest lines function logged, oldest first
// (n <= 0: all that are kept).
func (f *FunctionLogs) Last(function string, n int) []LogEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rings[function]
	if r == nil {
		return nil
	}
	ordered := append(append([]LogEntry(nil), r.lines[r.next:]...), r.lines[:r.next]...)
	if n > 0 && n < len(ordered) {
		ordered = ordered[len(ordered)-n:]
	}
	return ordered
}
