package quickjs

import (
	"encoding/json"
	"fmt"

	"github.com/insertfn/insertfn/sdk/abi"
)

// Host answers a function's consent calls, insertfn.consent.lookup and
// insertfn.consent.compare, on the event being handled: the host functions
// abi.FuncConsentLookup and abi.FuncConsentCompare, with a Go slice for the
// guest's buffer and the same rule (the payload is copied into buf when it
// fits; its length is returned either way). *hostcall.Call implements it,
// so that JavaScript and WebAssembly functions share one lookup and one
// comparison.
type Host interface {
	ConsentLookup(id string, buf []byte) (abi.ConsentStatus, int)
	ConsentCompare(id string, buf []byte) (abi.ConsentStatus, int)
}

// SetHost makes h answer the instance's consent calls; nil (the default)
// answers that no consent is stored. Set it before Handle, not during.
func (inst *Instance) SetHost(h Host) { inst.host = h }

// hostConsent is JavaScript's hostConsent(op + id): op "l" looks the
// stored consent of id up, "c" compares the event's consent with it; an
// empty id means the event's own ids. It returns a string: the status's
// digit (abi.ConsentStatus), a digit of conflict flags (1: a category
// known to both sides differs, 2: a purpose does), then JSON: the record
// of a found lookup ({"categories":{NAME:bool},"purposes":[...]}), or the
// differences of a comparison ([{...}]), as prelude.js reads them.
func (inst *Instance) hostConsent(argc, argv uint32) (uint32, error) {
	view, p, err := inst.argView("consent", argc, argv, 1<<20)
	if err != nil {
		return 0, err
	}
	arg := string(view)
	if err := inst.freeArg(p); err != nil {
		return 0, err
	}
	if len(arg) == 0 || (arg[0] != 'l' && arg[0] != 'c') {
		return 0, inst.failure(Trap, fmt.Sprintf("the host function consent was called with %q", arg), nil)
	}
	lookup, id := arg[0] == 'l', arg[1:]
	status, payload := abi.ConsentNoRecord, []byte(nil)
	if inst.host != nil {
		call := inst.host.ConsentCompare
		if lookup {
			call = inst.host.ConsentLookup
		}
		if inst.consentBuf == nil {
			inst.consentBuf = make([]byte, 0, 1024) // a record of a few dozen entries
		}
		n := 0
		if status, n = call(id, inst.consentBuf[:cap(inst.consentBuf)]); n > cap(inst.consentBuf) {
			inst.consentBuf = make([]byte, n)
			status, n = call(id, inst.consentBuf)
		}
		if n <= cap(inst.consentBuf) {
			payload = inst.consentBuf[:n]
		} else {
			status, payload = abi.ConsentUnavailable, nil // changed between the two calls
		}
	}
	out := append(inst.consentOut[:0], byte('0'+status), '0')
	if lookup && status == abi.ConsentFound {
		out = appendRecordJSON(out, payload)
	} else if !lookup && status == abi.ConsentDiffers {
		var flags byte
		out, flags = appendDifferencesJSON(out, payload)
		out[1] = '0' + flags
	}
	inst.consentOut = out
	return inst.newJSString(unsafeString(out))
}

// appendRecordJSON appends the entries of a found lookup as the record
// JavaScript sees.
func appendRecordJSON(dst, entries []byte) []byte {
	dst = append(dst, `{"categories":{`...)
	var e abi.Entry
	first := true
	for b, ok := entries, true; len(b) > 0 && ok; {
		if b, ok = abi.DecodeEntry(b, &e); !ok || e.IsPurpose() {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJSONString(dst, e.Name)
		dst = append(dst, ':')
		dst = appendBool(dst, e.StoredConsented())
	}
	dst = append(dst, `},"purposes":[`...)
	first = true
	for b, ok := entries, true; len(b) > 0 && ok; {
		if b, ok = abi.DecodeEntry(b, &e); !ok || !e.IsPurpose() {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, `{"regulation":`...)
		dst = appendJSONString(dst, e.Name)
		dst = append(dst, `,"purpose":`...)
		dst = appendJSONString(dst, e.Purpose)
		dst = append(dst, `,"consented":`...)
		dst = appendBool(dst, e.StoredConsented())
		dst = fmt.Appendf(dst, `,"timestamp":%d}`, e.Timestamp)
	}
	return append(dst, "]}"...)
}

// appendDifferencesJSON appends the entries of a comparison as the
// differences JavaScript sees, and returns the conflict flags: 1 when a
// category known to both sides differs, 2 when a purpose does (the Go
// SDK's ConsentConflicts).
func appendDifferencesJSON(dst, entries []byte) ([]byte, byte) {
	var flags byte
	dst = append(dst, '[')
	var e abi.Entry
	first := true
	for b, ok := entries, true; len(b) > 0 && ok; {
		if b, ok = abi.DecodeEntry(b, &e); !ok {
			break
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if e.IsPurpose() {
			dst = append(dst, `{"regulation":`...)
			dst = appendJSONString(dst, e.Name)
			dst = append(dst, `,"purpose":`...)
			dst = appendJSONString(dst, e.Purpose)
		} else {
			dst = append(dst, `{"category":`...)
			dst = appendJSONString(dst, e.Name)
		}
		dst = append(dst, `,"inEvent":`...)
		dst = appendBool(dst, e.InEvent())
		dst = append(dst, `,"eventConsented":`...)
		dst = appendBool(dst, e.EventConsented())
		dst = append(dst, `,"inStored":`...)
		dst = appendBool(dst, e.InStored())
		dst = append(dst, `,"storedConsented":`...)
		dst = appendBool(dst, e.StoredConsented())
		dst = fmt.Appendf(dst, `,"storedAt":%d}`, e.Timestamp)
		if e.InEvent() && e.InStored() && e.EventConsented() != e.StoredConsented() {
			if e.IsPurpose() {
				flags |= 2
			} else {
				flags |= 1
			}
		}
	}
	return append(dst, ']'), flags
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json writes it.
func appendJSONString(dst, s []byte) []byte {
	for _, c := range s {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			b, _ := json.Marshal(string(s)) // the rare name that needs escaping
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// argView returns a view of the host function fn's one argument as a
// string (at most limit bytes), and the C string it views, to give back
// with freeArg once the view is no longer used.
func (inst *Instance) argView(fn string, argc, argv, limit uint32) ([]byte, uint32, error) {
	if argc != 1 {
		return nil, 0, inst.failure(Trap, fmt.Sprintf("the host function %s was called with %d arguments", fn, argc), nil)
	}
	arg, err := inst.invoke32(inst.argvGet, uint64(argv), 0)
	if err != nil {
		return nil, 0, err
	}
	p, err := inst.invoke32(inst.getString, uint64(inst.ctxPtr), uint64(arg))
	if err != nil {
		return nil, 0, err
	}
	if p == 0 {
		return nil, 0, inst.failure(MemoryLimit, inst.outOfMemory(), nil)
	}
	b, _ := cBytes(inst.mem, p, limit)
	return b, p, nil
}

// freeArg gives back the C string of an argView.
func (inst *Instance) freeArg(p uint32) error {
	_, err := inst.invoke(inst.freeCString, uint64(inst.ctxPtr), uint64(p))
	return err
}

// newJSString returns a new JavaScript string of s (which holds no NUL),
// a JSValue* the engine takes over.
func (inst *Instance) newJSString(s string) (uint32, error) {
	if err := inst.ensureBuffer(uint32(len(s)) + 1); err != nil {
		return 0, err
	}
	inst.mem.WriteString(inst.buf, s)
	inst.mem.WriteByte(inst.buf+uint32(len(s)), 0)
	v, err := inst.invoke32(inst.newString, uint64(inst.ctxPtr), uint64(inst.buf))
	if err != nil {
		return 0, err
	}
	if v == 0 {
		return 0, inst.failure(MemoryLimit, inst.outOfMemory(), nil)
	}
	return v, nil
}
