/*
 * consent-match in C: the same check as examples/consent-match (Go), with
 * the same settings and verdicts. It compares the event's consent with the
 * stored record on the host and drops the event with "Consent mismatch"
 * when a category known to both differs.
 *
 * Settings:
 *
 *     {"comparePurposes": true | false}                default false: a purpose (GDPR, CCPA) that differs drops too
 *     {"missingRecord": "pass" | "drop"}               default "pass"
 *     {"missingConsent": "pass" | "drop"}              default "pass": an event without context.consent
 *     {"storeUnavailable": "retry" | "drop" | "pass"}  default "retry"
 *
 * Build (make examples does):
 *
 *     clang-14 --target=wasm32-wasi -O2 -mexec-model=reactor -Wl,--strip-all \
 *         -I sdk/c -o consent-match-c.wasm examples/consent-match-c/main.c
 */
#include "insertfn.h"

/* quote appends s to out as Go's %q writes a plain string: in double
   quotes, with quotes and backslashes escaped. It returns the new end. */
static char *quote(char *out, const char *end, const char *s, uint32_t n) {
    if (out < end) *out++ = '"';
    for (uint32_t i = 0; i < n && out < end; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            *out++ = '\\';
            if (out == end) break;
        }
        *out++ = s[i];
    }
    if (out < end) *out++ = '"';
    return out;
}

static char *append(char *out, const char *end, const char *s) {
    while (*s && out < end) *out++ = *s++;
    return out;
}

/*
 * policy applies the setting that decides a case: pass (deliver), drop or
 * retry, each with reason; def when the setting is missing. A value that
 * is none of them is a function error: a typo must not let events through.
 */
static int32_t policy(insertfn_str setting, const char *def, insertfn_str reason) {
    char value[256];
    uint32_t n;
    uint32_t kind = insertfn_setting(setting, value, sizeof value, &n);
    const char *p = value;
    switch (kind) {
    case INSERTFN_KIND_TRUE:
        p = "true", n = 4;
        break;
    case INSERTFN_KIND_FALSE:
        p = "false", n = 5;
        break;
    case INSERTFN_KIND_MISSING:
    case INSERTFN_KIND_NULL:
        n = 0;
        break;
    }
    if (n > sizeof value) n = sizeof value; /* too long to be any of them; quoted cut */
    if (n == 0) p = def, n = (uint32_t)strlen(def);

    if (insertfn_equal(p, n, INSERTFN_STR("pass"))) return INSERTFN_RESULT_DELIVER;
    if (insertfn_equal(p, n, INSERTFN_STR("drop"))) {
        insertfn_reason(reason);
        return INSERTFN_RESULT_DROP;
    }
    if (insertfn_equal(p, n, INSERTFN_STR("retry"))) {
        insertfn_reason(reason);
        return INSERTFN_RESULT_RETRY;
    }
    char msg[INSERTFN_MAX_REASON_LEN], *out = msg, *end = msg + sizeof msg;
    out = append(out, end, "setting ");
    for (uint32_t i = 0; i < setting.len && out < end; i++) *out++ = setting.ptr[i];
    out = append(out, end, ": ");
    out = quote(out, end, p, n);
    out = append(out, end, " is not one of pass, drop, retry");
    insertfn_set_reason(msg, (uint32_t)(out - msg));
    return INSERTFN_RESULT_FUNCTION_ERROR;
}

/* check drops an event whose consent disagrees with the stored consent. */
static int32_t check(int32_t event_type) {
    (void)event_type; /* every event type is checked alike */
    int categories, purposes;
    switch (insertfn_consent_conflicts(NULL, 0, &categories, &purposes)) {
    case INSERTFN_CONSENT_SAME:
    case INSERTFN_CONSENT_DIFFERS:
        /* The setting is read only when a purpose differs, not on every event. */
        if (categories || (purposes && insertfn_setting_bool(INSERTFN_STR("comparePurposes"), 0))) {
            insertfn_reason(INSERTFN_STR("Consent mismatch"));
            return INSERTFN_RESULT_DROP;
        }
        return INSERTFN_RESULT_DELIVER;
    case INSERTFN_CONSENT_NO_RECORD:
    case INSERTFN_CONSENT_NO_ID:
        return policy(INSERTFN_STR("missingRecord"), "pass", INSERTFN_STR("No stored consent"));
    case INSERTFN_CONSENT_NO_EVENT_CONSENT:
        return policy(INSERTFN_STR("missingConsent"), "pass", INSERTFN_STR("No consent in event"));
    default:
        return policy(INSERTFN_STR("storeUnavailable"), "retry", INSERTFN_STR("Consent store unavailable"));
    }
}

INSERTFN_FUNCTION(check)
