package quickjs

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/runtime/internal/webfetch"
	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/tidwall/gjson"
)

// webCase is JavaScript run in the engine, with web.js: code is the body
// of an async function, whose value, as JSON, must be want. err(f, msg)
// returns the name of the error f throws ("no error" if none; with msg,
// "name: message"), aerr(f) the name of the error of f's promise.
type webCase struct{ name, code, want string }

// webRunner evaluates each event's code (indirectly: in the global scope)
// and returns its value as the event's out.
const webRunner = `
function err(f, msg) { try { f(); return "no error" } catch (e) { return msg ? e.name + ": " + e.message : e.name } }
async function aerr(f) { try { await f(); return "no error" } catch (e) { return e.name } }
async function onTrack(event) {
  return { type: "track", out: await (0, eval)("(async () => {" + event.code + "\n})()") };
}`

// runWebCases runs the cases in one instance, one event each.
func runWebCases(t *testing.T, cases []webCase) {
	t.Helper()
	inst := load(t, webRunner, "")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := json.Marshal(map[string]string{"type": "track", "code": c.code})
			if err != nil {
				t.Fatal(err)
			}
			res := handle(t, inst, string(ev))
			if res.Verdict != abi.ResultDeliver {
				t.Fatalf("%v %s\ncode: %s", res.Verdict, res.Reason, c.code)
			}
			if got := gjson.GetBytes(res.Event, "out").Raw; got != c.want {
				t.Errorf("got  %s\nwant %s\ncode: %s", got, c.want, c.code)
			}
		})
	}
}

// The globals web.js adds are its API alone, not enumerable, and its
// install function is gone once the host called it.
func TestWebGlobals(t *testing.T) {
	inst := load(t, `function onTrack() {
  const added = ["URL", "URLSearchParams", "Headers", "Request", "Response", "fetch", "btoa", "atob",
    "AbortController", "AbortSignal", "TextEncoder", "TextDecoder", "DOMException"];
  return { type: "track", out: [
    added.filter(n => typeof globalThis[n] !== "function"),
    added.filter(n => Object.keys(globalThis).includes(n)),
    Object.getOwnPropertyNames(globalThis).filter(n => /^(__|web|encode$|decode$|parse$|serialize$)/.test(n)),
    typeof hostFetch, typeof INTERNAL,
  ] };
}`, "")
	res := handle(t, inst, `{"type":"track"}`)
	if got, want := gjson.GetBytes(res.Event, "out").Raw, `[[],[],[],"undefined","undefined"]`; got != want {
		t.Fatalf("got %s (%v %s), want %s", got, res.Verdict, res.Reason, want)
	}
}

// fakeFetcher answers an instance's fetch calls and keeps its requests.
type fakeFetcher struct {
	reqs   []*webfetch.Request
	answer func(r *webfetch.Request) (*webfetch.Response, error)
}

func (f *fakeFetcher) Fetch(r *webfetch.Request) (*webfetch.Response, error) {
	f.reqs = append(f.reqs, r)
	return f.answer(r)
}

// describeRequest writes a request as METHOD URL [headers] body "..." redirect R.
func describeRequest(r *webfetch.Request) string {
	h, _ := json.Marshal(r.Header)
	s := r.Method + " " + r.URL + " " + string(h)
	if r.Body != nil {
		s += " body " + strconv.Quote(string(r.Body))
	}
	if r.Redirect != "" {
		s += " redirect " + r.Redirect
	}
	return s
}

// consentFetch is a Segment function as its users write it: it asks a
// consent service with fetch and drops the event on a mismatch.
const consentFetch = `
async function onTrack(event, settings) {
  const url = new URL("/v1/consent", settings.endpoint);
  url.searchParams.set("userId", event.userId);
  const res = await fetch(url, { headers: { Authorization: "Basic " + btoa(settings.apiKey + ":") } });
  if (!res.ok) throw new RetryError("consent service: " + res.status + " " + res.statusText);
  const stored = await res.json();
  const prefs = event.context.consent.categoryPreferences;
  for (const k of Object.keys(stored.categories)) {
    if (prefs[k] !== stored.categories[k]) throw new DropEvent("Consent mismatch on " + k);
  }
  return event;
}`

func TestWebFetchConsent(t *testing.T) {
	f := &fakeFetcher{answer: func(r *webfetch.Request) (*webfetch.Response, error) {
		switch r.URL {
		case "https://consent.example/v1/consent?userId=u+1":
			return &webfetch.Response{Status: 200, StatusText: "OK", URL: r.URL, Header: [][2]string{{"content-type", "application/json"}},
				Body: []byte(`{"categories":{"Advertising":true,"Analytics":true}}`)}, nil
		case "https://consent.example/v1/consent?userId=u2":
			return &webfetch.Response{Status: 503, StatusText: "Service Unavailable", URL: r.URL}, nil
		}
		return nil, errors.New("unexpected URL " + r.URL)
	}}
	inst := load(t, consentFetch, `{"endpoint":"https://consent.example/base/","apiKey":"k3y"}`)
	inst.SetFetcher(f)
	res := handle(t, inst, `{"type":"track","userId":"u 1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}}}`)
	if res.Verdict != abi.ResultDrop || res.Reason != "Consent mismatch on Analytics" {
		t.Fatalf("got %v %q", res.Verdict, res.Reason)
	}
	if got, want := describeRequest(f.reqs[0]), `GET https://consent.example/v1/consent?userId=u+1 [["authorization","Basic azN5Og=="],["accept","*/*"]]`; got != want {
		t.Fatalf("request %s\nwant    %s", got, want)
	}
	res = handle(t, inst, `{"type":"track","userId":"u2","context":{"consent":{"categoryPreferences":{}}}}`)
	if res.Verdict != abi.ResultRetry || res.Reason != "consent service: 503 Service Unavailable" {
		t.Fatalf("got %v %q", res.Verdict, res.Reason)
	}
}

// TestWebFetch checks the requests fetch makes of its arguments and the
// responses it makes of the host's answers.
func TestWebFetch(t *testing.T) {
	f := &fakeFetcher{answer: func(r *webfetch.Request) (*webfetch.Response, error) {
		switch {
		case strings.Contains(r.URL, "/refused"):
			return nil, errors.New("dial tcp: connection refused")
		case strings.Contains(r.URL, "forbidden.example"):
			return nil, &webfetch.ForbiddenError{URL: r.URL, Reason: "not allowed"}
		case strings.Contains(r.URL, "/empty"):
			return &webfetch.Response{Status: 204, StatusText: "No Content", URL: r.URL}, nil
		case strings.Contains(r.URL, "/redirect"):
			return &webfetch.Response{Status: 302, StatusText: "Found", URL: r.URL, Header: [][2]string{{"location", "/elsewhere"}}}, nil
		}
		return &webfetch.Response{Status: 200, StatusText: "OK", URL: r.URL + "?after=redirect", Redirected: true,
			Header: [][2]string{{"content-type", "text/plain"}, {"set-cookie", "a=1"}, {"set-cookie", "b=2"}, {"x-n", "1"}, {"x-n", "2"}},
			Body:   []byte("line 1\nline 2 é\n")}, nil
	}}
	inst := load(t, webRunner, "")
	inst.SetFetcher(f)
	for _, c := range []struct {
		webCase
		req string // the request the host got (describeRequest); empty: none
	}{
		{webCase{"a GET and its response",
			`const r = await fetch("https://api.example/a/../b?q=1#frag"); return [r.status, r.statusText, r.ok, r.url, r.redirected, r.type, [...r.headers], r.headers.getSetCookie(), r.bodyUsed, await r.text(), r.bodyUsed, err(() => r.headers.set("a", "b"))]`,
			`[200,"OK",true,"https://api.example/b?q=1?after=redirect",true,"basic",[["content-type","text/plain"],["set-cookie","a=1"],["set-cookie","b=2"],["x-n","1, 2"]],["a=1","b=2"],false,"line 1\nline 2 é\n",true,"TypeError"]`},
			`GET https://api.example/b?q=1 [["accept","*/*"]]`},
		{webCase{"a POST of JSON",
			`const r = await fetch(new URL("https://api.example/p"), {method: "post", headers: [["Content-Type", "application/json"], ["X-Key", " k "]], body: JSON.stringify({a: "é"}), mode: "cors", credentials: "omit", cache: "no-store", keepalive: true}); return r.status`,
			`200`},
			`POST https://api.example/p [["content-type","application/json"],["x-key","k"],["accept","*/*"]] body "{\"a\":\"é\"}"`},
		{webCase{"a form body",
			`await fetch("https://api.example/form", {method: "PUT", body: new URLSearchParams({q: "a b", r: "+&"}), headers: new Headers({Accept: "application/json"})}); return 1`,
			`1`},
			`PUT https://api.example/form [["accept","application/json"],["content-type","application/x-www-form-urlencoded;charset=UTF-8"]] body "q=a+b&r=%2B%26"`},
		{webCase{"a binary body",
			`await fetch("https://api.example/bin", {method: "POST", body: new Uint8Array([0, 255, 10, 13]).buffer}); return 1`,
			`1`},
			`POST https://api.example/bin [["accept","*/*"]] body "\x00\xff\n\r"`},
		{webCase{"a Request, redirect manual",
			`const req = new Request("https://api.example/redirect", {method: "DELETE", redirect: "manual", headers: {a: "1"}}); const r = await fetch(req); return [r.status, r.headers.get("location"), r.redirected, await r.text()]`,
			`[302,"/elsewhere",false,""]`},
			`DELETE https://api.example/redirect [["a","1"],["accept","*/*"]] redirect manual`},
		{webCase{"an empty response",
			`const r = await fetch("https://api.example/empty", {redirect: "error"}); return [r.status, r.ok, await r.text(), r.bodyUsed]`,
			`[204,true,"",false]`},
			`GET https://api.example/empty [["accept","*/*"]] redirect error`},
		{webCase{"a network error rejects with a TypeError",
			`return fetch("https://api.example/refused").catch(e => e.name + ": " + e.message)`,
			`"TypeError: dial tcp: connection refused"`},
			`GET https://api.example/refused [["accept","*/*"]]`},
		{webCase{"a URL not allowed rejects with a TypeError",
			`return fetch("https://forbidden.example/").catch(e => e.name + ": " + e.message)`,
			`"TypeError: fetch https://forbidden.example/: not allowed: the function's fetch.allow setting lists the URL prefixes it may fetch"`},
			`GET https://forbidden.example/ [["accept","*/*"]]`},
		{webCase{"a relative URL rejects before the host",
			`return fetch("/relative").catch(e => e.name)`,
			`"TypeError"`}, ``},
		{webCase{"GET with a body rejects before the host",
			`return fetch("https://api.example/", {body: "x"}).catch(e => e.name)`,
			`"TypeError"`}, ``},
		{webCase{"an aborted signal rejects before the host",
			`return fetch("https://api.example/", {signal: AbortSignal.abort()}).catch(e => e.name)`,
			`"AbortError"`}, ``},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.reqs = nil
			ev, _ := json.Marshal(map[string]string{"type": "track", "code": c.code})
			res := handle(t, inst, string(ev))
			if got := gjson.GetBytes(res.Event, "out").Raw; res.Verdict != abi.ResultDeliver || got != c.want {
				t.Errorf("got  %v %s %s\nwant %s", res.Verdict, res.Reason, got, c.want)
			}
			var req string
			if len(f.reqs) > 0 {
				req = describeRequest(f.reqs[0])
			}
			if len(f.reqs) > 1 || req != c.req {
				t.Errorf("request %s (%d)\nwant    %s", req, len(f.reqs), c.req)
			}
		})
	}
}

// TestWebFetchWire checks what crosses between web.js and the host: a
// request's URL, headers and body as the Fetcher gets them, and a
// response's odd parts (empty lines, separators in values, characters
// that cannot cross) as JavaScript reads them.
func TestWebFetchWire(t *testing.T) {
	f := &fakeFetcher{answer: func(r *webfetch.Request) (*webfetch.Response, error) {
		switch {
		case strings.HasSuffix(r.URL, "/odd"):
			return &webfetch.Response{Status: 299, URL: "", Header: [][2]string{
				{"X-Upper", "a:b: c"}, {"x-empty", ""}, {"bad name", "dropped"}, {"", "dropped"}, {"x-crlf", "a\r\nb\x00c"},
				{"x-latin", "caf\xe9"}, {"x-utf8", "café ✓"}},
				Body: []byte("line\n\nafter an empty line\x00 \xff")}, nil
		case strings.HasSuffix(r.URL, "/status"):
			return &webfetch.Response{Status: 404, StatusText: "Not\nFound \xff", URL: r.URL}, nil
		case strings.HasSuffix(r.URL, "/huge-status"):
			return &webfetch.Response{Status: 1000, URL: r.URL}, nil
		}
		return &webfetch.Response{Status: 200, StatusText: "OK", URL: r.URL, Body: []byte("ok")}, nil
	}}
	inst := load(t, webRunner, "")
	inst.SetFetcher(f)
	for _, c := range []struct {
		webCase
		req string
	}{
		{webCase{"a URL made against a base, its fragment left out",
			`const u = new URL("consent/a%40b?x=1#frag", "http://127.0.0.1:40123/v1/"); u.searchParams.set("source", "segment"); const r = await fetch(u.toString(), {method: "GET", headers: new Headers({Authorization: "Basic " + btoa("k:"), Accept: "application/json"})}); return [u.href, r.url]`,
			`["http://127.0.0.1:40123/v1/consent/a%40b?x=1&source=segment#frag","http://127.0.0.1:40123/v1/consent/a%40b?x=1&source=segment"]`},
			`GET http://127.0.0.1:40123/v1/consent/a%40b?x=1&source=segment [["authorization","Basic azo="],["accept","application/json"]]`},
		{webCase{"a URL object, and values with colons or empty",
			`await fetch(new URL("https://h/a b"), {headers: [["X-A", "b:c: d"], ["X-Empty", ""], ["x-latin", "caf\u00e9"]]}); return 1`,
			`1`},
			`GET https://h/a%20b [["x-a","b:c: d"],["x-empty",""],["x-latin","café"],["accept","*/*"]]`},
		{webCase{"a body with NUL goes as bytes",
			`await fetch("https://h/nul", {method: "POST", body: "a\u0000b\né"}); return 1`,
			`1`},
			`POST https://h/nul [["content-type","text/plain;charset=UTF-8"],["accept","*/*"]] body "a\x00b\né"`},
		{webCase{"an empty body is a body",
			`await fetch("https://h/empty-body", {method: "PUT", body: "", headers: {"content-type": "x/y"}}); return 1`,
			`1`},
			`PUT https://h/empty-body [["content-type","x/y"],["accept","*/*"]] body ""`},
		{webCase{"the headers given are not changed by the body's type",
			`const h = new Headers({a: "1"}); await fetch("https://h/p", {method: "POST", headers: h, body: new URLSearchParams("q=1")}); return [...h]`,
			`[["a","1"]]`},
			`POST https://h/p [["a","1"],["content-type","application/x-www-form-urlencoded;charset=UTF-8"],["accept","*/*"]] body "q=1"`},
		{webCase{"credentials in the URL reject before the host",
			`return Promise.all([fetch("https://u:p@h/").catch(e => e.name), fetch(new URL("https://u@h/x")).catch(e => e.name), fetch(new URL("x", "https://u:p@h/")).catch(e => e.name), fetch(undefined).catch(e => e.name), fetch().catch(e => e.name)])`,
			`["TypeError","TypeError","TypeError","TypeError","TypeError"]`}, ``},
		{webCase{"an odd response",
			`const r = await fetch("https://h/odd"); const c = r.clone(); return [r.status, r.ok, r.statusText, r.url, [...r.headers], c.headers.get("x-upper"), await r.text()]`,
			`[299,true,"","",[["x-crlf","a  b c"],["x-empty",""],["x-latin","caf�"],["x-upper","a:b: c"],["x-utf8","café ✓"]],"a:b: c","line\n\nafter an empty line� �"]`},
			`GET https://h/odd [["accept","*/*"]]`},
		{webCase{"a status text that cannot cross as it is",
			`const r = await fetch("https://h/status"); return [r.status, r.ok, r.statusText, r.url, [...r.headers], await r.text()]`,
			`[404,false,"Not Found �","https://h/status",[],""]`},
			`GET https://h/status [["accept","*/*"]]`},
		{webCase{"a status past three digits rejects",
			`return fetch("https://h/huge-status").catch(e => e.name + ": " + e.message)`,
			`"TypeError: the response's status 1000 is not three digits"`},
			`GET https://h/huge-status [["accept","*/*"]]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.reqs = nil
			ev, _ := json.Marshal(map[string]string{"type": "track", "code": c.code})
			res := handle(t, inst, string(ev))
			if got := gjson.GetBytes(res.Event, "out").Raw; res.Verdict != abi.ResultDeliver || got != c.want {
				t.Errorf("got  %v %s %s\nwant %s", res.Verdict, res.Reason, got, c.want)
			}
			var req string
			if len(f.reqs) > 0 {
				req = describeRequest(f.reqs[0])
			}
			if len(f.reqs) > 1 || req != c.req {
				t.Errorf("request %s (%d)\nwant    %s", req, len(f.reqs), c.req)
			}
		})
	}
}

// TestFetchRequestFormat checks parseFetchRequest on what web.js writes
// and on what it never writes.
func TestFetchRequestFormat(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"GET\nhttps://h/\n\n\n", `GET https://h/ null`},
		{"POST\nhttps://h/p?q\nmanual\na:b:c\nx-e:\n\ntline 1\n\nline 3", `POST https://h/p?q [["a","b:c"],["x-e",""]] body "line 1\n\nline 3" redirect manual`},
		{"PUT\nhttps://h/\nerror\n\nbAP8K", `PUT https://h/ null body "\x00\xff\n" redirect error`},
		{"PUT\nhttps://h/\n\n\nt", `PUT https://h/ null body ""`},
		{"GET\nhttps://h/", `error: it ends before its headers`},
		{"GET\nhttps://h/\n\na:b\n", `error: its headers do not end`},
		{"GET\nhttps://h/\n\nab\n\n", `error: the header line "ab" has no name`},
		{"GET\nhttps://h/\n\n:b\n\n", `error: the header line ":b" has no name`},
		{"GET\nhttps://h/\n\n\nb@@", `error: its body is not base64: illegal base64 data at input byte 0`},
		{"GET\nhttps://h/\n\n\nxyz", `error: its body starts with 'x'`},
	} {
		r, err := parseFetchRequest([]byte(c.in))
		got := ""
		if err != nil {
			got = "error: " + err.Error()
		} else {
			got = describeRequest(r)
		}
		if got != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

// TestFetchResponseFormat checks writeFetchResponse's lines.
func TestFetchResponseFormat(t *testing.T) {
	for _, c := range []struct {
		resp webfetch.Response
		want string
	}{
		{webfetch.Response{Status: 200, StatusText: "OK", URL: "https://h/", Header: [][2]string{{"content-type", "application/json"}}, Body: []byte(`{"a":1}`)},
			"02000OK\nhttps://h/\ncontent-type:application/json\n\n{\"a\":1}"},
		{webfetch.Response{Status: 7, URL: "https://h/x", Redirected: true},
			"00071\nhttps://h/x\n\n"},
		{webfetch.Response{Status: 500, StatusText: "a\rb\nc\x00d\xffe", URL: "u\nv", Header: [][2]string{{"X-Y", "v\n"}, {"a b", "c"}, {"", "d"}, {"é", "e"}, {"k", "\xe9\x00"}},
			Body: []byte("x\x00\xffy")},
			"05000a b c d\ufffde\nu v\nx-y:v \nk:\ufffd \n\nx\ufffd\ufffdy"},
	} {
		if got := writeFetchResponse(&c.resp); got != c.want {
			t.Errorf("%+v:\n got %q\nwant %q", c.resp, got, c.want)
		}
	}
}

// Without a Fetcher, fetch rejects: the function may fetch nothing.
func TestWebFetchWithoutFetcher(t *testing.T) {
	inst := load(t, `async function onTrack(e) { return { type: "track", out: await fetch("https://api.example/").then(() => "fetched", e => e.name) } }`, "")
	res := handle(t, inst, `{"type":"track"}`)
	if got := gjson.GetBytes(res.Event, "out").Raw; got != `"TypeError"` {
		t.Fatalf("got %v %q %s", res.Verdict, res.Reason, got)
	}
}

// BenchmarkWebURLAndHeaders is what a function may do per event before a
// fetch: a URL with a query parameter, headers, basic authentication.
func BenchmarkWebURLAndHeaders(b *testing.B) {
	inst := load(b, `function onTrack(event, settings) {
  const url = new URL("/v1/consent/" + encodeURIComponent(event.userId), settings.endpoint);
  url.searchParams.set("fields", "categories,purposes");
  const h = new Headers({ Authorization: "Basic " + btoa(settings.apiKey + ":"), "Content-Type": "application/json" });
  if (url.href.length === 0 || !h.has("authorization")) throw new Error("no");
}`, `{"endpoint":"https://consent.example/","apiKey":"k3y"}`)
	event := []byte(`{"type":"track","userId":"user-1"}`)
	b.ReportAllocs()
	for b.Loop() {
		if res, err := inst.Handle(b.Context(), event); err != nil || res.Verdict != abi.ResultDeliver {
			b.Fatalf("%v %v %s", res.Verdict, err, res.Reason)
		}
	}
}

// TestWebURL checks URL: parsing (fast path and full parser), resolution against a base, hosts, percent-encoding, setters and the link with searchParams.
func TestWebURL(t *testing.T) {
	runWebCases(t, []webCase{
		{"absolute",
			`const u = new URL("https://user:pw@API.Example.com:8443/a/./b/../c%2fd?x=1&y=%20#frag"); return [u.href, u.origin, u.protocol, u.username, u.password, u.host, u.hostname, u.port, u.pathname, u.search, u.hash]`,
			`["https://user:pw@api.example.com:8443/a/c%2fd?x=1&y=%20#frag","https://api.example.com:8443","https:","user","pw","api.example.com:8443","api.example.com","8443","/a/c%2fd","?x=1&y=%20","#frag"]`},
		{"default ports elided",
			`return [new URL("http://h:80/").href, new URL("https://h:443/").host, new URL("https://h:80/").port, new URL("ws://h:80").href, new URL("http://h:0080/x").href]`,
			`["http://h/","h","80","ws://h/","http://h/x"]`},
		{"relative to a base",
			`const b = "https://api.example.com/a/b?q=1#h"; return ["/v1/x?y=1", "../", "./c", "c", "?q", "#h", "//host/p", "", "..", "../../../x", "https://other/z"].map(r => new URL(r, b).href)`,
			`["https://api.example.com/v1/x?y=1","https://api.example.com/","https://api.example.com/a/c","https://api.example.com/a/c","https://api.example.com/a/b?q","https://api.example.com/a/b?q=1#h","https://host/p","https://api.example.com/a/b?q=1","https://api.example.com/","https://api.example.com/x","https://other/z"]`},
		{"base as a URL object",
			`return new URL("x", new URL("http://h/a/b")).href`,
			`"http://h/a/x"`},
		{"path percent-encoding",
			"return new URL(\"https://h/a b/ü/\\\"<>`{}^|/%41/x?y\").pathname",
			`"/a%20b/%C3%BC/%22%3C%3E%60%7B%7D%5E|/%41/x"`},
		{"backslashes in special URLs",
			`return [new URL("https:\\\\h\\a\\b").href, new URL("foo://h/a\\b").pathname]`,
			`["https://h/a/b","/a\\b"]`},
		{"dot segments",
			`return ["/a/b/../../..", "/a/%2e%2E/b", "/a/.%2e/b/.", "/a/..%2f"].map(p => new URL(p, "http://h").pathname)`,
			`["/","/b","/b/","/a/..%2f"]`},
		{"query and fragment encoding",
			"const u = new URL(\"https://h/?a='b c'&d=\\\"é\\\"#x y`z\"); return [u.search, u.hash, new URL(\"foo://h/?'\").search]",
			`["?a=%27b%20c%27&d=%22%C3%A9%22","#x%20y%60z","?'"]`},
		{"hosts",
			`return ["http://EXAMPLE.com.", "http://Bücher.example", "http://xn--bcher-kva.example", "http://0x7f.1/", "http://127.1", "http://3232235777", "http://[0:0:0:0:0:ffff:7f00:1]", "http://[::1]:8080", "http://[1:0:0:2::3:0]", "http://%41.com", "http://１２７.0.0.1", "foo://Ex%41mple/"].map(s => new URL(s).host)`,
			`["example.com.","xn--bcher-kva.example","xn--bcher-kva.example","127.0.0.1","127.0.0.1","192.168.1.1","[::ffff:7f00:1]","[::1]:8080","[1::2:0:0:3:0]","a.com","127.0.0.1","Ex%41mple"]`},
		{"non-special URLs",
			`const u = new URL("mailto:Someone@Example.com?subject=hi"); const d = new URL("data:text/plain,a b"); return [u.pathname, u.search, u.origin, u.host, d.pathname, new URL("foo://u@H:99/p").host, new URL("blob:https://h:8/uuid").origin]`,
			`["Someone@Example.com","?subject=hi","null","","text/plain,a b","H:99","https://h:8"]`},
		{"file URLs",
			`return [new URL("file:///C:/a/../../b").href, new URL("file://localhost/etc").href, new URL("file:c|/x").href, new URL("../y", "file:///C:/a/b").href]`,
			`["file:///C:/b","file:///etc","file:///c:/x","file:///C:/y"]`},
		{"whitespace and controls",
			`return [new URL("  \t https://h/a\nb\r \u0000").href, new URL("http://h/\u0001").pathname]`,
			`["https://h/ab","/"]`},
		{"fast and full parsers agree",
			`return ["HTTPS://Api.Example.COM:443/a//b?x=1#y", "wss://h:0443/", "http://h:65536/", "http://1.2.3.4:80/x", "http://h/a/./b", "http://h/a b", "http://h/%7e?%7e#%7e", "ftp://h:21", "http://h?q", "HTTP://h#f"].map(s => URL.canParse(s) ? new URL(s).href : "invalid").concat(["/a//b?c#d", "/", "//x/y", "/./a", "/a?b c"].map(s => new URL(s, "https://u:p@H:8080/base?q#f").href))`,
			`["https://api.example.com/a//b?x=1#y","wss://h/","invalid","http://1.2.3.4/x","http://h/a/b","http://h/a%20b","http://h/%7e?%7e#%7e","ftp://h/","http://h/?q","http://h/#f","https://u:p@h:8080/a//b?c#d","https://u:p@h:8080/","https://x/y","https://u:p@h:8080/a","https://u:p@h:8080/a?b%20c"]`},
		{"invalid URLs throw a TypeError",
			`return ["", "not a url", "/relative", "http://", "https://h:99999", "http://a b/", "http://[::1", "http://1.2.3.256", "http://h:x/", "http://xn--/", "http://%zz/", "http://a\u0000b/"].map(s => err(() => new URL(s)))`,
			`["TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError"]`},
		{"an undefined URL",
			`return [err(() => new URL()), err(() => new URL(undefined)), new URL(undefined, "http://h/a/").href, err(() => new Request()), err(() => new Request(undefined))]`,
			`["TypeError","TypeError","http://h/a/undefined","TypeError","TypeError"]`},
		{"the error names the input",
			`return err(() => new URL("/x"), true)`,
			`"TypeError: Invalid URL: \"/x\""`},
		{"an invalid base",
			`return [err(() => new URL("/x", "nope")), err(() => new URL("x", "mailto:a"))]`,
			`["TypeError","TypeError"]`},
		{"canParse and parse",
			`return [URL.canParse("https://h"), URL.canParse("/x"), URL.canParse("/x", "https://h"), URL.parse("/x", "https://h").href, URL.parse("nope")]`,
			`[true,false,true,"https://h/x",null]`},
		{"toString, toJSON and String",
			`const u = new URL("https://h/p?q"); return [String(u), u.toString(), JSON.stringify({u}), u + "", Object.prototype.toString.call(u)]`,
			`["https://h/p?q","https://h/p?q","{\"u\":\"https://h/p?q\"}","https://h/p?q","[object URL]"]`},
		{"setters",
			`const u = new URL("https://h/p?q#f"); u.protocol = "http"; u.username = "a b"; u.password = "p@ss"; u.hostname = "Example.ORG"; u.port = "8080"; u.pathname = "x y/../z"; u.search = "k=v w"; u.hash = "frag ment"; const r = [u.href]; u.host = "other:81"; r.push(u.href); u.port = ""; u.search = ""; u.hash = ""; r.push(u.href); u.href = "https://new/"; r.push(u.href); return r`,
			`["http://a%20b:p%40ss@example.org:8080/z?k=v%20w#frag%20ment","http://a%20b:p%40ss@other:81/z?k=v%20w#frag%20ment","http://a%20b:p%40ss@other/z","https://new/"]`},
		{"setters that do nothing",
			`const u = new URL("https://h:8/p"); u.protocol = "foo"; u.port = "99999"; u.port = "x"; u.hostname = ""; u.host = "a:b:c"; const m = new URL("mailto:x"); m.host = "h"; m.pathname = "y"; m.username = "u"; return [u.href, m.href]`,
			`["https://a:8/p","mailto:x"]`},
		{"port setter takes the leading digits",
			`const u = new URL("https://h/"); u.port = "12ab"; return u.port`,
			`"12"`},
		{"href setter throws on an invalid URL",
			`const u = new URL("https://h/"); return [err(() => { u.href = "/relative" }), u.href]`,
			`["TypeError","https://h/"]`},
		{"searchParams follow search",
			`const u = new URL("https://h/p?a=1&b=2#f"); const s = u.searchParams; const r = [s.get("a"), s === u.searchParams]; u.search = "?x=%20y+z"; r.push(s.get("x"), s.has("a")); u.href = "https://h/?k=v"; r.push(s.get("k")); u.search = ""; r.push(s.size); return r`,
			`["1",true," y z",false,"v",0]`},
		{"search follows searchParams",
			`const u = new URL("https://h/p?a=1#f"); u.searchParams.append("q", "ü & +"); const r = [u.href]; u.searchParams.delete("a"); u.searchParams.delete("q"); r.push(u.href, u.search); u.searchParams.set("z", "1"); u.searchParams.sort(); r.push(u.href); return r`,
			`["https://h/p?a=1&q=%C3%BC+%26+%2B#f","https://h/p#f","","https://h/p?z=1#f"]`},
	})
}

// withWebInternals loads an instance whose web.js also defines
// globalThis.__t, an object of the names given (expose, "a, b: expr"), and
// makes it load web.js.
func withWebInternals(t *testing.T, code, expose string) *Instance {
	t.Helper()
	orig := web
	i := strings.LastIndex(web, "})(globalThis);")
	web = web[:i] + "g.__t = {" + expose + "};\n" + web[i:]
	defer func() { web = orig }()
	inst := load(t, code, "")
	handle(t, inst, `{"type":"identify"}`) // evaluates web.js (onIdentify touches URL)
	return inst
}

// TestWebURLFastPaths compares the URLs the fast paths make (a URL as the
// serializer writes it, a path against a cached base) with the URL
// standard's parser's, for URLs on both sides of each of their checks.
func TestWebURLFastPaths(t *testing.T) {
	inst := withWebInternals(t, `function onIdentify() { URL; return null }
async function onTrack(event) {
  const T = globalThis.__t;
  // slow is the parser's state machine alone, without the fast paths.
  function slow(input, base) {
    input = input.replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, "");
    let b = null;
    if (base !== undefined) {
      b = T.parse(base.replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, ""), null, new T.Rec(), 0);
      if (b === null) return "invalid";
    }
    const u = T.parse(input, b, new T.Rec(), 0);
    return u === null ? "invalid" : T.serialize(u, false);
  }
  function fast(input, base) {
    try { return new URL(input, base).href } catch (e) { return "invalid" }
  }
  // materialized reads a part, which makes the URL's record of its text.
  function materialized(input, base) {
    try { const u = new URL(input, base); u.pathname; return u.href } catch (e) { return "invalid" }
  }
  const out = [];
  const check = (input, base) => {
    const want = slow(input, base);
    for (let round = 0; round < 2; round++) { // the second time with the caches warm
      const got = fast(input, base), got2 = materialized(input, base);
      if (got !== want || got2 !== want) out.push(JSON.stringify([input, base, got, got2, want]));
    }
  };
  for (const s of event.absolute) check(s, undefined);
  for (const b of event.bases) for (const s of event.relative) check(s, b);
  for (const s of event.absolute) check(s, event.bases[0]);
  return { type: "track", out };
}`, "parse, serialize, Rec")
	absolute := []string{
		"http://127.0.0.1:40123/v1/consent/u1?source=segment", "http://127.0.0.1/", "http://127.1/", "http://0x7f.0.0.1/",
		"http://127.000.0.1/", "http://127.0.0.01/", "http://1.2.3.4.5/", "http://256.0.0.1/", "http://4294967295/",
		"http://01.2.3.4/", "http://1.2.3.4./", "http://255.255.255.255/x", "https://h:443/", "https://h:0443/", "http://h:80/x", "http://h:8080/x",
		"https://H/x", "HTTPS://h/x", "Https://h/x", "https://h", "https://h?x", "https://h#x", "https://h?x=/y", "https://h#/x",
		"https://h/a/../b", "https://h/a/%2e%2E/b", "https://h/.well-known/x", "https://h/a/./", "https://h/a/.", "https://h/a/..",
		"https://h/a%2e/b", "https://h/a%2E%2E/b", "https://h/..%2f", "https://h/%2e/x", "https://h/%2e", "https://h/.%2e/x", "https://h/x?a=/../b#/./c",
		"https://h/a b", "https://h/a'b?c'd#e'f", "https://h/a\"b", "https://h/a<b>", "https://h/a\\b", "https://h/a^b",
		"https://h/a`b", "https://h/a{b}", "https://h/a|b?c|d#e|f", "https://h/é", "https://h/a\tb", "https://h/a\nb", "https://h/a\u0000b",
		"https://h/%zz", "https://h/a%20b?c%20d#e%20f", "https://h/a[b]?c[d]", "https://h/a?b^c{d}`e", "https://h/a#b^c{d}`e",
		"https://u:p@h/x", "https://u@h/x", "https://@h/x", "https://u:@h/x", "https://:p@h/x", "https://h:/x", "https://h:65535/x", "https://h:65536/x",
		"https://xn--bcher-kva.example/", "https://xn--zz/", "https://a'b/", "https://a\\b/c", "https://[::1]/x", "https://[::1]:8080/x",
		"https://[0:0::1]/x", "ws://h/x", "wss://h:443/x", "ws://h:443/x", "ftp://h:21/x", "file:///a/b", "file://h/a", "foo://h/a/../b", "foo://H/x",
		"mailto:x", "https://h/a?b#c?d", "https://h//x", "https:h/x", "https:/h/x", "https:///h/x", "https://h/a#b#c",
		"https://ex.com/a%2fb", "https://exa mple.com/", "https://ex%41mple.com/", "https://h/~user/!$&()*+,;=:@", "https://h/ x", "https://h/x ",
		" https://h/x", "https://h/\u007f", "https://h.example.com./x", "https://h..example/x", "https://-h/x", "https://h_x/y",
		"https://h:8080", "https://h:8080?q", "https://u:p@h", "https://h/?a='b'", "https://h/#'",
	}
	relative := []string{
		"consent/u1", "consent/a%40b.com", "consent/a@b.com", "/v1/x", "x", "./x", "../x", ".", "..", "%2e/x", "%2E%2e/x",
		"x/..", "x/./y", "x/%2e/y", "x?y", "x?y#z", "x#z", "?q", "#f", "", "//other/p", "/", "//", "a:b", "x:y/z", "x/y:z",
		"a b", "a'b", "x?a'b", "é", "x\\y", "\\x", "/\\x", "x%zz", "x/.hidden", ".hidden", "..hidden", "x?a=/./b", "x#/../",
		"x\ty", " x", "x ", "x^y", "x{y}", "x|y", "/x?y#z", "/x/../y", "/x/%2e%2e/y", "?", "#", "x/", "x//y", "/.", "/..",
	}
	bases := []string{
		"http://127.0.0.1:40123/v1/", "https://consent.example.com/", "https://h/a/b?q#f", "https://u:p@h:8080/base?q#f", "https://h",
		"foo://h/a/b", "mailto:x", "file:///C:/a/b", "http://[::1]/a/", "https://h/a/b/", "https://h/a%20b/c", "not a url", "HTTPS://H:443/A/",
	}
	ev, _ := json.Marshal(map[string]any{"type": "track", "absolute": absolute, "relative": relative, "bases": bases})
	res := handle(t, inst, string(ev))
	if res.Verdict != abi.ResultDeliver {
		t.Fatalf("%v %s", res.Verdict, res.Reason)
	}
	for _, d := range gjson.GetBytes(res.Event, "out").Array() {
		t.Errorf("[input, base, fast, fast then read, parser]: %s", d.Str)
	}
}

// TestWebURLSearchParams checks URLSearchParams: parsing, the form encoding, the methods, sort and iteration.
func TestWebURLSearchParams(t *testing.T) {
	runWebCases(t, []webCase{
		{"from a string",
			`const p = new URLSearchParams("?a=1&b=2&a=3&&c&=x&d=e=f"); return [...p]`,
			`[["a","1"],["b","2"],["a","3"],["c",""],["","x"],["d","e=f"]]`},
		{"decoding",
			`return [...new URLSearchParams("a+b=c+d&e=%20%2B%25&f=%zz%4&g=%C3%A9%E2%9C%93&h=%FF&i=é")]`,
			`[["a b","c d"],["e"," +%"],["f","%zz%4"],["g","é✓"],["h","�"],["i","é"]]`},
		{"from a record",
			`return new URLSearchParams({q: "a b&c=d", "ü": "✓", plus: "1+1", pct: "100%", n: 5, u: undefined}).toString()`,
			`"q=a+b%26c%3Dd&%C3%BC=%E2%9C%93&plus=1%2B1&pct=100%25&n=5&u=undefined"`},
		{"from pairs and from URLSearchParams",
			`const p = new URLSearchParams([["a", "1"], ["b", 2], ["a", "3"]]); return [p.getAll("a"), new URLSearchParams(p).toString(), new URLSearchParams(new Map([["m", "1"]])).toString()]`,
			`[["1","3"],"a=1&b=2&a=3","m=1"]`},
		{"a pair of three throws",
			`return [err(() => new URLSearchParams([["a", "b", "c"]])), err(() => new URLSearchParams(["ab"]))]`,
			`["TypeError","TypeError"]`},
		{"encoding",
			`return new URLSearchParams([["sp ace", "a+b"], ["pct", "%41"], ["amp&eq=", "?#/"], ["safe", "*-._"], ["other", "~!'()"], ["uni", "é✓😀"]]).toString()`,
			`"sp+ace=a%2Bb&pct=%2541&amp%26eq%3D=%3F%23%2F&safe=*-._&other=%7E%21%27%28%29&uni=%C3%A9%E2%9C%93%F0%9F%98%80"`},
		{"lone surrogates become U+FFFD",
			`return new URLSearchParams([["\uD800", "\uDC00x"]]).toString()`,
			`"%EF%BF%BD=%EF%BF%BDx"`},
		{"append, delete, get, getAll, has, set, size",
			`const p = new URLSearchParams("a=1&b=2&a=3&c=4"); p.append("d", "5"); p.delete("a", "3"); const r = [p.toString(), p.get("a"), p.get("x"), p.getAll("a"), p.has("b"), p.has("b", "9"), p.has("b", "2"), p.size]; p.set("a", "z"); p.append("a", "y"); p.set("a", "w"); p.delete("c"); r.push(p.toString()); return r`,
			`["a=1&b=2&c=4&d=5","1",null,["1"],true,false,true,4,"a=w&b=2&d=5"]`},
		{"sort is stable by code units",
			`const p = new URLSearchParams("z=1&a=2&z=0&b=3&a=1&\uD83D\uDE00=x&\uFB03=y&A=u"); p.sort(); return [...p.keys()].join(",") + " " + [...p.values()].join(",")`,
			`"A,a,a,b,z,z,😀,ﬃ u,2,1,3,1,0,x,y"`},
		{"iteration",
			`const p = new URLSearchParams("a=1&b=2&c=3"); const seen = []; p.forEach((v, k, o) => seen.push(k + v + (o === p))); const live = []; for (const [k] of p) { live.push(k); if (k === "a") p.delete("b"); } return [seen, [...p.keys()], [...p.values()], [...p.entries()], live, Object.prototype.toString.call(p.entries())]`,
			`[["a1true","b2true","c3true"],["a","c"],["1","3"],[["a","1"],["c","3"]],["a","c"],"[object URLSearchParams Iterator]"]`},
	})
}

// TestWebHeaders checks Headers: names without case, combined values, sorted iteration, validation.
func TestWebHeaders(t *testing.T) {
	runWebCases(t, []webCase{
		{"case-insensitive names",
			`const h = new Headers({"Content-Type": "application/json"}); h.set("X-Api-Key", "k"); return [h.get("content-type"), h.get("CONTENT-TYPE"), h.has("x-api-key"), h.get("nope"), [...h.keys()]]`,
			`["application/json","application/json",true,null,["content-type","x-api-key"]]`},
		{"append combines",
			`const h = new Headers(); h.append("Accept", "a"); h.append("accept", "b"); h.set("X", "1"); h.append("x", "2"); return [h.get("accept"), h.get("x")]`,
			`["a, b","1, 2"]`},
		{"iteration is sorted and combined",
			`const h = new Headers([["B", "1"], ["a", "2"], ["c", "3"], ["b", "4"], ["Set-Cookie", "s=1"], ["set-cookie", "t=2"]]); const f = []; h.forEach((v, k) => f.push(k + ":" + v)); return [[...h], f, [...h.values()], h.getSetCookie()]`,
			`[[["a","2"],["b","1, 4"],["c","3"],["set-cookie","s=1"],["set-cookie","t=2"]],["a:2","b:1, 4","c:3","set-cookie:s=1","set-cookie:t=2"],["2","1, 4","3","s=1","t=2"],["s=1","t=2"]]`},
		{"delete and set",
			`const h = new Headers([["a", "1"], ["A", "2"], ["b", "3"]]); h.delete("A"); h.set("b", "4"); return [...h]`,
			`[["b","4"]]`},
		{"values are trimmed",
			`const h = new Headers({a: " \t x y \r\n"}); return JSON.stringify(h.get("a"))`,
			`"\"x y\""`},
		{"invalid names and values throw a TypeError",
			`return ["", "a b", "a:b", "é", "x\n"].map(n => err(() => new Headers([[n, "v"]]))).concat(["a\nb", "a\u0000", "✓"].map(v => err(() => new Headers({x: v}))))`,
			`["TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError"]`},
		{"from Headers, pairs and records",
			`const a = new Headers({a: "1"}); return [new Headers(a).get("a"), new Headers([["b", "2"]]).get("b"), new Headers({c: 3}).get("c"), err(() => new Headers("x")), err(() => new Headers([["a"]]))]`,
			`["1","2","3","TypeError","TypeError"]`},
	})
}

// TestWebBase64 checks btoa and atob: HTML's base64, forgiving in atob.
func TestWebBase64(t *testing.T) {
	runWebCases(t, []webCase{
		{"btoa",
			`return [btoa(""), btoa("a"), btoa("ab"), btoa("abc"), btoa("é"), btoa("\u00ff\u0000"), btoa("user:pass")]`,
			`["","YQ==","YWI=","YWJj","6Q==","/wA=","dXNlcjpwYXNz"]`},
		{"btoa of a character past U+00FF",
			`try { btoa("✓") } catch (e) { return [e.name, e.code, e instanceof DOMException, e instanceof Error] }`,
			`["InvalidCharacterError",5,true,true]`},
		{"atob",
			`return [atob("dXNlcjpwYXNz"), atob("YQ"), atob("YWI"), atob("YQ=="), atob(" Y W\nJ j \t"), atob("6Q==").charCodeAt(0), atob("/+8=").length]`,
			`["user:pass","a","ab","a","abc",233,2]`},
		{"atob of invalid base64",
			`return ["Y", "YQ=", "YQ===", "YQ=a", "@@@@", "YWJj=", "é", "YQ\u00a0"].map(s => err(() => atob(s)))`,
			`["InvalidCharacterError","InvalidCharacterError","InvalidCharacterError","InvalidCharacterError","InvalidCharacterError","InvalidCharacterError","InvalidCharacterError","InvalidCharacterError"]`},
		{"round trip of all bytes",
			`let s = ""; for (let i = 0; i < 256; i++) s += String.fromCharCode(i); return atob(btoa(s)) === s`,
			`true`},
	})
}

// TestWebRequest checks Request: its URL, method and body rules, bodies read once.
func TestWebRequest(t *testing.T) {
	runWebCases(t, []webCase{
		{"properties",
			`const r = new Request("https://H/p?q#f", {method: "post", body: "b", headers: [["X-A", "1"]]}); return [r.url, r.method, r.headers.get("x-a"), r.headers.get("content-type"), r.redirect, r.bodyUsed, await r.text(), r.bodyUsed]`,
			`["https://h/p?q#f","POST","1","text/plain;charset=UTF-8","follow",false,"b",true]`},
		{"methods",
			`return ["get", "Post", "patch", "delete", "options", "head", "put", "CUSTOM"].map(m => new Request("http://h/", {method: m}).method).concat(["CONNECT", "trace", "a b"].map(m => err(() => new Request("http://h/", {method: m}))))`,
			`["GET","POST","patch","DELETE","OPTIONS","HEAD","PUT","CUSTOM","TypeError","TypeError","TypeError"]`},
		{"GET and HEAD cannot have a body",
			`return [err(() => new Request("http://h/", {body: "x"})), err(() => new Request("http://h/", {method: "HEAD", body: "x"}))]`,
			`["TypeError","TypeError"]`},
		{"the URL must be absolute",
			`return [err(() => new Request("/x")), new Request(new URL("http://h/a b")).url]`,
			`["TypeError","http://h/a%20b"]`},
		{"from a URL, copied",
			`const u = new URL("https://h/a?b"); const r = new Request(u); u.pathname = "/changed"; u.searchParams.set("b", "2"); return [r.url, u.href]`,
			`["https://h/a?b","https://h/changed?b=2"]`},
		{"from another request",
			`const a = new Request("http://h/a", {method: "POST", body: "x", headers: {a: "1"}}); const b = new Request(a, {headers: {b: "2"}}); return [b.url, b.method, b.headers.get("a"), b.headers.get("b"), a.bodyUsed, await b.text()]`,
			`["http://h/a","POST",null,"2",true,"x"]`},
		{"json and clone",
			`const a = new Request("http://h/", {method: "PUT", body: '{"k":[1]}'}); const c = a.clone(); return [await a.json(), await c.text(), await aerr(() => a.text())]`,
			`[{"k":[1]},"{\"k\":[1]}","TypeError"]`},
		{"bodies",
			`const u = new Request("http://h/", {method: "POST", body: new URLSearchParams({a: "1 2"})}); const b = new Request("http://h/", {method: "POST", body: new Uint8Array([104, 105])}); const o = new Request("http://h/", {method: "POST", body: {a: 1}}); return [u.headers.get("content-type"), await u.text(), b.headers.get("content-type"), await b.text(), await o.text()]`,
			`["application/x-www-form-urlencoded;charset=UTF-8","a=1+2",null,"hi","[object Object]"]`},
	})
}

// TestWebResponse checks Response: status, headers, bodies read once, the static methods.
func TestWebResponse(t *testing.T) {
	runWebCases(t, []webCase{
		{"properties",
			`const r = new Response('{"a":1}', {status: 201, statusText: "Created", headers: {"X-Y": "z"}}); return [r.status, r.ok, r.statusText, r.headers.get("content-type"), r.headers.get("x-y"), r.type, r.url, r.redirected, r.bodyUsed, await r.json(), r.bodyUsed]`,
			`[201,true,"Created","text/plain;charset=UTF-8","z","default","",false,false,{"a":1},true]`},
		{"reading twice",
			`const r = new Response("hi"); await r.text(); return [await aerr(() => r.text()), await aerr(() => r.json()), err(() => r.clone())]`,
			`["TypeError","TypeError","TypeError"]`},
		{"no body",
			`const r = new Response(); const n = new Response(null, {status: 204}); return [r.status, await r.text(), r.bodyUsed, await r.text(), r.headers.get("content-type"), n.status, n.ok]`,
			`[200,"",false,"",null,204,true]`},
		{"arrayBuffer and bytes",
			`const r = new Response("hé✓"); const c = r.clone(); const b = await r.arrayBuffer(); return [b instanceof ArrayBuffer, [...new Uint8Array(b)], [...await c.bytes()]]`,
			`[true,[104,195,169,226,156,147],[104,195,169,226,156,147]]`},
		{"status out of range",
			`return [199, 600, 0, 1000].map(s => err(() => new Response("x", {status: s}))).concat([err(() => new Response("x", {status: 204}))])`,
			`["RangeError","RangeError","RangeError","RangeError","TypeError"]`},
		{"Response.json",
			`const r = Response.json({a: [1, "x"]}, {status: 400, headers: {"X-E": "1"}}); return [r.status, r.ok, r.headers.get("content-type"), r.headers.get("x-e"), await r.text(), err(() => Response.json(undefined))]`,
			`[400,false,"application/json","1","{\"a\":[1,\"x\"]}","TypeError"]`},
		{"Response.error and redirect",
			`const e = Response.error(); const r = Response.redirect("https://x/y", 301); return [e.type, e.status, e.ok, r.status, r.headers.get("location"), err(() => r.headers.set("a", "b")), err(() => Response.redirect("https://x/", 200))]`,
			`["error",0,false,301,"https://x/y","TypeError","RangeError"]`},
		{"bodies",
			`const u = new Response(new URLSearchParams("a=1&b=é")); const b = new Response(new Uint8Array([0xEF, 0xBB, 0xBF, 104, 0xFF])); return [u.headers.get("content-type"), await u.text(), b.headers.get("content-type"), await b.text()]`,
			`["application/x-www-form-urlencoded;charset=UTF-8","a=1&b=%C3%A9",null,"h�"]`},
		{"json of invalid text rejects with a SyntaxError",
			`return aerr(() => new Response("{").json())`,
			`"SyntaxError"`},
	})
}

// TestWebTextEncoding checks TextEncoder and TextDecoder: UTF-8, invalid sequences as U+FFFD.
func TestWebTextEncoding(t *testing.T) {
	runWebCases(t, []webCase{
		{"TextEncoder",
			`return [...new TextEncoder().encode("aé✓😀\uD800")]`,
			`[97,195,169,226,156,147,240,159,152,128,239,191,189]`},
		{"TextDecoder",
			`return new TextDecoder().decode(new Uint8Array([0xEF,0xBB,0xBF,0x61,0xC3,0xA9,0xE2,0x9C,0x93,0xF0,0x9F,0x98,0x80,0xFF,0xC3,0x28,0xE0,0x80,0xED,0xA0,0x80,0xF4,0x90,0x80,0x80,0xC3]))`,
			`"aé✓😀��(����������"`},
		{"TextDecoder streaming and fatal",
			`const d = new TextDecoder(); return [d.decode(new Uint8Array([0xE2, 0x9C]), {stream: true}), d.decode(new Uint8Array([0x93, 0x61])), err(() => new TextDecoder("utf-8", {fatal: true}).decode(new Uint8Array([0xff]))), err(() => new TextDecoder("latin1"))]`,
			`["","✓a","TypeError","RangeError"]`},
	})
}

// TestWebAbort checks AbortController and AbortSignal.
func TestWebAbort(t *testing.T) {
	runWebCases(t, []webCase{
		{"AbortController",
			`const c = new AbortController(); const s = c.signal; let fired = 0; s.addEventListener("abort", () => fired++); s.onabort = () => fired++; const before = s.aborted; c.abort(); c.abort(); return [before, s.aborted, s.reason.name, fired, AbortSignal.abort("r").reason, err(() => s.throwIfAborted()), AbortSignal.timeout(10).aborted]`,
			`[false,true,"AbortError",2,"r","AbortError",false]`},
	})
}
