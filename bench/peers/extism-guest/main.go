// Command extism-guest is the consent-match function written as an Extism
// plug-in with github.com/extism/go-pdk, for the peers comparison.
//
// It is written the way the Extism documentation shows: the export
// consent_match takes the raw event JSON as its input, looks the user's
// stored consent up through a host function (extism:host/user consent_get,
// which returns the stored categories as JSON, or offset 0 when the user
// has none), compares it with the event's context.consent.categoryPreferences
// and outputs "drop" or "deliver". JSON is read with gjson, as the native Go
// check does.
//
// Build it with the standard Go toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o consent-match-extism.wasm .
package main

import (
	"github.com/extism/go-pdk"
	"github.com/tidwall/gjson"
)

// consentGet is the host's consent store: the input is the user's ID, the
// result the stored categories as a JSON object ({"C0001":true,...}), or 0
// when the store has no record of the user.
//
//go:wasmimport extism:host/user consent_get
func consentGet(id uint64) uint64

var (
	deliver = []byte("deliver")
	drop    = []byte("drop")
)

// consentMatch drops an event whose consent disagrees with the stored
// consent of its user in a category known to both.
//
//go:wasmexport consent_match
func consentMatch() int32 {
	ev := pdk.Input()
	id := gjson.GetBytes(ev, "userId").String()
	if id == "" {
		id = gjson.GetBytes(ev, "anonymousId").String()
	}
	if id == "" {
		pdk.Output(deliver)
		return 0
	}
	mem := pdk.AllocateString(id)
	off := consentGet(mem.Offset())
	mem.Free()
	if off == 0 { // no stored consent: pass, as consent-match does by default
		pdk.Output(deliver)
		return 0
	}
	rec := pdk.FindMemory(off)
	stored := rec.ReadBytes()
	rec.Free()
	mismatch := false
	gjson.GetBytes(ev, "context.consent.categoryPreferences").ForEach(func(k, v gjson.Result) bool {
		if s := gjson.GetBytes(stored, k.String()); s.Exists() && s.Bool() != v.Bool() {
			mismatch = true
			return false
		}
		return true
	})
	if mismatch {
		pdk.Output(drop)
	} else {
		pdk.Output(deliver)
	}
	return 0
}

func main() {}
