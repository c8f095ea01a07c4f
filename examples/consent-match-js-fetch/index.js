// consent-match in JavaScript, as a Segment Source Insert Function is
// written for Segment: fetch the consent stored for the event's person from
// your own consent service, compare it with the event's
// context.consent.categoryPreferences, and throw new DropEvent('Consent
// mismatch') when they differ.
//
// This file runs unmodified in Segment and in insertfn. In insertfn the
// function's manifest must allow the service's URL:
//
//   fetch:
//     allow: ["https://consent.example.internal/v1/"]
//
// (examples/consent-match-js does the same check through insertfn's own
// consent store, with no HTTP call.)
//
// Settings:
//   consentServiceUrl  the service's base URL, e.g.
//                      https://consent.example.internal/v1/
//   apiKey             the service's key, sent as HTTP Basic user name
//
// The service answers GET {consentServiceUrl}consent/{id}?source=segment
// with {"categoryPreferences": {"Advertising": false, ...}}, or 404 when
// it has no record for the person.

async function onTrack(event, settings) {
  return checkConsent(event, settings);
}

async function onIdentify(event, settings) {
  return checkConsent(event, settings);
}

async function onPage(event, settings) {
  return checkConsent(event, settings);
}

async function onScreen(event, settings) {
  return checkConsent(event, settings);
}

async function onGroup(event, settings) {
  return checkConsent(event, settings);
}

async function checkConsent(event, settings) {
  const eventPrefs = event.context && event.context.consent && event.context.consent.categoryPreferences;
  if (!eventPrefs) {
    return event; // no consent on the event: destinations' own rules apply
  }
  const id = event.userId || event.anonymousId;
  if (!id) {
    throw new InvalidEventPayload('The event has neither userId nor anonymousId');
  }

  const url = new URL(`consent/${encodeURIComponent(id)}`, settings.consentServiceUrl);
  url.searchParams.set('source', 'segment');
  const headers = new Headers({
    Authorization: `Basic ${btoa(settings.apiKey + ':')}`,
    Accept: 'application/json',
  });

  let res;
  try {
    res = await fetch(url.toString(), { method: 'GET', headers });
  } catch (err) {
    // The service cannot be reached: let the event be retried.
    throw new RetryError(`Consent service unreachable: ${err.message}`);
  }
  if (res.status === 404) {
    return event; // no stored consent for this person
  }
  if (res.status >= 500 || res.status === 429) {
    throw new RetryError(`Consent service answered ${res.status}`);
  }
  if (!res.ok) {
    throw new Error(`Consent service answered ${res.status} ${res.statusText}`);
  }

  const stored = await res.json();
  const storedPrefs = stored.categoryPreferences || {};
  for (const category of Object.keys(storedPrefs)) {
    if (category in eventPrefs && eventPrefs[category] !== storedPrefs[category]) {
      console.log(`${id}: ${category} is ${eventPrefs[category]} in the event, ${storedPrefs[category]} stored`);
      throw new DropEvent('Consent mismatch');
    }
  }
  return event;
}
