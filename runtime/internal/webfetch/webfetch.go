// Package webfetch does the HTTP requests of a function's fetch: only to the
// URL prefixes its configuration allows, with fasthttp, under a deadline
// (the event's time limit or the per-call timeout, whichever ends first)
// and a bound on the response's size.
//
// The allow-list is checked on the URL as the server will read it, not on
// the text the function wrote: the URL is parsed, its host lowercased and
// its default port dropped, and a path with dot segments (raw or
// percent-encoded), user information or a backslash is refused, so that
// "https://consent.internal.evil.example/", "https://x@consent.internal/"
// and "https://consent.internal/v1/../admin" (or ".../v1/%2e%2e%2fadmin")
// do not pass for "https://consent.internal/v1/". Every redirect's target is checked
// again.
package webfetch

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Request is one request of a function.
type Request struct {
	Method string
	URL    string
	Header [][2]string
	Body   []byte
	// Redirect is "follow" (or empty), "manual" (a redirect is the
	// response) or "error" (a redirect fails the request), as fetch's
	// redirect option.
	Redirect string
}

// Response is what a request got.
type Response struct {
	Status     int
	StatusText string
	// URL is the URL of the response: the request's, or the last
	// redirect's.
	URL        string
	Redirected bool
	// Header lists the response's header fields in the order received,
	// names lowercased.
	Header [][2]string
	Body   []byte
}

// Defaults of a Policy's zero fields.
const (
	DefaultTimeout          = 2 * time.Second
	DefaultMaxResponseBytes = 1 << 20
	DefaultMaxRequests      = 16
	// MaxRedirects is how many redirects one request follows, as
	// browsers do.
	MaxRedirects = 20
)

// Policy says where a function's requests may go and how much they may
// cost. The zero value allows nothing.
type Policy struct {
	// Allow lists the URL prefixes requests may go to: an absolute http
	// or https URL with a host and a path (default "/"), no user
	// information, query or fragment. A request's URL is allowed when its
	// scheme, host and port equal a prefix's and its path is the prefix's
	// path or lies below it ("https://consent.internal/v1/" allows
	// "https://consent.internal/v1/users/7"; "https://consent.internal/v1"
	// allows ".../v1" and ".../v1/...", not ".../v1x").
	Allow []string
	// Timeout bounds one request, redirects included (default
	// DefaultTimeout); the event's time limit bounds it too.
	Timeout time.Duration
	// MaxResponseBytes bounds a response's body (default
	// DefaultMaxResponseBytes); a larger one fails the request.
	MaxResponseBytes int
	// MaxRequests bounds the requests of one event (default
	// DefaultMaxRequests).
	MaxRequests int
}

// prefix is an allowed prefix, parsed.
type prefix struct {
	scheme, host, path string // host with its port when not the default
}

// Client does the requests of one function under its Policy. It is safe
// for concurrent use.
type Client struct {
	allow       []prefix
	timeout     time.Duration
	maxRequests int
	http        *fasthttp.Client
}

// ForbiddenError is the error of a request to a URL the Policy does not
// allow.
type ForbiddenError struct {
	URL    string // the URL as the function wrote it
	Reason string // why it is not allowed
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("fetch %s: %s: the function's fetch.allow setting lists the URL prefixes it may fetch", e.URL, e.Reason)
}

// NothingAllowed is the error of a request of a function whose policy
// allows no URL.
func NothingAllowed(url string) *ForbiddenError {
	return &ForbiddenError{URL: url, Reason: "the function may not fetch anything"}
}

// ErrEventTimeLimit is the error of a request the event's time limit
// ended (rather than Policy.Timeout): the event itself has timed out.
var ErrEventTimeLimit = errors.New("the event's time limit ended the request")

// ErrTooManyRequests is the error of a request past Policy.MaxRequests in
// one event.
var ErrTooManyRequests = errors.New("too many fetch calls for one event (fetch.max_requests)")

// SettingError is a Policy field out of range.
type SettingError struct {
	// Key is the field as a manifest spells it: "fetch.allow[1]",
	// "fetch.timeout", "fetch.max_response_bytes", "fetch.max_requests".
	Key string
	// Problem says what is wrong and what is wanted.
	Problem string
}

func (e *SettingError) Error() string { return e.Key + ": " + e.Problem }

// Setting returns Key and Problem, for a caller outside the runtime that
// reports them in its own words.
func (e *SettingError) Setting() (key, problem string) { return e.Key, e.Problem }

// Validate checks the policy: the first field at fault is a
// *SettingError.
func (p Policy) Validate() error {
	_, err := p.prefixes()
	return err
}

// prefixes validates the policy and parses its allow-list.
func (p Policy) prefixes() ([]prefix, error) {
	switch {
	case p.Timeout < 0:
		return nil, &SettingError{"fetch.timeout", fmt.Sprintf("%s is negative", p.Timeout)}
	case p.MaxRequests < 0:
		return nil, &SettingError{"fetch.max_requests", fmt.Sprintf("%d is negative", p.MaxRequests)}
	case p.MaxResponseBytes < 0:
		return nil, &SettingError{"fetch.max_response_bytes", fmt.Sprintf("%d is negative", p.MaxResponseBytes)}
	}
	var out []prefix
	for i, a := range p.Allow {
		pre, err := parsePrefix(a)
		if err != nil {
			return nil, &SettingError{fmt.Sprintf("fetch.allow[%d]", i), fmt.Sprintf("%q: %v", a, err)}
		}
		out = append(out, pre)
	}
	return out, nil
}

// New validates the policy and returns its Client.
//
// # Results
//   - the Client;
//   - a *SettingError naming the field at fault.
func New(p Policy) (*Client, error) {
	allow, err := p.prefixes()
	if err != nil {
		return nil, err
	}
	c := &Client{allow: allow, timeout: p.Timeout, maxRequests: p.MaxRequests}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxRequests == 0 {
		c.maxRequests = DefaultMaxRequests
	}
	maxBody := p.MaxResponseBytes
	if maxBody == 0 {
		maxBody = DefaultMaxResponseBytes
	}
	c.http = &fasthttp.Client{
		Name:                   "insertfn",
		MaxConnsPerHost:        64,
		MaxConnWaitTimeout:     c.timeout,
		ReadTimeout:            c.timeout,
		WriteTimeout:           c.timeout,
		MaxResponseBodySize:    maxBody,
		ReadBufferSize:         8 << 10,
		DisablePathNormalizing: true,
	}
	return c, nil
}

// parsePrefix parses an allow-list entry.
func parsePrefix(s string) (prefix, error) {
	u, err := url.Parse(s)
	if err != nil {
		return prefix{}, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return prefix{}, errors.New("want an http:// or https:// URL")
	}
	if u.Host == "" || u.Opaque != "" {
		return prefix{}, errors.New("want an absolute URL with a host")
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return prefix{}, errors.New("want a URL without user information, query or fragment")
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if bad := badPath(path); bad != "" {
		return prefix{}, errors.New(bad)
	}
	return prefix{scheme: u.Scheme, host: hostKey(u), path: path}, nil
}

// hostKey is u's host lowercased, without its scheme's default port.
func hostKey(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" || (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		return host
	}
	return host + ":" + port
}

// decodedSeparators reads the (lowercased) encoded slashes, backslashes
// and dots of a path as the separators and dots a server may take them for.
var decodedSeparators = strings.NewReplacer("%2f", "/", "%5c", "/", "\\", "/", "%2e", ".")

// badPath says what is wrong with an escaped path a server could read as
// another one: a dot segment (. or ..), raw or percent-encoded, between
// slashes that may be raw, percent-encoded or backslashes (servers and
// proxies that decode %2F or take a backslash for / would resolve it);
// "" when nothing is.
func badPath(escaped string) string {
	p := strings.ToLower(escaped)
	if strings.Contains(p, "%") || strings.Contains(p, "\\") {
		p = decodedSeparators.Replace(p)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return "a dot segment (. or .., raw or percent-encoded) in the path is not allowed"
		}
	}
	return ""
}

// check parses raw and returns it as it will be requested, or a
// *ForbiddenError.
func (c *Client) check(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, &ForbiddenError{URL: raw, Reason: "not a URL: " + err.Error()}
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return nil, &ForbiddenError{URL: raw, Reason: "not an absolute http or https URL"}
	}
	if u.User != nil {
		return nil, &ForbiddenError{URL: raw, Reason: "user information in the URL is not allowed"}
	}
	u.Fragment, u.RawFragment = "", ""
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if bad := badPath(path); bad != "" {
		return nil, &ForbiddenError{URL: raw, Reason: bad}
	}
	host := hostKey(u)
	for _, p := range c.allow {
		if p.scheme != u.Scheme || p.host != host {
			continue
		}
		if path == p.path || strings.HasPrefix(path, p.path) && (strings.HasSuffix(p.path, "/") || path[len(p.path)] == '/') {
			return u, nil
		}
	}
	if len(c.allow) == 0 {
		return nil, NothingAllowed(raw)
	}
	return nil, &ForbiddenError{URL: raw, Reason: "not under an allowed prefix"}
}

// AllowsAny reports whether the policy allows any URL.
func (c *Client) AllowsAny() bool { return len(c.allow) > 0 }

// Counter counts one event's requests against Policy.MaxRequests; its zero
// value is an event with none yet.
type Counter struct{ n int }

// Reset starts a new event.
func (n *Counter) Reset() { n.n = 0 }

// Fetch does the request, following redirects unless it says otherwise.
//
// # Parameters
//   - deadline: when the event's time limit ends; the request ends at
//     the earlier of it and now plus Policy.Timeout.
//   - n: the event's request count, which Fetch increments.
//   - req: the request.
//
// # Results
//   - the response, whatever its status;
//   - a *ForbiddenError for a URL (or a redirect's) the Policy does not
//     allow; [ErrTooManyRequests]; or the network's error, the timeout's,
//     a body past Policy.MaxResponseBytes's, each saying so.
func (c *Client) Fetch(deadline time.Time, n *Counter, req *Request) (*Response, error) {
	u, err := c.check(req.URL)
	if err != nil {
		return nil, err
	}
	if n.n >= c.maxRequests {
		return nil, ErrTooManyRequests
	}
	n.n++
	eventBound := true // the event's time limit ends first
	if d := time.Now().Add(c.timeout); deadline.IsZero() || d.Before(deadline) {
		deadline, eventBound = d, false
	}
	method := req.Method
	if method == "" {
		method = fasthttp.MethodGet
	}
	body := req.Body
	hreq, hresp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(hreq)
	defer fasthttp.ReleaseResponse(hresp)
	redirected := false
	for redirects := 0; ; redirects++ {
		hreq.Reset()
		hresp.Reset()
		hreq.SetRequestURI(u.String())
		hreq.Header.SetMethod(method)
		for _, h := range req.Header {
			if skipHeader(h[0]) {
				continue
			}
			hreq.Header.Add(h[0], h[1])
		}
		if body != nil {
			hreq.SetBodyRaw(body)
		}
		if err := c.http.DoDeadline(hreq, hresp, deadline); err != nil {
			return nil, describe(err, u, eventBound)
		}
		status := hresp.StatusCode()
		location := hresp.Header.Peek(fasthttp.HeaderLocation)
		if !isRedirect(status) || len(location) == 0 || req.Redirect == "manual" {
			return response(hresp, u, redirected), nil
		}
		if req.Redirect == "error" {
			return nil, fmt.Errorf("fetch %s: redirected (%d) while the request's redirect is \"error\"", u, status)
		}
		if redirects >= MaxRedirects {
			return nil, fmt.Errorf("fetch %s: more than %d redirects", req.URL, MaxRedirects)
		}
		next, err := u.Parse(string(location))
		if err != nil {
			return nil, fmt.Errorf("fetch %s: the redirect's location %q is not a URL: %w", u, location, err)
		}
		if u, err = c.check(next.String()); err != nil {
			return nil, err
		}
		redirected = true
		// As fetch does: a 303, or a 301 or 302 of a POST, goes on as a GET
		// without a body.
		if status == 303 && method != fasthttp.MethodHead || (status == 301 || status == 302) && method == fasthttp.MethodPost {
			method, body = fasthttp.MethodGet, nil
		}
	}
}

// skipHeader reports whether a request header is the host's to set: the
// connection's and the body's framing.
func skipHeader(name string) bool {
	switch strings.ToLower(name) {
	case "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer":
		return true
	}
	return false
}

func isRedirect(status int) bool {
	switch status {
	case 301, 302, 303, 307, 308:
		return true
	}
	return false
}

// response copies what the function reads of hresp.
func response(hresp *fasthttp.Response, u *url.URL, redirected bool) *Response {
	r := &Response{
		Status:     hresp.StatusCode(),
		StatusText: fasthttp.StatusMessage(hresp.StatusCode()),
		URL:        u.String(),
		Redirected: redirected,
		Body:       append([]byte(nil), hresp.Body()...),
	}
	if r.StatusText == "Unknown Status Code" {
		r.StatusText = ""
	}
	for k, v := range hresp.Header.All() {
		r.Header = append(r.Header, [2]string{strings.ToLower(string(k)), string(v)})
	}
	return r
}

// describe turns fasthttp's error into one that says what happened.
func describe(err error, u *url.URL, eventBound bool) error {
	switch {
	case (errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout)) && eventBound:
		return fmt.Errorf("fetch %s: no answer before the event's time limit: %w (%w)", u, ErrEventTimeLimit, err)
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return fmt.Errorf("fetch %s: no answer within fetch.timeout: %w", u, err)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fmt.Errorf("fetch %s: the response's body is larger than fetch.max_response_bytes: %w", u, err)
	}
	return fmt.Errorf("fetch %s: %w", u, err)
}
