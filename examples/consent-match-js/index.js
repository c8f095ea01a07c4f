// consent-match in JavaScript, as a Segment Source Insert Function is
// written: drop an event whose consent differs from the consent stored for
// its person (throw new DropEvent('Consent mismatch')).
//
// Where Segment's function fetches the stored consent from "your own
// service or cache", this one asks insertfn's consent store through
// insertfn.consent.compare: the host looks the record up and compares it
// with the event's context.consent, as the Go example's ConsentConflicts
// does, with no HTTP call and no parse of the event in JavaScript.
//
// Settings (as examples/consent-match, the Go version, reads them):
//   comparePurposes   also drop on a regulation purpose of consent_state
//                     that differs (default false)
//   missingRecord     no record stored for the person: pass (default), drop, retry
//   missingConsent    the event carries no context.consent: pass (default), drop, retry
//   storeUnavailable  the consent store failed: retry (default), drop, pass

// The handlers are plain functions: nothing here is awaited, and a
// handler that is not async spares the engine a promise per event (Segment
// calls both kinds alike).
function onTrack(event, settings) {
  return check(event, settings);
}
function onIdentify(event, settings) {
  return check(event, settings);
}
function onPage(event, settings) {
  return check(event, settings);
}
function onScreen(event, settings) {
  return check(event, settings);
}
function onGroup(event, settings) {
  return check(event, settings);
}
function onAlias(event, settings) {
  return check(event, settings);
}

function check(event, settings) {
  const c = insertfn.consent.compare(event);
  switch (c.status) {
    case "same":
    case "differs":
      if (c.categoryMismatch || (c.purposeMismatch && bool(settings.comparePurposes))) {
        throw new DropEvent("Consent mismatch");
      }
      return event;
    case "no_record":
    case "no_id":
      return policy(settings, "missingRecord", "pass", "No stored consent", event);
    case "no_event_consent":
      return policy(settings, "missingConsent", "pass", "No consent in event", event);
    default:
      return policy(settings, "storeUnavailable", "retry", "Consent store unavailable", event);
  }
}

// bool reads a boolean setting as the Go SDK's Settings.Bool does: true,
// a string Go's strconv.ParseBool takes as true, or a number other than 0.
function bool(v) {
  if (typeof v === "string") return ["1", "t", "T", "true", "TRUE", "True"].includes(v);
  if (typeof v === "number") return v !== 0;
  return v === true;
}

function policy(settings, setting, def, reason, event) {
  const p = settings[setting] === undefined || settings[setting] === "" ? def : String(settings[setting]);
  switch (p) {
    case "pass":
      return event;
    case "drop":
      throw new DropEvent(reason);
    case "retry":
      throw new RetryError(reason);
  }
  throw new Error(`setting ${setting}: "${p}" is not one of pass, drop, retry`);
}
