// Package httpstore is the read-only consent store backend that asks a
// company's own consent service: one GET per lookup, to a URL built from a
// template ("https://consent.internal/users/{id}"), with the configured
// headers (for authentication), bounded by a timeout.
//
// The service answers 200 with the person's consent, 404 when it has none.
// Two response shapes are understood (Config.Format): "record", the
// consent-record contract's wire format (the default), and "categories", a
// plain object of category booleans ({"Advertising": true, ...}), also
// accepted wrapped as {"categoryPreferences": {...}}; categories read that
// way have timestamp 0. Any other status, a timeout, a connection error, a
// redirect, a body larger than Config.MaxBody or a body that is not the
// configured shape make the lookup fail with an error wrapping
// [consentstore.ErrUnavailable] that says what happened.
//
// The service is the source of truth and keeps no history for insertfn:
// Update and Delete fail with [consentstore.ErrReadOnly] (change consent in
// the service itself), and so do History (and therefore AsOf) and Scan,
// which the service cannot answer. Put a cache in front of the store (see
// [consentstore.CacheConfig]; storeconfig does by default) so that not
// every event costs a request.
//
// The client is net/http, not fasthttp (which the host's server uses):
// an outbound lookup costs a network round trip that dwarfs the client's
// own overhead, and net/http gives context cancellation, HTTP/2, TLS and
// proxy support as the standard library maintains them.
package httpstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/sdk/consent"
)

// Response formats of [Config.Format].
const (
	// FormatRecord is the consent-record contract's wire format.
	FormatRecord = "record"
	// FormatCategories is a plain {"Category": bool} object, optionally
	// wrapped as {"categoryPreferences": {...}}.
	FormatCategories = "categories"
)

// Defaults of [Config].
const (
	DefaultTimeout      = 500 * time.Millisecond
	DefaultMaxBody      = 1 << 20
	DefaultMaxIdleConns = 64
)

// placeholder stands for {id} while a template is parsed.
const placeholder = "insertfnidplaceholder"

// excerptLen is the most bytes of a response body an error quotes.
const excerptLen = 200

// Config says where the consent service is and how to ask it. Only URL is
// required; the zero value of every other field is its default.
type Config struct {
	// URL is the lookup URL, with {id} where the id goes:
	// "https://consent.internal/users/{id}". The id is path-escaped
	// (url.PathEscape; "a/b c" becomes "a%2Fb%20c"), or query-escaped
	// when {id} is in the query string. The scheme is http or https.
	URL string `yaml:"url" json:"url"`
	// Headers are sent with every request, typically for authentication
	// ("Authorization: Bearer ..."). A "Host" header sets the request's
	// host.
	Headers map[string]string `yaml:"headers" json:"headers"`
	// Timeout bounds every lookup, connecting and reading the body
	// included, whatever the caller's context allows. 0 means 500ms.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// Format is the shape of the service's answer: "record" (the
	// default) or "categories" (see the package documentation).
	Format string `yaml:"format" json:"format"`
	// MaxBody is the largest response body read, in bytes; a larger one
	// fails the lookup. 0 means 1 MiB.
	MaxBody int64 `yaml:"max_body" json:"max_body"`
	// MaxIdleConns is how many idle keep-alive connections to the service
	// are kept for reuse. 0 means 64.
	MaxIdleConns int `yaml:"max_idle_conns" json:"max_idle_conns"`
}

// Store is the read-only [consentstore.Backend] over a consent service. It
// is safe for concurrent use.
type Store struct {
	before, after string // the template around {id}
	inQuery       bool   // {id} is in the query string: query-escape it
	name          string // the template without query or user info, for errors
	headers       http.Header
	host          string // "Host" header, if any
	format        string
	timeout       time.Duration
	maxBody       int64
	transport     *http.Transport
	client        *http.Client
	closed        atomic.Bool
}

var (
	_ consentstore.Backend = (*Store)(nil)
	_ consent.Store        = (*Store)(nil)
)

// New checks cfg and returns a Store that asks the service it names. It
// sends no request: a service that is down shows at the first lookup.
func New(cfg Config) (*Store, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxIdleConns == 0 {
		cfg.MaxIdleConns = DefaultMaxIdleConns
	}
	if cfg.Format == "" {
		cfg.Format = FormatRecord
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consent store: http: %w", err)
	}
	u, _ := url.Parse(strings.ReplaceAll(cfg.URL, "{id}", placeholder)) // checked
	// Errors name the template without its query or user info, which may
	// hold credentials.
	name := u.Scheme + "://" + u.Host + strings.ReplaceAll(u.EscapedPath(), placeholder, "{id}")
	before, after, _ := strings.Cut(cfg.URL, "{id}")
	s := &Store{
		before:  before,
		after:   after,
		inQuery: strings.Contains(before, "?"),
		name:    name,
		headers: make(http.Header, len(cfg.Headers)+1),
		format:  cfg.Format,
		timeout: cfg.Timeout,
		maxBody: cfg.MaxBody,
	}
	s.headers.Set("Accept", "application/json")
	s.headers.Set("User-Agent", "insertfn-consentstore")
	for k, v := range cfg.Headers {
		if strings.EqualFold(k, "Host") {
			s.host = v
			continue
		}
		s.headers.Set(k, v)
	}
	s.transport = &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   cfg.Timeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        cfg.MaxIdleConns,
		MaxIdleConnsPerHost: cfg.MaxIdleConns, // one service: every idle connection may go to it
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: cfg.Timeout,
	}
	s.client = &http.Client{
		Transport: s.transport,
		// A redirect is not followed: it could carry the auth headers to
		// another host. Configure the URL the service really answers at.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s, nil
}

// Validate checks c without sending anything and reports every problem,
// each naming its key ("url: ...", "timeout: ..."). The zero value of every
// field but URL is valid (it means the default).
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch n := strings.Count(c.URL, "{id}"); {
	case c.URL == "":
		bad("url", `required: the lookup URL with {id} where the id goes, such as "https://consent.internal/users/{id}"`)
	case n != 1:
		bad("url", `%q must contain {id} exactly once (found %d), e.g. "https://consent.internal/users/{id}"`, c.URL, n)
	default:
		u, err := url.Parse(strings.ReplaceAll(c.URL, "{id}", placeholder))
		switch {
		case err != nil:
			bad("url", "%q: %v", c.URL, errors.Unwrap(err))
		case u.Scheme != "http" && u.Scheme != "https":
			bad("url", "%q: scheme %q, want http or https", c.URL, u.Scheme)
		case u.Host == "":
			bad("url", "%q has no host", c.URL)
		case strings.Contains(u.Host, placeholder) || strings.Contains(u.User.String(), placeholder):
			bad("url", "%q: {id} must be in the path or the query, not the host", c.URL)
		case u.Fragment != "":
			bad("url", "%q: a fragment (#...) is never sent; remove it", c.URL)
		}
	}
	if c.Timeout < 0 {
		bad("timeout", "negative (%v)", c.Timeout)
	}
	if c.MaxBody < 0 {
		bad("max_body", "negative (%d)", c.MaxBody)
	}
	if c.MaxIdleConns < 0 {
		bad("max_idle_conns", "negative (%d)", c.MaxIdleConns)
	}
	if c.Format != "" && c.Format != FormatRecord && c.Format != FormatCategories {
		bad("format", "unknown format %q; want %q (the default) or %q", c.Format, FormatRecord, FormatCategories)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Headers)) {
		if !httpguts.ValidHeaderFieldName(k) {
			bad("headers", "%q is not a valid HTTP header name", k)
		}
		if strings.ContainsAny(c.Headers[k], "\r\n\x00") {
			bad("headers."+k, "the value contains a line break or NUL")
		}
	}
	return errors.Join(errs...)
}

// URL returns the URL a lookup of id requests.
func (s *Store) URL(id string) string {
	esc := url.PathEscape(id)
	if s.inQuery {
		esc = url.QueryEscape(id)
	}
	return s.before + esc + s.after
}

// Get asks the service for id's consent. It returns an error wrapping
// [consent.ErrNotFound] when the service answers 404, and an error
// wrapping [consentstore.ErrUnavailable] when it fails, does not answer
// within the timeout, or answers something that is not a record.
func (s *Store) Get(ctx context.Context, id string) (*consent.Record, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("consent store: http %s: %w", s.name, consentstore.ErrClosed)
	}
	if id == "" {
		return nil, consent.ErrNotFound
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, s.URL(id), nil)
	if err != nil { // the template is checked; an id cannot break it
		return nil, fmt.Errorf("consent store: http %s: get %q: %w (%w)", s.name, id, consentstore.ErrUnavailable, err)
	}
	req.Header = s.headers.Clone()
	if s.host != "" {
		req.Host = s.host
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, s.fail(ctx, cctx, id, err)
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		drain(resp.Body)
		return nil, fmt.Errorf("consent store: http %s: get %q: %w", s.name, id, consent.ErrNotFound)
	default:
		excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, excerptLen))
		drain(resp.Body)
		msg := fmt.Sprintf("status %s", resp.Status)
		if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
			msg += fmt.Sprintf(" (a redirect to %q, not followed: configure the URL the service answers at)", loc)
		}
		if len(excerpt) > 0 {
			msg += fmt.Sprintf(", body %q", excerpt)
		}
		return nil, fmt.Errorf("consent store: http %s: get %q: %s: %w", s.name, id, msg, consentstore.ErrUnavailable)
	}

	if resp.ContentLength > s.maxBody {
		return nil, fmt.Errorf("consent store: http %s: get %q: response body of %d bytes is larger than max_body %d: %w",
			s.name, id, resp.ContentLength, s.maxBody, consentstore.ErrUnavailable)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.maxBody+1))
	if err != nil {
		return nil, s.fail(ctx, cctx, id, fmt.Errorf("reading the response body: %w", err))
	}
	if int64(len(body)) > s.maxBody {
		return nil, fmt.Errorf("consent store: http %s: get %q: response body larger than max_body %d bytes: %w",
			s.name, id, s.maxBody, consentstore.ErrUnavailable)
	}
	rec, err := Decode(s.format, id, body)
	if err != nil {
		return nil, fmt.Errorf("consent store: http %s: get %q: malformed response (%v), body %q: %w",
			s.name, id, err, excerpt(body), consentstore.ErrUnavailable)
	}
	return rec, nil
}

// fail wraps the error of a request: ctx is the caller's context, cctx the
// request's (bounded by the timeout).
func (s *Store) fail(ctx, cctx context.Context, id string, err error) error {
	switch {
	case s.closed.Load():
		return fmt.Errorf("consent store: http %s: get %q: %w", s.name, id, consentstore.ErrClosed)
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("consent store: http %s: get %q: %w", s.name, id, ctx.Err())
	case ctx.Err() != nil:
		return fmt.Errorf("consent store: http %s: get %q: no answer before the caller's deadline: %w (%w)",
			s.name, id, consentstore.ErrUnavailable, ctx.Err())
	case cctx.Err() != nil:
		return fmt.Errorf("consent store: http %s: get %q: no answer within %v: %w (%w)",
			s.name, id, s.timeout, consentstore.ErrUnavailable, cctx.Err())
	}
	return fmt.Errorf("consent store: http %s: get %q: %w (%w)", s.name, id, consentstore.ErrUnavailable, err)
}

// drain reads a little of what is left of a body so that the connection
// can be reused; a longer body is left to Close, which drops the
// connection.
func drain(body io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 4<<10))
}

// excerpt returns at most the first excerptLen bytes of b.
func excerpt(b []byte) []byte {
	if len(b) > excerptLen {
		return b[:excerptLen]
	}
	return b
}

// Decode reads a service's response body in format (FormatRecord or
// FormatCategories) as the record of id: a record without an id gets id.
// It fails, never panics, on any body that is not the format.
func Decode(format, id string, body []byte) (*consent.Record, error) {
	switch format {
	case FormatRecord, "":
		return decodeRecord(id, body)
	case FormatCategories:
		return decodeCategories(id, body)
	}
	return nil, fmt.Errorf("unknown format %q", format)
}

func decodeRecord(id string, body []byte) (*consent.Record, error) {
	if !startsObject(body) {
		return nil, errors.New("want a JSON object in the consent-record format")
	}
	rec := new(consent.Record)
	if err := consentstore.UnmarshalRecord(body, rec); err != nil {
		return nil, err
	}
	if rec.ID == "" {
		rec.ID = id
		rec.Normalize() // id may be among the aliases
	}
	for _, c := range rec.Categories {
		if c.Name == "" {
			return nil, errors.New("a category without a name")
		}
		if c.Timestamp < 0 {
			return nil, fmt.Errorf("category %q: negative timestamp %d", c.Name, c.Timestamp)
		}
	}
	for _, p := range rec.Purposes {
		if p.Regulation == "" || p.Name == "" {
			return nil, fmt.Errorf("a purpose without a regulation or a name (%q/%q)", p.Regulation, p.Name)
		}
		if p.Timestamp < 0 {
			return nil, fmt.Errorf("purpose %s.%s: negative timestamp %d", p.Regulation, p.Name, p.Timestamp)
		}
	}
	return rec, nil
}

func decodeCategories(id string, body []byte) (*consent.Record, error) {
	if !startsObject(body) {
		return nil, errors.New(`want a JSON object of categories, {"Advertising": true, ...}`)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	if inner, ok := m["categoryPreferences"]; ok && len(m) == 1 && startsObject(inner) {
		m = nil
		if err := json.Unmarshal(inner, &m); err != nil {
			return nil, fmt.Errorf("categoryPreferences: %w", err)
		}
	}
	rec := &consent.Record{ID: id, Categories: make([]consent.Category, 0, len(m))}
	for name, v := range m {
		if name == "" {
			return nil, errors.New("a category without a name")
		}
		c := consent.Category{Name: name}
		switch string(bytes.TrimSpace(v)) {
		case "true":
			c.Consented = true
		case "false":
		default:
			var e struct {
				Consented *bool  `json:"consented"`
				Timestamp *int64 `json:"timestamp_unixtime_ms"`
			}
			if !startsObject(v) || json.Unmarshal(v, &e) != nil || e.Consented == nil {
				return nil, fmt.Errorf("category %s: want true, false or {\"consented\": bool}, got %.40s", strconv.Quote(name), v)
			}
			c.Consented = *e.Consented
			if e.Timestamp != nil {
				if *e.Timestamp < 0 {
					return nil, fmt.Errorf("category %q: negative timestamp %d", name, *e.Timestamp)
				}
				c.Timestamp = *e.Timestamp
			}
		}
		rec.Categories = append(rec.Categories, c)
		rec.UpdatedAt = max(rec.UpdatedAt, c.Timestamp)
	}
	rec.Normalize()
	return rec, nil
}

// startsObject reports whether b's first non-space byte opens an object.
func startsObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// Update fails with [consentstore.ErrReadOnly]: change consent in the
// service itself.
func (s *Store) Update(context.Context, *consentstore.Update) (*consent.Record, []consent.Change, error) {
	return nil, nil, s.readOnly("update")
}

// Delete fails with [consentstore.ErrReadOnly]: erase the person in the
// service itself.
func (s *Store) Delete(context.Context, string) (*consent.Record, error) {
	return nil, s.readOnly("delete")
}

// History fails with an error wrapping [consentstore.ErrReadOnly]: the
// service keeps no history for insertfn, so neither History nor AsOf can
// be answered.
func (s *Store) History(context.Context, string) (*consent.Record, []consentstore.Point, error) {
	return nil, nil, s.readOnly("history (the consent service keeps no history for insertfn)")
}

// Scan fails with [consentstore.ErrReadOnly]: the service cannot list its
// records.
func (s *Store) Scan(context.Context, func(*consent.Record) error) error {
	return s.readOnly("scan (the consent service cannot list records)")
}

func (s *Store) readOnly(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("consent store: http %s: %s: %w", s.name, op, consentstore.ErrClosed)
	}
	return fmt.Errorf("consent store: http %s: %s: %w", s.name, op, consentstore.ErrReadOnly)
}

// Close closes the idle connections to the service; lookups already
// running finish within their timeout. Calls after Close fail with
// [consentstore.ErrClosed].
func (s *Store) Close() error {
	s.closed.Store(true)
	s.transport.CloseIdleConnections()
	return nil
}
