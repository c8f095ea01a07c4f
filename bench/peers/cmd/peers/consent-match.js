// consent-match in JavaScript, written like a Segment Source Insert
// Function: parse the event, look the user's stored consent up in a Map,
// compare it with event.context.consent.categoryPreferences and throw
// DropEvent when a category known to both differs.
//
// Usage: node consent-match.js EVENTS.ndjson CONSENT.ndjson ROUND_MS WARMUP_MS
//
// EVENTS.ndjson holds one raw event per line; CONSENT.ndjson one stored
// record per line ({"id": ..., "categoryPreferences": {...}}). After
// WARMUP_MS of passes over the events (so that V8 has optimised the code),
// it times whole passes for at least ROUND_MS and prints, as JSON,
// {"nsPerEvent": ..., "delivered": ..., "dropped": ...}: the time per event
// and the verdicts of one pass. Parsing each event's JSON is inside the
// timed loop, as every other implementation reads the raw bytes.
'use strict';

const fs = require('fs');

const [eventsFile, consentFile, roundMs, warmupMs] = process.argv.slice(2);
if (!eventsFile || !consentFile) {
  console.error('usage: node consent-match.js EVENTS.ndjson CONSENT.ndjson ROUND_MS WARMUP_MS');
  process.exit(2);
}

const events = fs.readFileSync(eventsFile, 'utf8').split('\n').filter((l) => l.length > 0);
const store = new Map();
for (const line of fs.readFileSync(consentFile, 'utf8').split('\n')) {
  if (line.length === 0) continue;
  const r = JSON.parse(line);
  store.set(r.id, r.categoryPreferences);
}

// Segment's error for a deliberate drop.
class DropEvent extends Error {}

// onEvent is the insert function: it returns the event to deliver or
// throws DropEvent.
function onEvent(event) {
  const id = event.userId || event.anonymousId;
  if (!id) return event;
  const stored = store.get(id);
  if (stored === undefined) return event; // no stored consent: pass
  const prefs = event.context && event.context.consent && event.context.consent.categoryPreferences;
  if (!prefs) return event;
  for (const k in prefs) {
    const s = stored[k];
    if (s !== undefined && s !== Boolean(prefs[k])) {
      throw new DropEvent('Consent mismatch');
    }
  }
  return event;
}

// pass runs every event once through JSON.parse and onEvent.
function pass() {
  let delivered = 0;
  let dropped = 0;
  for (let i = 0; i < events.length; i++) {
    try {
      onEvent(JSON.parse(events[i]));
      delivered++;
    } catch (e) {
      if (!(e instanceof DropEvent)) throw e;
      dropped++;
    }
  }
  return { delivered, dropped };
}

function run(ms) {
  const budget = BigInt(Math.max(0, Number(ms) || 0)) * 1000000n;
  const start = process.hrtime.bigint();
  let passes = 0;
  let first = null;
  let now = start;
  do {
    const c = pass();
    if (first === null) first = c;
    else if (c.delivered !== first.delivered || c.dropped !== first.dropped) {
      throw new Error('verdicts differ between passes');
    }
    passes++;
    now = process.hrtime.bigint();
  } while (now - start < budget);
  return { ns: Number(now - start), passes, counts: first };
}

run(warmupMs);
const r = run(roundMs);
process.stdout.write(JSON.stringify({
  nsPerEvent: r.ns / (r.passes * events.length),
  delivered: r.counts.delivered,
  dropped: r.counts.dropped,
}) + '\n');
