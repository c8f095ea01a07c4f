package ingest

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// Browsers: analytics.js sends its events from the page's origin to the
// server's, with an Authorization header, so every request is a CORS
// request with a preflight. The server answers every preflight (OPTIONS)
// on its routes, and puts Access-Control-Allow-Origin on every answer to
// a request with an Origin header, errors included, so that the library
// sees the status. Which origins a source accepts is
// [Source.AllowedOrigins], checked on the request itself once its write
// key names the source: a preflight carries no key, and a refused
// preflight is a network error to the page, which analytics.js retries
// ten times and never explains, while a 403 it can read is dropped at
// once. A request without an Origin header (a server library, curl) is
// not restricted: an origin is a browser's guard, not authentication
// (anyone may send any Origin outside a browser).

// PreflightMaxAge is how long, in seconds, a browser may reuse a
// preflight's answer (Chromium caps it at two hours, Firefox at a day).
const PreflightMaxAge = "86400"

// origins is the set of origins a source accepts. The zero value accepts
// none; any accepts all.
type origins struct {
	any   bool
	exact map[string]bool
	// subdomains are "scheme://" + ".domain" + optional ":port" patterns
	// written https://*.example.com: any subdomain of the domain.
	subdomains []subdomainPattern
}

type subdomainPattern struct{ scheme, suffix, port string }

// CheckOrigin reports whether o is a valid entry of
// [Source.AllowedOrigins]: "*", an origin (scheme://host[:port], as a
// browser's Origin header writes it: no path, no trailing slash), or
// scheme://*.domain[:port] for every subdomain of domain.
func CheckOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not an origin: %v", o, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: an origin starts with http:// or https://", o)
	case u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "/"):
		return fmt.Errorf("%q: an origin is scheme://host[:port], without a path or a trailing slash (as the browser's Origin header writes it)", o)
	case strings.ToLower(o) != o:
		return fmt.Errorf("%q: write the origin in lower case, as browsers send it", o)
	case strings.Contains(u.Hostname(), "*") && (!strings.HasPrefix(u.Hostname(), "*.") || strings.Count(u.Hostname(), "*") > 1 ||
		strings.Count(u.Hostname(), ".") < 2 || strings.HasSuffix(u.Hostname(), ".")):
		return fmt.Errorf("%q: a wildcard stands only for the subdomains of a domain of two labels or more, as in https://*.example.com (which does not match https://example.com itself)", o)
	}
	for i := 0; i < len(o); i++ {
		if o[i] >= 0x80 {
			return fmt.Errorf("%q: write a host that is not ASCII in its punycode form (xn--...), as browsers send it", o)
		}
	}
	if p, hasPort := u.Port(), strings.LastIndexByte(u.Host, ':') > strings.LastIndexByte(u.Host, ']'); hasPort {
		n, err := strconv.Atoi(p)
		switch {
		case err != nil || n < 1 || n > 65535 || p[0] == '0':
			return fmt.Errorf("%q: the port must be a number from 1 to 65535", o)
		case u.Scheme == "https" && n == 443, u.Scheme == "http" && n == 80:
			return fmt.Errorf("%q: leave the default port out (browsers do): %s://%s", o, u.Scheme, u.Hostname())
		}
	}
	return nil
}

// newOrigins builds the set for a source's AllowedOrigins; an empty list
// accepts every origin (write keys are public in every page that sends
// events, so Segment accepts any origin).
func newOrigins(list []string) (origins, error) {
	if len(list) == 0 {
		return origins{any: true}, nil
	}
	var o origins
	var errs []error
	for i, s := range list {
		if err := CheckOrigin(s); err != nil {
			errs = append(errs, fmt.Errorf("allowed_origins[%d]: %w", i, err))
			continue
		}
		if s == "*" {
			o.any = true
			continue
		}
		u, _ := url.Parse(s)
		if h := u.Hostname(); strings.HasPrefix(h, "*.") {
			o.subdomains = append(o.subdomains, subdomainPattern{scheme: u.Scheme, suffix: h[1:], port: u.Port()})
			continue
		}
		if o.exact == nil {
			o.exact = make(map[string]bool)
		}
		o.exact[s] = true
	}
	return o, errors.Join(errs...)
}

// metricsPath is where analytics.js sends its own metrics (its error and
// delivery counters, for Segment's engineers). They are not events: the
// server answers 200 and keeps nothing, as a page expects.
const metricsPath = "/v1/m"

// clientMetrics answers a client library's metrics report: read (bounded
// by MaxEventBytes) and dropped.
func (s *Server) clientMetrics(ctx *fasthttp.RequestCtx) {
	s.stats.clientMetrics.Add(1)
	s.discardBody(ctx)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"success":true}`)
}

// allows reports whether the Origin header value origin is accepted.
func (o *origins) allows(origin []byte) bool {
	if o.any || o.exact[string(origin)] {
		return true
	}
	if len(o.subdomains) == 0 {
		return false
	}
	s := string(origin)
	for _, p := range o.subdomains {
		rest, ok := strings.CutPrefix(s, p.scheme+"://")
		if !ok {
			continue
		}
		host, port, _ := strings.Cut(rest, ":")
		if port == p.port && strings.HasSuffix(host, p.suffix) && len(host) > len(p.suffix) {
			return true
		}
	}
	return false
}

// errOrigin refuses a browser request from an origin its source does not
// accept.
var errOrigin = problem{403, "this source does not accept events from the page's origin: add it to the source's allowed_origins (sources[].allowed_origins), or remove the list to accept any origin"}

// allowOrigin puts the CORS answer headers for the request's origin on
// every answer: the browser then lets the page read the status, and the
// Retry-After of a 429 (a header a page cannot read unless it is exposed;
// analytics.js waits that long before it retries).
func allowOrigin(ctx *fasthttp.RequestCtx, origin []byte) {
	ctx.Response.Header.SetBytesV("Access-Control-Allow-Origin", origin)
	ctx.Response.Header.Set("Access-Control-Expose-Headers", "Retry-After")
	ctx.Response.Header.Set("Vary", "Origin")
}

// preflight answers a CORS preflight for a tracking path: 204 with what
// the browser may send.
func (s *Server) preflight(ctx *fasthttp.RequestCtx, origin []byte) {
	s.stats.preflights.Add(1)
	if len(origin) == 0 { // not a browser's: say what the path takes
		ctx.Response.Header.Set("Allow", "POST, OPTIONS")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	allowOrigin(ctx, origin)
	h := &ctx.Response.Header
	h.Set("Vary", "Origin, Access-Control-Request-Headers")
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	if req := ctx.Request.Header.Peek("Access-Control-Request-Headers"); len(req) > 0 {
		h.SetBytesV("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Max-Age", PreflightMaxAge)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}
