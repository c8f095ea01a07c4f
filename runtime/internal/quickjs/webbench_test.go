package quickjs

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/runtime/internal/webfetch"
	"github.com/insertfn/insertfn/sdk/abi"
)

// cannedFetcher answers every request with the same small JSON response,
// as a consent service does, without a network.
type cannedFetcher struct{ resp webfetch.Response }

func (f *cannedFetcher) Fetch(r *webfetch.Request) (*webfetch.Response, error) {
	resp := f.resp
	resp.URL = r.URL
	return &resp, nil
}

func newCannedFetcher() *cannedFetcher {
	body := `{"categoryPreferences":{"Advertising":false,"Analytics":true}}`
	return &cannedFetcher{resp: webfetch.Response{Status: 200, StatusText: "OK", Header: [][2]string{
		{"content-type", "application/json"}, {"date", "Sun, 07 Dec 2025 20:00:00 GMT"}, {"content-length", "62"}},
		Body: []byte(body)}}
}

// webPieces are the parts of a Segment function's fetch of its consent
// service (examples/consent-match-js-fetch), each done webPieceRuns times
// (RUNS) per event, so that the event's own cost weighs little in
// ns/piece. fetch asks for the same URL with the same Headers each time;
// res.json's cost is fetch-json's less fetch's.
const webPieceRuns = 10

var webPieces = []struct{ name, code string }{
	{"empty", ``},
	{"url", `for (let i = 0; i < RUNS; i++) {
  const url = new URL(` + "`consent/${encodeURIComponent(id)}`" + `, settings.consentServiceUrl);
  url.searchParams.set("source", "segment");
  if (url.toString().length === 0) throw new Error("no");
}`},
	{"url-https-path", `for (let i = 0; i < RUNS; i++) {
  const url = new URL("/v1/consent/" + encodeURIComponent(id), settings.httpsBase);
  url.searchParams.set("source", "segment");
  if (url.href.length === 0) throw new Error("no");
}`},
	{"headers", `for (let i = 0; i < RUNS; i++) {
  const h = new Headers({ Authorization: ` + "`Basic ${btoa(settings.apiKey + ':')}`" + `, Accept: "application/json" });
  if (h === null) throw new Error("no");
}`},
	{"fetch", `for (let i = 0; i < RUNS; i++) {
  const res = await fetch(fixedURL, { method: "GET", headers: fixedHeaders });
  if (res.status !== 200 || !res.ok) throw new Error("no");
}`},
	{"fetch-json", `for (let i = 0; i < RUNS; i++) {
  const res = await fetch(fixedURL, { method: "GET", headers: fixedHeaders });
  if (res.status !== 200 || !res.ok) throw new Error("no");
  const stored = await res.json();
  if (!stored.categoryPreferences) throw new Error("no");
}`},
	{"fetch-headers-get", `for (let i = 0; i < RUNS; i++) {
  const res = await fetch(fixedURL, { method: "GET", headers: fixedHeaders });
  if (res.headers.get("content-type") !== "application/json") throw new Error("no");
}`},
}

// BenchmarkWebPieces is each piece of the consent function's fetch path
// (ns/piece), beside an empty async handler's per-event cost.
func BenchmarkWebPieces(b *testing.B) {
	for _, p := range webPieces {
		b.Run(p.name, func(b *testing.B) {
			inst := load(b, `let fixedURL, fixedHeaders;
async function onTrack(event, settings) {
  const id = event.userId;
  if (fixedURL === undefined) {
    fixedURL = settings.consentServiceUrl + "consent/u1?source=segment";
    fixedHeaders = new Headers({ Authorization: "Basic " + btoa(settings.apiKey + ":"), Accept: "application/json" });
  }
`+strings.ReplaceAll(p.code, "RUNS", strconv.Itoa(webPieceRuns))+`
  return event;
}`, `{"consentServiceUrl":"http://127.0.0.1:40123/v1/","httpsBase":"https://consent.example.com/","apiKey":"k-123"}`)
			inst.SetFetcher(newCannedFetcher())
			event := []byte(`{"type":"track","userId":"u1"}`)
			b.ReportAllocs()
			for b.Loop() {
				if res, err := inst.Handle(b.Context(), event); err != nil || res.Verdict != abi.ResultDeliver {
					b.Fatalf("%v %v %s", res.Verdict, err, res.Reason)
				}
			}
			if p.code != "" {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/webPieceRuns, "ns/piece")
			}
		})
	}
}

// BenchmarkWebConsentFetch is examples/consent-match-js-fetch's function,
// per event, with a canned answer instead of a service: the engine's
// share of BenchmarkFetchPath. Its floor is the same function with
// trivial stand-ins for URL, Headers, btoa and fetch: what the event and
// the handler cost without web.js.
func BenchmarkWebConsentFetch(b *testing.B) {
	code, err := os.ReadFile("../../../examples/consent-match-js-fetch/index.js")
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct{ name, prefix string }{
		{"web", ""},
		{"floor", `const URL = class { constructor(path, base) { this.searchParams = { set() {} } } toString() { return "" } };
const Headers = class { constructor(init) {} };
const btoa = (s) => s;
const fetch = async () => ({ status: 200, ok: true, statusText: "OK", json: async () => JSON.parse('{"categoryPreferences":{"Advertising":false,"Analytics":true}}') });
`},
	} {
		b.Run(v.name, func(b *testing.B) {
			inst := load(b, v.prefix+string(code), `{"consentServiceUrl":"http://127.0.0.1:40123/v1/","apiKey":"k-123"}`)
			inst.SetFetcher(newCannedFetcher())
			event := []byte(`{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true}}}}`)
			b.ReportAllocs()
			for b.Loop() {
				if res, err := inst.Handle(b.Context(), event); err != nil || res.Verdict != abi.ResultDeliver {
					b.Fatalf("%v %v %s", res.Verdict, err, res.Reason)
				}
			}
		})
	}
}
