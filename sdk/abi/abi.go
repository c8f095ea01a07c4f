// Package abi is the contract between the insertfn host and a guest function
// compiled to WebAssembly. It is the only place where the names, numbers and
// encodings of that contract are spelled: the host runtime and the Go guest
// SDK both import it, and docs/abi.md restates it for authors in other
// languages.
//
// The package has no dependencies beyond the standard library, so a guest
// that imports it pulls in nothing else.
//
// # Shape of a call
//
// The host keeps the event. For each event it calls the guest export
// [ExportHandle] with the event's type as an [EventType]. The guest reads
// the fields it needs through [FuncEventGet] (the host runs gjson on its own
// copy), changes fields through [FuncEventSet] and [FuncEventDelete] (the host
// runs sjson), asks the host to compare the event's consent with the stored
// consent ([FuncConsentCompare]), and returns a [Result] code. A non-deliver
// result carries its reason, set beforehand with [FuncSetReason].
//
// # The buffer rule
//
// Every host function that returns bytes takes a guest buffer (buf, buf_limit)
// and returns the full length of the value. The host writes the value only if
// it fits (length <= buf_limit); otherwise it writes nothing and the guest may
// call again with a buffer of at least that length. The host never allocates
// inside the guest. When the value fits, one call does the whole job.
//
// # Packed results
//
// Functions that return both a status and a length return an i64:
//
//	bits 63..32  status or value kind (uint32)
//	bits 31..0   length in bytes (uint32)
//
// Worked example: event_get on a string "Order Completed" (15 bytes) returns
// KindString<<32 | 15 = 0x0000_0005_0000_000F.
//
// # Pointers
//
// Every pointer and length passed by a guest is checked against the guest's
// memory. An out-of-range one ends the call with an ABI violation (the host
// traps the guest, which is then discarded); it never reaches host memory.
package abi

import "encoding/binary"

// Version is the ABI version this package describes. A guest reports the
// version it was built against from [ExportABIVersion]; the host refuses to
// load a module whose version it does not speak.
const Version uint32 = 1

// ModuleName is the import module every host function below lives in.
const ModuleName = "insertfn"

// Host functions (imports of the guest, module [ModuleName]). Signatures use
// WebAssembly value types; ptr and len are i32 offsets and sizes in the
// guest's memory.
const (
	// FuncEventGet reads one field of the event by gjson path.
	//
	//	event_get(path_ptr, path_len, buf, buf_limit i32) -> i64
	//
	// Result: packed [Kind]<<32 | length. Strings come back unescaped, numbers
	// as their JSON text, objects and arrays as raw JSON, true/false/null with
	// length 0. A missing field is [KindMissing] with length 0.
	FuncEventGet = "event_get"

	// FuncEventSet sets one field by sjson path to a raw JSON value.
	//
	//	event_set(path_ptr, path_len, value_ptr, value_len i32) -> i32
	//
	// Result: [StatusOK] or a negative status: [StatusInvalidJSON],
	// [StatusInvalidPath]. An event that would grow past the function's size
	// limit ends the call with an "event too large" error.
	FuncEventSet = "event_set"

	// FuncEventDelete removes one field by sjson path.
	//
	//	event_delete(path_ptr, path_len i32) -> i32
	//
	// Result: [StatusOK] (also when the field was not there) or
	// [StatusInvalidPath].
	FuncEventDelete = "event_delete"

	// FuncEventRead copies the whole event (JSON) into the guest's buffer,
	// following the buffer rule.
	//
	//	event_read(buf, buf_limit i32) -> i32   (length of the event)
	FuncEventRead = "event_read"

	// FuncEventWrite replaces the whole event with the guest's JSON.
	//
	//	event_write(ptr, len i32) -> i32
	//
	// Result: [StatusOK] or [StatusInvalidJSON] (not a JSON object). An event
	// over the size limit ends the call with an "event too large" error.
	FuncEventWrite = "event_write"

	// FuncConsentLookup looks the stored consent record of an id up.
	//
	//	consent_lookup(id_ptr, id_len, buf, buf_limit i32) -> i64
	//
	// An empty id (id_len 0) means the event's own ids: its userId, else its
	// anonymousId. Result: packed [ConsentStatus]<<32 | length. On
	// [ConsentFound] the buffer holds the record as [Entry] values (one per
	// category and per purpose, see [AppendEntry]).
	FuncConsentLookup = "consent_lookup"

	// FuncConsentCompare compares the event's consent
	// (context.consent.categoryPreferences and context.consent.consent_state)
	// with the stored record of an id, on the host.
	//
	//	consent_compare(id_ptr, id_len, buf, buf_limit i32) -> i64
	//
	// An empty id means the event's own ids, as for [FuncConsentLookup].
	// Result: packed [ConsentStatus]<<32 | length. On [ConsentDiffers] the
	// buffer holds one [Entry] per category or purpose whose value differs or
	// that only one side knows; [ConsentSame] has length 0.
	FuncConsentCompare = "consent_compare"

	// FuncSettingsGet reads the function's settings (a JSON object from its
	// manifest) by gjson path; an empty path returns the whole object.
	//
	//	settings_get(path_ptr, path_len, buf, buf_limit i32) -> i64
	//
	// Result: packed [Kind]<<32 | length, exactly like [FuncEventGet].
	FuncSettingsGet = "settings_get"

	// FuncLog appends one line to the event's logs.
	//
	//	log(level, ptr, len i32)
	//
	// level is a [Level]. Logs past the function's per-event byte limit end
	// the call with a "log limit" error.
	FuncLog = "log"

	// FuncSetReason sets the reason that accompanies a non-deliver [Result]
	// (the DropEvent reason or the error message). The host keeps at most
	// [MaxReasonLen] bytes.
	//
	//	set_reason(ptr, len i32)
	FuncSetReason = "set_reason"

	// FuncBatchNext drives [ExportHandleBatch]: it records the result of the
	// current event (ignored before the first event; pass -1), makes the next
	// event of the batch current and returns its [EventType], or -1 when the
	// batch is done. The reason of a non-deliver result is set with
	// [FuncSetReason] before this call.
	//
	//	batch_next(result i32) -> i32
	FuncBatchNext = "batch_next"
)

// ValueType is a WebAssembly value type, by its binary encoding (the same
// byte wazero's api.ValueType uses).
type ValueType byte

// The value types of the ABI's signatures.
const (
	I32 ValueType = 0x7f
	I64 ValueType = 0x7e
)

// String returns the type's name in the WebAssembly text format ("i32").
func (t ValueType) String() string {
	switch t {
	case I32:
		return "i32"
	case I64:
		return "i64"
	}
	return "unknown"
}

// Param is one parameter of a host function: the name docs/abi.md gives it
// and its type.
type Param struct {
	Name string
	Type ValueType
}

// HostFunc is the signature of one host function.
type HostFunc struct {
	Name    string      // a Func* constant
	Params  []Param     // in order
	Results []ValueType // none or one
}

// Signature renders the signature as docs/abi.md writes it:
// "(path_ptr i32, path_len i32) -> i32", and without the arrow for a
// function that returns nothing.
func (f HostFunc) Signature() string {
	s := "("
	for i, p := range f.Params {
		if i > 0 {
			s += ", "
		}
		s += p.Name + " " + p.Type.String()
	}
	s += ")"
	for i, r := range f.Results {
		if i == 0 {
			s += " -> "
		} else {
			s += ", "
		}
		s += r.String()
	}
	return s
}

// HostFuncs returns the signature of every host function above, in the
// order of docs/abi.md. It is the one list of the host functions: the host
// runtime registers its functions with these signatures and refuses to
// start when a function is missing on either side, and the tests hold the
// guest SDK's imports and docs/abi.md to it. Each call returns a new slice.
//
// A new host function takes, besides its logic in package hostcall: a
// Func* constant above (its doc comment giving the signature) and its
// entry here; its body in the runtime's table (runtime/host.go); its
// //go:wasmimport declaration in the Go SDK (sdk/host_wasip1.go), with the
// SDK method that calls it; and its row in docs/abi.md. The tests name
// whichever of these is missing.
func HostFuncs() []HostFunc {
	in := func(names ...string) []Param { // i32 parameters
		ps := make([]Param, len(names))
		for i, n := range names {
			ps[i] = Param{n, I32}
		}
		return ps
	}
	out := func(ts ...ValueType) []ValueType { return ts }
	return []HostFunc{
		{FuncEventGet, in("path_ptr", "path_len", "buf", "buf_limit"), out(I64)},
		{FuncEventSet, in("path_ptr", "path_len", "value_ptr", "value_len"), out(I32)},
		{FuncEventDelete, in("path_ptr", "path_len"), out(I32)},
		{FuncEventRead, in("buf", "buf_limit"), out(I32)},
		{FuncEventWrite, in("ptr", "len"), out(I32)},
		{FuncConsentLookup, in("id_ptr", "id_len", "buf", "buf_limit"), out(I64)},
		{FuncConsentCompare, in("id_ptr", "id_len", "buf", "buf_limit"), out(I64)},
		{FuncSettingsGet, in("path_ptr", "path_len", "buf", "buf_limit"), out(I64)},
		{FuncLog, in("level", "ptr", "len"), out()},
		{FuncSetReason, in("ptr", "len"), out()},
		{FuncBatchNext, in("result"), out(I32)},
	}
}

// Guest exports the host calls.
const (
	// ExportABIVersion returns the [Version] the guest was built against.
	//
	//	insertfn_abi_version() -> i32
	ExportABIVersion = "insertfn_abi_version"

	// ExportHandle handles the current event.
	//
	//	insertfn_handle(event_type i32) -> i32
	//
	// event_type is an [EventType]; the result is a [Result].
	ExportHandle = "insertfn_handle"

	// ExportHandleBatch handles a batch of events in one call, which spares
	// the host's fixed cost of a call per event. Optional: a guest without it
	// gets one [ExportHandle] call per event. The guest loops on
	// [FuncBatchNext] until it returns -1, then returns 0.
	//
	//	insertfn_handle_batch() -> i32
	ExportHandleBatch = "insertfn_handle_batch"

	// ExportInitialize is the WASI reactor start-up function; the host calls
	// it once per instance before anything else, when the module exports it.
	ExportInitialize = "_initialize"

	// ExportMemory is the guest's linear memory, which every pointer refers to.
	ExportMemory = "memory"
)

// MaxReasonLen is the most bytes of a reason the host keeps.
const MaxReasonLen = 1024

// EventType is the Segment event type, passed to [ExportHandle] so that the
// guest can dispatch without reading the event.
type EventType int32

// Event types. [EventOther] is any type the host does not recognise (read the
// "type" field for its name).
const (
	EventOther EventType = iota
	EventTrack
	EventIdentify
	EventPage
	EventScreen
	EventGroup
	EventAlias
	EventDelete
)

var eventTypeNames = [...]string{"", "track", "identify", "page", "screen", "group", "alias", "delete"}

// String returns the event type's name as it appears in the event's "type"
// field, or "" for [EventOther].
func (t EventType) String() string {
	if t < 0 || int(t) >= len(eventTypeNames) {
		return ""
	}
	return eventTypeNames[t]
}

// ParseEventType maps the value of an event's "type" field to an EventType.
// A switch, not a loop over the names: the compiler turns it into a few
// length and word comparisons, and the host runs this once per event.
func ParseEventType(s string) EventType {
	switch s {
	case "track":
		return EventTrack
	case "identify":
		return EventIdentify
	case "page":
		return EventPage
	case "screen":
		return EventScreen
	case "group":
		return EventGroup
	case "alias":
		return EventAlias
	case "delete":
		return EventDelete
	}
	return EventOther
}

// Result is what [ExportHandle] returns: the function's verdict on the event.
// It follows Segment's error vocabulary.
type Result int32

// Results. Every value other than [ResultDeliver] ends the event's way to
// destinations; see the host documentation for what is counted and retried.
const (
	// ResultDeliver passes the event on, with any changes made to it.
	ResultDeliver Result = iota
	// ResultDrop drops the event on purpose (Segment's DropEvent); not an error.
	ResultDrop
	// ResultEventNotSupported rejects an event type the function does not handle.
	ResultEventNotSupported
	// ResultInvalidEventPayload rejects a malformed event.
	ResultInvalidEventPayload
	// ResultValidationError rejects an event that fails the function's checks.
	ResultValidationError
	// ResultRetry asks the host to run the function again later.
	ResultRetry
	// ResultFunctionError is any other failure of the function's own code.
	ResultFunctionError
)

var resultNames = [...]string{"Deliver", "DropEvent", "EventNotSupported", "InvalidEventPayload", "ValidationError", "RetryError", "FunctionError"}

// String returns the Segment name of the result ("DropEvent", "RetryError", ...).
func (r Result) String() string {
	if r < 0 || int(r) >= len(resultNames) {
		return "FunctionError"
	}
	return resultNames[r]
}

// Valid reports whether r is one of the defined results.
func (r Result) Valid() bool { return r >= ResultDeliver && r <= ResultFunctionError }

// Kind is the JSON kind of a value returned by [FuncEventGet] and
// [FuncSettingsGet].
type Kind uint32

// Value kinds.
const (
	KindMissing Kind = iota
	KindNull
	KindFalse
	KindTrue
	KindNumber
	KindString
	KindJSON // an object or an array, as raw JSON
)

// Status is the result of host functions that change the event.
type Status int32

// Statuses. Negative values are errors the guest can handle.
const (
	StatusOK          Status = 0
	StatusInvalidJSON Status = -1
	StatusInvalidPath Status = -2
)

// ConsentStatus is the status half of [FuncConsentLookup] and
// [FuncConsentCompare] results.
type ConsentStatus uint32

// Consent statuses.
const (
	// ConsentFound: lookup found a record (the entries follow).
	ConsentFound ConsentStatus = iota
	// ConsentSame: compare found no difference.
	ConsentSame
	// ConsentDiffers: compare found differences (the entries follow).
	ConsentDiffers
	// ConsentNoRecord: no record is stored for the id.
	ConsentNoRecord
	// ConsentNoEventConsent: the event carries no context.consent (compare only).
	ConsentNoEventConsent
	// ConsentNoID: an empty id was given and the event has neither userId nor anonymousId.
	ConsentNoID
	// ConsentUnavailable: the consent store failed or timed out; the host logs why.
	ConsentUnavailable
)

var consentStatusNames = [...]string{"found", "same", "differs", "no record", "no consent in event", "no id", "store unavailable"}

// String names the status.
func (s ConsentStatus) String() string {
	if int(s) >= len(consentStatusNames) {
		return "unknown"
	}
	return consentStatusNames[s]
}

// Level is a log level for [FuncLog].
type Level int32

// Log levels.
const (
	LevelDebug Level = iota
	LevelInfo
	LevelWarn
	LevelError
)

var levelNames = [...]string{"debug", "info", "warn", "error"}

// String names the level.
func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return "info"
	}
	return levelNames[l]
}

// Pack builds a packed i64 result from a status (or kind) and a length.
func Pack(status uint32, length uint32) uint64 { return uint64(status)<<32 | uint64(length) }

// Unpack splits a packed i64 result into its status (or kind) and length.
func Unpack(v uint64) (status uint32, length uint32) { return uint32(v >> 32), uint32(v) }

// Entry flags, the first byte of an encoded [Entry].
const (
	// FlagPurpose marks a regulation purpose (consent_state); without it the
	// entry is a category (categoryPreferences).
	FlagPurpose uint8 = 1 << iota
	// FlagInStored: the stored record has the entry.
	FlagInStored
	// FlagStoredConsented: the stored value is consented (true).
	FlagStoredConsented
	// FlagInEvent: the event carries the entry (compare only).
	FlagInEvent
	// FlagEventConsented: the event's value is consented (compare only).
	FlagEventConsented
)

// Entry is one category or purpose in the compact encoding the host uses for
// consent lookups and comparisons. Names are views into the encoded buffer
// when decoded with [DecodeEntry]; copy them to keep them.
//
// Encoding (all integers little-endian):
//
//	u8   flags (Flag* bits)
//	u16  length of Name, then Name bytes (category; or regulation for a purpose)
//	u16  length of Purpose, then Purpose bytes (only with FlagPurpose)
//	i64  Timestamp of the stored entry in Unix milliseconds (0 if not stored)
type Entry struct {
	Flags     uint8
	Name      []byte // category name, or regulation ("gdpr", "ccpa") for a purpose
	Purpose   []byte // purpose name; empty for a category
	Timestamp int64  // stored entry's timestamp_unixtime_ms
}

// IsPurpose reports whether the entry is a regulation purpose.
func (e *Entry) IsPurpose() bool { return e.Flags&FlagPurpose != 0 }

// InStored reports whether the stored record has the entry.
func (e *Entry) InStored() bool { return e.Flags&FlagInStored != 0 }

// StoredConsented reports the stored value.
func (e *Entry) StoredConsented() bool { return e.Flags&FlagStoredConsented != 0 }

// InEvent reports whether the event carries the entry.
func (e *Entry) InEvent() bool { return e.Flags&FlagInEvent != 0 }

// EventConsented reports the event's value.
func (e *Entry) EventConsented() bool { return e.Flags&FlagEventConsented != 0 }

// MaxNameLen is the longest name an entry can carry; longer names are cut.
const MaxNameLen = 0xFFFF

// AppendEntry appends the encoding of one entry to dst and returns the
// extended buffer. Names longer than [MaxNameLen] are cut.
func AppendEntry(dst []byte, flags uint8, name, purpose string, timestamp int64) []byte {
	dst = append(dst, flags)
	dst = appendName(dst, name)
	if flags&FlagPurpose != 0 {
		dst = appendName(dst, purpose)
	}
	return binary.LittleEndian.AppendUint64(dst, uint64(timestamp))
}

func appendName(dst []byte, s string) []byte {
	if len(s) > MaxNameLen {
		s = s[:MaxNameLen]
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// DecodeEntry decodes the entry at the start of b into e and returns the
// rest of b. ok is false when b is truncated or malformed.
func DecodeEntry(b []byte, e *Entry) (rest []byte, ok bool) {
	if len(b) < 1 {
		return b, false
	}
	e.Flags = b[0]
	b = b[1:]
	if e.Name, b, ok = decodeName(b); !ok {
		return b, false
	}
	e.Purpose = nil
	if e.Flags&FlagPurpose != 0 {
		if e.Purpose, b, ok = decodeName(b); !ok {
			return b, false
		}
	}
	if len(b) < 8 {
		return b, false
	}
	e.Timestamp = int64(binary.LittleEndian.Uint64(b))
	return b[8:], true
}

func decodeName(b []byte) (name, rest []byte, ok bool) {
	if len(b) < 2 {
		return nil, b, false
	}
	n := int(binary.LittleEndian.Uint16(b))
	b = b[2:]
	if len(b) < n {
		return nil, b, false
	}
	return b[:n:n], b[n:], true
}
