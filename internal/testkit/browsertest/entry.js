// The browser bundle's entry: Segment's analytics.js (@segment/analytics-next)
// behind Segment's consent wrapper (@segment/analytics-consent-tools), both
// unmodified, with a fake consent platform, driven through a fixed scenario
// against the server the page's query names. esbuild bundles this file into
// bin/browsertest/bundle.js (make browser-bundle); page.html loads it.
//
// Query parameters (all required):
//   api     the server's address, host:port (the library is given host:port/v1)
//   key     the source's write key
//   mode    "standard" (one request per event) or "batching"
//   user    the userId the page identifies
//   before  the consent platform's categories at load, JSON {"Name": bool}
//   after   the categories the person then chooses, JSON
//
// Scenario:
//   1. identify, track "Product Viewed", page: stamped with `before`.
//   2. the person chooses `after` in the consent platform: the wrapper
//      sends track "Segment Consent Preference Updated".
//   3. track "Order Completed", page, group: stamped with `after`. In
//      standard mode the page first waits for step 2's answer (requests of
//      their own would otherwise race it); in batching mode they share a
//      batch with it, as a person's next click would.
//   4. the platform's state goes back to `before` without telling the
//      wrapper (another tab's stale choice): track "Stale Consent",
//      stamped against what the person chose.
//
// The page sees every request the library makes through a wrapper around
// window.fetch installed before analytics.js loads (page.html), and writes
// its account into <pre id="result"> as JSON after each answer:
// {"done": bool, "error": string, "requests": [{url, method, headers,
// body, status, error}], "calls": [names of the calls made]}.
import { AnalyticsBrowser } from '@segment/analytics-next'
import { createWrapper, resolveWhen } from '@segment/analytics-consent-tools'

const q = new URLSearchParams(location.search)
const param = (name) => {
  const v = q.get(name)
  if (v === null) throw new Error('page.html needs the query parameter ' + name)
  return v
}

const log = window.__requests // filled by page.html's fetch wrapper
const calls = []
let done = false
let failure = ''

function report() {
  document.getElementById('result').textContent = JSON.stringify({
    done,
    error: failure,
    requests: log,
    calls,
  })
}
window.__report = report

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// until waits for cond, checking every 20 ms of the page's clock (virtual
// time under --virtual-time-budget), at most limitMs.
async function until(what, cond, limitMs = 60000) {
  for (let waited = 0; !cond(); waited += 20) {
    if (waited > limitMs) throw new Error('timed out waiting for ' + what)
    await sleep(20)
  }
}

// answered counts the events carried by requests that got an answer, and
// by those that failed without one.
function answered() {
  let n = 0
  for (const r of log) {
    if (r.status === undefined && r.error === undefined) continue
    if (/\/m$/.test(r.url)) continue
    try {
      const body = JSON.parse(r.body)
      n += Array.isArray(body.batch) ? body.batch.length : 1
    } catch (e) {
      n += 1
    }
  }
  return n
}

// The fake consent platform: categories it holds, listeners it tells when
// the person chooses.
const cmp = {
  categories: JSON.parse(param('before')),
  listeners: [],
  consentedCategories() {
    return { ...this.categories }
  },
  onConsentChanged(fn) {
    this.listeners.push(fn)
  },
  choose(categories) {
    this.categories = { ...categories }
    for (const fn of this.listeners) fn({ detail: { ...categories } })
  },
}

const withCMP = createWrapper({
  shouldLoadWrapper: async () => {
    await resolveWhen(() => window.CMP !== undefined, 50)
  },
  shouldLoadSegment: async (ctx) => ctx.load({ consentModel: 'opt-in' }),
  getCategories: () => window.CMP.consentedCategories(),
  registerOnConsentChanged: (setCategories) => {
    window.CMP.onConsentChanged((event) => setCategories(event.detail))
  },
})

async function main() {
  const api = param('api') + '/v1'
  const writeKey = param('key')
  const mode = param('mode')
  const userId = param('user')
  const after = JSON.parse(param('after'))
  const categories = Object.keys({ ...cmp.categories, ...after })

  const segmentio = {
    apiHost: api,
    protocol: 'http',
    deliveryStrategy:
      mode === 'batching'
        ? { strategy: 'batching', config: { size: 10, timeout: 300 } }
        : { strategy: 'standard', config: {} },
  }
  // What Segment's CDN would serve for a source with only the Segment.io
  // destination, given inline so that nothing is fetched from the CDN.
  const cdnSettings = {
    integrations: {
      'Segment.io': {
        apiKey: writeKey,
        unbundledIntegrations: [],
        addBundledMetadata: true,
        maybeBundledConfigIds: {},
        versionSettings: { version: '4.4.7', componentTypes: ['browser'] },
        ...segmentio,
      },
    },
    plan: { track: { __default: { enabled: true, integrations: {} } } },
    analyticsNextEnabled: true,
    middlewareSettings: {},
    enabledMiddleware: {},
    metrics: { sampleRate: 1, flushTimer: 500, host: api },
    legacyVideoPluginsEnabled: false,
    remotePlugins: [],
    consentSettings: { allCategories: categories, hasUnmappedDestinations: true },
  }

  window.CMP = cmp
  const analytics = new AnalyticsBrowser()
  withCMP(analytics).load(
    { writeKey, cdnSettings },
    // The Segment.io settings again as load options: analytics.js reads the
    // metrics endpoint's protocol only from there.
    { integrations: { 'Segment.io': segmentio } }
  )

  const call = (name, p) => {
    calls.push(name)
    return p
  }
  // 1. with the consent the platform holds at load.
  await Promise.all([
    call('identify', analytics.identify(userId, { plan: 'pro', email: userId + '@example.com' })),
    call('track Product Viewed', analytics.track('Product Viewed', { sku: 'A-1', price: 12.5 })),
    call('page Shop/Product', analytics.page('Shop', 'Product', { path: '/shop/a-1' })),
  ])
  await until('the first events to be answered', () => answered() >= 3)

  // 2. the person changes their mind.
  calls.push('consent change')
  cmp.choose(after)
  if (mode !== 'batching') {
    await until('the consent change to be answered', () => answered() >= 4)
  }

  // 3. with the new consent.
  await Promise.all([
    call('track Order Completed', analytics.track('Order Completed', { orderId: 'o-1', revenue: 30 })),
    call('page Shop/Checkout', analytics.page('Shop', 'Checkout')),
    call('group', analytics.group('acme', { name: 'Acme' })),
  ])
  await until('the events after the consent change to be answered', () => answered() >= 7)

  // 4. stale consent from another tab, without a change notice.
  cmp.categories = JSON.parse(param('before'))
  await call('track Stale Consent', analytics.track('Stale Consent', { step: 4 }))
  await until('the stale event to be answered', () => answered() >= 8)

  // Let a metrics flush happen and the library settle (retries would show).
  await sleep(1500)
  await until('the requests in flight', () => log.every((r) => r.status !== undefined || r.error !== undefined))
}

main()
  .catch((e) => {
    failure = String((e && e.stack) || e)
  })
  .finally(() => {
    done = true
    report()
  })
