// consent-match in AssemblyScript: the same check as examples/consent-match
// (Go), with the same settings and verdicts. It compares the event's
// consent with the stored record on the host and drops the event with
// "Consent mismatch" when a category known to both differs.
//
// Settings:
//
//	{"comparePurposes": true | false}                default false: a purpose (GDPR, CCPA) that differs drops too
//	{"missingRecord": "pass" | "drop"}               default "pass"
//	{"missingConsent": "pass" | "drop"}              default "pass": an event without context.consent
//	{"storeUnavailable": "retry" | "drop" | "pass"}  default "retry"
//
// Build (make examples does), with the asc of sdk/assemblyscript:
//
//	asc examples/consent-match-as/index.ts -O3 --runtime incremental \
//	    --use abort=sdk/assemblyscript/index/abort -o consent-match-as.wasm

import {
  ABI_VERSION, CONSENT_DIFFERS, CONSENT_NO_EVENT_CONSENT, CONSENT_NO_ID, CONSENT_NO_RECORD, CONSENT_SAME,
  KIND_MISSING, KIND_NULL, KIND_STRING, RESULT_DELIVER, RESULT_DROP, RESULT_FUNCTION_ERROR, RESULT_RETRY,
  consentConflicts, handleBatch, reason, reasonString, setting, settingBool, utf8, Value,
} from "../../sdk/assemblyscript/index";

// The text the function passes to the host, encoded once.
const COMPARE_PURPOSES = utf8("comparePurposes");
const MISSING_RECORD = utf8("missingRecord");
const MISSING_CONSENT = utf8("missingConsent");
const STORE_UNAVAILABLE = utf8("storeUnavailable");
const PASS = utf8("pass");
const DROP = utf8("drop");
const RETRY = utf8("retry");
const CONSENT_MISMATCH = utf8("Consent mismatch");
const NO_STORED_CONSENT = utf8("No stored consent");
const NO_CONSENT_IN_EVENT = utf8("No consent in event");
const STORE_UNAVAILABLE_REASON = utf8("Consent store unavailable");

export function insertfn_abi_version(): u32 {
  return ABI_VERSION;
}

// insertfn_handle drops an event whose consent disagrees with the stored
// consent. Every event type is checked alike.
export function insertfn_handle(eventType: i32): i32 {
  let c = consentConflicts();
  switch (c.status) {
    case CONSENT_SAME:
    case CONSENT_DIFFERS:
      // The setting is read only when a purpose differs, not on every event.
      if (c.categories || (c.purposes && settingBool(COMPARE_PURPOSES, false))) {
        reason(CONSENT_MISMATCH);
        return RESULT_DROP;
      }
      return RESULT_DELIVER;
    case CONSENT_NO_RECORD:
    case CONSENT_NO_ID:
      return policy(MISSING_RECORD, "missingRecord", PASS, NO_STORED_CONSENT);
    case CONSENT_NO_EVENT_CONSENT:
      return policy(MISSING_CONSENT, "missingConsent", PASS, NO_CONSENT_IN_EVENT);
  }
  return policy(STORE_UNAVAILABLE, "storeUnavailable", RETRY, STORE_UNAVAILABLE_REASON);
}

export function insertfn_handle_batch(): i32 {
  return handleBatch(insertfn_handle);
}

// policy applies the setting that decides a case: pass (deliver), drop or
// retry, each with why; def when the setting is missing. A value that is
// none of them is a function error: a typo must not let events through.
function policy(path: ArrayBuffer, name: string, def: ArrayBuffer, why: ArrayBuffer): i32 {
  let v = setting(path);
  // A missing, null or empty setting is the default, as Go's Settings.String reads it.
  let isDefault = v.kind == KIND_MISSING || v.kind == KIND_NULL || (v.kind == KIND_STRING && v.len == 0);
  if (chose(v, isDefault, def, PASS)) return RESULT_DELIVER;
  if (chose(v, isDefault, def, DROP)) {
    reason(why);
    return RESULT_DROP;
  }
  if (chose(v, isDefault, def, RETRY)) {
    reason(why);
    return RESULT_RETRY;
  }
  reasonString("setting " + name + ": " + quote(v.toString()) + " is not one of pass, drop, retry");
  return RESULT_FUNCTION_ERROR;
}

// chose reports whether the setting (or, when it is missing, the default)
// is the word.
function chose(v: Value, isDefault: bool, def: ArrayBuffer, word: ArrayBuffer): bool {
  return isDefault ? def == word : v.equals(word);
}

// quote writes s as Go's %q writes a plain string: in double quotes, with
// quotes and backslashes escaped.
function quote(s: string): string {
  return '"' + s.replaceAll("\\", "\\\\").replaceAll('"', '\\"') + '"';
}
