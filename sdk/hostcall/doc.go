// Package hostcall is the host half of the ABI in plain Go: the host's own
// copy of one event, read with gjson and changed with sjson under a size
// limit, and the consent comparison between that event and a stored record.
//
// The wazero runtime wires these operations to the guest's imports; the
// native test harness (sdktest) calls the very same code, so a function
// behaves the same under `go test` as in the sandbox.
//
// # Lifetime
//
// [Doc.Reset] takes the caller's event bytes without copying them. The caller
// must not change them until it is done with the Doc. Changes never write to
// the caller's bytes: the first change makes a new buffer. Strings returned by
// [Doc.UserID] and [Doc.AnonymousID] and results of [Doc.Get] are views into the current event and are
// valid until the next change or Reset.
package hostcall
