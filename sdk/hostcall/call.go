package hostcall

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/tidwall/gjson"
)

// ErrLogLimit is recorded when a call logs more than its limit.
var ErrLogLimit = errors.New("logs exceed the per-event limit")

// LogLine is one line a function logged for an event.
type LogLine struct {
	Level   abi.Level `json:"level"`
	Message string    `json:"message"`
}

// Limits bound what one call may do.
type Limits struct {
	MaxEventBytes int // the event after changes; 0 means no limit
	MaxLogBytes   int // log bytes per event; 0 means no limit
}

// Call is the host's state for one function call on one event: the event,
// the consent store, the settings and what the function said. Its methods
// are the host functions of package abi with Go slices for guest memory and
// the same buffer rule; it implements sdk.Host. A Call is reused event after
// event (Reset) and is not safe for concurrent use.
//
// A limit violation (event too large, too many log bytes) is recorded in
// [Call.Err] and sticks until Reset; the runtime then traps the guest.
type Call struct {
	Doc Doc

	ctx      context.Context
	store    consent.Store
	settings string
	limits   Limits

	logs        []LogLine
	logBytes    int
	reason      []byte
	err         error
	storeFailed bool
	scratch     []byte
}

// Reset prepares c for a new event. event and settings are borrowed until
// the next Reset (see the package's lifetime rules); store may be nil (no
// stored consent).
func (c *Call) Reset(ctx context.Context, event []byte, store consent.Store, settings []byte, limits Limits) {
	c.store, c.limits = store, limits
	c.settings = ""
	if len(settings) > 0 {
		c.settings = unsafe.String(&settings[0], len(settings))
	}
	c.Next(ctx, event)
}

// Next prepares c for a new event with the store, settings and limits of
// the last Reset: what a caller running many events under one
// configuration does per event. event is borrowed until the next Next,
// Reset or Release.
func (c *Call) Next(ctx context.Context, event []byte) {
	c.Doc.Reset(event, c.limits.MaxEventBytes)
	c.ctx = ctx
	clear(c.logs)
	c.logs, c.logBytes, c.reason, c.err, c.storeFailed = c.logs[:0], 0, c.reason[:0], nil, false
}

// Release lets go of the event and the context while c waits idle for its
// next event; the store, settings and limits stay for Next, and what the
// function said (logs, reason) stays until then too.
func (c *Call) Release() {
	c.Doc.Reset(nil, 0)
	c.ctx = nil
}

// Err returns the limit violation recorded during the call, if any.
func (c *Call) Err() error { return c.err }

// Logs returns the lines logged during the call; valid until Reset.
func (c *Call) Logs() []LogLine { return c.logs }

// LogBudget returns how many more log bytes the call may write (each line
// counts one more than its length), or -1 when there is no limit.
func (c *Call) LogBudget() int {
	if c.limits.MaxLogBytes <= 0 {
		return -1
	}
	return max(0, c.limits.MaxLogBytes-c.logBytes)
}

// Reason returns the reason set during the call; valid until Reset.
func (c *Call) Reason() []byte { return c.reason }

// fill applies the buffer rule: copy v into buf when it fits; always return
// v's length.
func fill(buf, v []byte) int {
	if len(v) <= len(buf) {
		copy(buf, v)
	}
	return len(v)
}

// EventGet implements abi.FuncEventGet.
func (c *Call) EventGet(path string, buf []byte) (abi.Kind, int) {
	return c.getValue(c.Doc.Get(path), buf)
}

// getValue copies a value straight from the document (a view, unless the
// string had escapes) into the guest's buffer.
func (c *Call) getValue(r gjson.Result, buf []byte) (abi.Kind, int) {
	v := valueBytes(r)
	return valueKind(r), fill(buf, unsafe.Slice(unsafe.StringData(v), len(v)))
}

// EventSet implements abi.FuncEventSet.
func (c *Call) EventSet(path string, raw []byte) abi.Status {
	st, err := c.Doc.Set(path, raw)
	if err != nil {
		c.fail(err)
	}
	return st
}

// EventDelete implements abi.FuncEventDelete.
func (c *Call) EventDelete(path string) abi.Status { return c.Doc.Delete(path) }

// EventRead implements abi.FuncEventRead.
func (c *Call) EventRead(buf []byte) int { return fill(buf, c.Doc.Bytes()) }

// EventWrite implements abi.FuncEventWrite.
func (c *Call) EventWrite(event []byte) abi.Status {
	st, err := c.Doc.Replace(event)
	if err != nil {
		c.fail(err)
	}
	return st
}

// record finds the stored record of id, or of the event's own ids when id
// is empty (userId first, then anonymousId).
func (c *Call) record(id string) (*consent.Record, abi.ConsentStatus) {
	if id != "" {
		return c.get(id)
	}
	if uid := c.Doc.UserID(); uid != "" {
		rec, st := c.get(uid)
		if st != abi.ConsentNoRecord {
			return rec, st
		}
	}
	aid := c.Doc.AnonymousID()
	if aid == "" {
		if c.Doc.UserID() == "" {
			return nil, abi.ConsentNoID
		}
		return nil, abi.ConsentNoRecord
	}
	return c.get(aid)
}

func (c *Call) get(id string) (*consent.Record, abi.ConsentStatus) {
	if c.store == nil {
		return nil, abi.ConsentNoRecord
	}
	var rec *consent.Record
	var err error
	// The consent as of the event's receipt, when the store can tell it:
	// an event that waited in the queue while the person changed their
	// mind is judged by the choice it was sent under.
	if as, ok := c.store.(consent.AsOfStore); ok {
		if at, ok := c.Doc.ReceivedAt(); ok {
			rec, err = as.GetAsOf(c.ctx, id, at)
		} else {
			rec, err = c.store.Get(c.ctx, id)
		}
	} else {
		rec, err = c.store.Get(c.ctx, id)
	}
	switch {
	case err == nil && rec != nil:
		return rec, abi.ConsentFound
	case err == nil || errors.Is(err, consent.ErrNotFound):
		return nil, abi.ConsentNoRecord
	}
	// The host's own line does not count against the function's log budget,
	// and it is written once per event, however often the function asks.
	if !c.storeFailed {
		c.storeFailed = true
		c.logs = append(c.logs, LogLine{Level: abi.LevelError, Message: fmt.Sprintf("insertfn: consent lookup failed: %v", err)})
	}
	return nil, abi.ConsentUnavailable
}

// ConsentLookup implements abi.FuncConsentLookup.
func (c *Call) ConsentLookup(id string, buf []byte) (abi.ConsentStatus, int) {
	rec, st := c.record(id)
	if rec == nil {
		return st, 0
	}
	c.scratch = AppendRecord(c.scratch[:0], rec)
	return abi.ConsentFound, fill(buf, c.scratch)
}

// ConsentCompare implements abi.FuncConsentCompare.
func (c *Call) ConsentCompare(id string, buf []byte) (abi.ConsentStatus, int) {
	if !c.Doc.HasConsent() {
		return abi.ConsentNoEventConsent, 0
	}
	rec, st := c.record(id)
	if rec == nil {
		return st, 0
	}
	c.scratch, st = c.Doc.CompareConsent(c.scratch[:0], rec)
	return st, fill(buf, c.scratch)
}

// SettingsGet implements abi.FuncSettingsGet.
func (c *Call) SettingsGet(path string, buf []byte) (abi.Kind, int) {
	if path == "" {
		if c.settings == "" {
			return abi.KindJSON, fill(buf, []byte("{}"))
		}
		return abi.KindJSON, fill(buf, unsafe.Slice(unsafe.StringData(c.settings), len(c.settings)))
	}
	if !ReadablePath(path) {
		return abi.KindMissing, 0
	}
	return c.getValue(gjson.Get(c.settings, path), buf)
}

// Log implements abi.FuncLog. Each line counts its bytes plus one (so that
// empty lines are not free). Past the log limit, the line is cut to what
// fits and the call records [ErrLogLimit].
func (c *Call) Log(level abi.Level, msg string) {
	if c.err != nil {
		return // over the limit already: keep nothing more
	}
	if c.limits.MaxLogBytes > 0 && c.logBytes+len(msg)+1 > c.limits.MaxLogBytes {
		cut := max(0, c.limits.MaxLogBytes-c.logBytes-1)
		for cut > 0 && cut < len(msg) && !utf8.RuneStart(msg[cut]) {
			cut-- // do not split a character
		}
		msg = msg[:cut]
		c.fail(ErrLogLimit)
	}
	c.hostLog(level, msg)
}

func (c *Call) hostLog(level abi.Level, msg string) {
	if msg == "" && c.err != nil {
		return
	}
	c.logBytes += len(msg) + 1
	c.logs = append(c.logs, LogLine{Level: level, Message: strings.Clone(msg)}) // msg may be a view into guest memory
}

// SetReason implements abi.FuncSetReason, keeping at most abi.MaxReasonLen bytes.
func (c *Call) SetReason(reason string) {
	if len(reason) > abi.MaxReasonLen {
		cut := abi.MaxReasonLen
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut-- // do not split a character
		}
		reason = reason[:cut]
	}
	c.reason = append(c.reason[:0], reason...)
}

func (c *Call) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}
