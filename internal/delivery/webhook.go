package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Defaults of [WebhookConfig].
const (
	DefaultWebhookTimeout  = 10 * time.Second
	DefaultWebhookMaxConns = 64
)

// maxResponseBody bounds how much of a destination's answer is read: a
// misbehaving destination cannot make the host buffer gigabytes.
const maxResponseBody = 1 << 20

// WebhookMode is how a [Webhook] posts a batch of events.
type WebhookMode string

// Webhook modes.
const (
	// ModeBatch posts a batch in one request, with the body
	// {"batch":[event,event,...]} as Segment's /v1/batch takes it. The
	// default: one request per batch instead of one per event.
	ModeBatch WebhookMode = "batch"
	// ModeEvent posts each event in its own request, the event as the body,
	// in order; the first failure stops the batch (see [Error.Delivered]).
	ModeEvent WebhookMode = "event"
)

// WebhookConfig configures a [Webhook]. Only URL is required; every zero
// field takes its default.
type WebhookConfig struct {
	// URL is where events are posted: http:// or https://, with a host.
	// User info in it (https://user:pass@host/) is sent as Basic auth; it and
	// the query are left out of error messages.
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// Headers are added to every request (Authorization, X-Api-Key...).
	// Content-Type (default application/json) may be overridden and Host
	// set; Content-Length, Content-Encoding, Transfer-Encoding and
	// Connection are the sink's own and may not be.
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// Timeout bounds one request, from waiting for a connection to reading
	// the answer. Default 10s. A request that times out is retryable.
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Mode is [ModeBatch] (the default) or [ModeEvent].
	Mode WebhookMode `yaml:"mode,omitempty" json:"mode,omitempty"`
	// Gzip compresses request bodies (Content-Encoding: gzip). Off by
	// default: it saves bandwidth to remote destinations at some CPU cost.
	Gzip bool `yaml:"gzip,omitempty" json:"gzip,omitempty"`
	// MaxConns bounds the open connections to the destination, which is
	// the most requests in flight at once; a request finding all of them
	// busy waits for one up to Timeout. Default 64.
	MaxConns int `yaml:"max_conns,omitempty" json:"max_conns,omitempty"`
}

// reservedHeaders are set by the sink and may not be configured.
var reservedHeaders = []string{"Connection", "Content-Encoding", "Content-Length", "Transfer-Encoding"}

// Validate reports the first bad field, naming its key.
func (c *WebhookConfig) Validate() error {
	if c.URL == "" {
		return &ConfigError{Key: "url", Problem: "required for a webhook destination (http:// or https:// address to post events to)"}
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return &ConfigError{Key: "url", Problem: fmt.Sprintf("not a valid URL: %v", err)}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return &ConfigError{Key: "url", Problem: fmt.Sprintf("scheme must be http or https, got %q", u.Scheme)}
	}
	if u.Host == "" {
		return &ConfigError{Key: "url", Problem: "has no host"}
	}
	if c.Timeout < 0 {
		return &ConfigError{Key: "timeout", Problem: fmt.Sprintf("must not be negative, got %v", c.Timeout)}
	}
	switch c.Mode {
	case "", ModeBatch, ModeEvent:
	default:
		return &ConfigError{Key: "mode", Problem: fmt.Sprintf("must be %q or %q, got %q", ModeBatch, ModeEvent, c.Mode)}
	}
	if c.MaxConns < 0 {
		return &ConfigError{Key: "max_conns", Problem: fmt.Sprintf("must not be negative, got %d", c.MaxConns)}
	}
	for _, k := range sortedKeys(c.Headers) {
		key := "headers." + k
		if !validHeaderName(k) {
			return &ConfigError{Key: key, Problem: "not a valid HTTP header name"}
		}
		for _, r := range reservedHeaders {
			if strings.EqualFold(k, r) {
				return &ConfigError{Key: key, Problem: "is set by the webhook sink and cannot be configured"}
			}
		}
		if strings.ContainsAny(c.Headers[k], "\r\n\x00") {
			return &ConfigError{Key: key, Problem: "value contains a line break or NUL"}
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Webhook is a [Sink] that posts events to an HTTP endpoint with
// fasthttp. It is safe for concurrent use; each Deliver uses its own
// pooled request and response, released before Deliver returns, and
// copies the events into the request body, so neither the events nor any
// fasthttp object outlives the call.
//
// A 2xx answer is success. A 5xx, 408 or 429 answer, a timeout and a
// connection error are retryable (a 429's or 503's Retry-After is in the
// error, see [RetryAfter]); every other answer (4xx, and 3xx: redirects are
// not followed) is permanent. Errors carry the status and up to 200 bytes of
// the answer.
type Webhook struct {
	client  *fasthttp.Client
	uri     string
	op      string // "POST scheme://host/path", for errors
	headers [][2]string
	useHost bool
	timeout time.Duration
	mode    WebhookMode
	gzip    bool
	closed  atomic.Bool
}

// NewWebhook validates cfg and returns a Webhook. It opens no connection:
// an unreachable destination shows up as a retryable Deliver error.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.URL) // checked by Validate
	w := &Webhook{
		uri:     cfg.URL,
		op:      "POST " + u.Scheme + "://" + u.Host + u.EscapedPath(),
		timeout: cfg.Timeout,
		mode:    cfg.Mode,
		gzip:    cfg.Gzip,
	}
	if w.timeout == 0 {
		w.timeout = DefaultWebhookTimeout
	}
	if w.mode == "" {
		w.mode = ModeBatch
	}
	for _, k := range sortedKeys(cfg.Headers) {
		w.headers = append(w.headers, [2]string{k, cfg.Headers[k]})
		if strings.EqualFold(k, "Host") {
			w.useHost = true
		}
	}
	maxConns := cfg.MaxConns
	if maxConns == 0 {
		maxConns = DefaultWebhookMaxConns
	}
	w.client = &fasthttp.Client{
		Name:                   "insertfn",
		MaxConnsPerHost:        maxConns,
		MaxConnWaitTimeout:     w.timeout,
		ReadTimeout:            w.timeout,
		WriteTimeout:           w.timeout,
		MaxResponseBodySize:    maxResponseBody,
		ReadBufferSize:         8 << 10,
		DisablePathNormalizing: true,
		RetryIfErr:             retryStaleConn,
	}
	return w, nil
}

// retryStaleConn lets fasthttp resend a request once, at once and within
// the same deadline, when the connection failed before any answer: the
// usual cause is a keep-alive connection the destination closed while idle
// (many servers close them after a few seconds), and without this the
// first delivery after a quiet spell would fail and wait a full backoff.
// The destination may in rare cases have received the first copy;
// delivery is at-least-once anyway.
func retryStaleConn(_ *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	if attempts > 1 {
		return false, false
	}
	return false, errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Deliver posts events (see [Sink.Deliver]): in [ModeBatch] one request
// with the body {"batch":[...]}, in [ModeEvent] one request per event.
// Events are copied into the body byte for byte. Every event is checked to
// be a JSON object before anything is sent; one that is not makes a
// permanent *Error and nothing is sent.
//
// Each request is bounded by the configured Timeout and by ctx's deadline,
// whichever comes first. fasthttp cannot abort a request when ctx is
// cancelled without a deadline; Deliver then stops before the next request.
func (w *Webhook) Deliver(ctx context.Context, events [][]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.closed.Load() {
		return ErrClosed
	}
	if len(events) == 0 {
		return nil
	}
	for i, ev := range events {
		if !checkEvent(ev) {
			return notObject("webhook", i, ev)
		}
	}
	if w.mode == ModeBatch {
		if err := w.post(ctx, events, true); err != nil {
			return err // a nil *Error must not become a non-nil error
		}
		return nil
	}
	for i := range events {
		if i > 0 {
			if err := ctx.Err(); err != nil {
				return &Error{Sink: "webhook", Op: w.op, Delivered: i, Err: err}
			}
		}
		if err := w.post(ctx, events[i:i+1], false); err != nil {
			err.Delivered, err.Event = i, i+1
			return err
		}
	}
	return nil
}

var (
	batchOpen  = []byte(`{"batch":[`)
	batchClose = []byte(`]}`)
)

// post sends one request: events as a batch body, or events[0] alone.
func (w *Webhook) post(ctx context.Context, events [][]byte, batch bool) *Error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)

	req.SetRequestURI(w.uri)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	for _, h := range w.headers {
		req.Header.Set(h[0], h[1])
	}
	req.UseHostHeader = w.useHost
	if w.gzip {
		buf := getScratch()
		buf.b = appendBody(buf.b[:0], events, batch)
		_, _ = fasthttp.WriteGzipLevel(req.BodyWriter(), buf.b, fasthttp.CompressDefaultCompression)
		putScratch(buf)
		req.Header.SetContentEncoding("gzip")
	} else if batch {
		req.AppendBody(batchOpen)
		for i, ev := range events {
			if i > 0 {
				req.AppendBodyString(",")
			}
			req.AppendBody(ev)
		}
		req.AppendBody(batchClose)
	} else {
		req.AppendBody(events[0])
	}

	start := time.Now()
	deadline := start.Add(w.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	err := w.client.DoDeadline(req, resp, deadline)
	status := resp.StatusCode()
	if err != nil {
		if errors.Is(err, fasthttp.ErrBodyTooLarge) && status >= 200 && status < 300 {
			return nil // accepted; we only could not read all of a huge answer
		}
		if errors.Is(err, fasthttp.ErrTimeout) {
			err = fmt.Errorf("no answer within %v: %w", deadline.Sub(start).Round(time.Millisecond), err)
		}
		return &Error{Sink: "webhook", Op: w.op, Err: err}
	}
	if status >= 200 && status < 300 {
		return nil
	}
	e := &Error{Sink: "webhook", Op: w.op, Status: status}
	body := resp.Body()
	if len(resp.Header.ContentEncoding()) > 0 {
		if b, err := resp.BodyUncompressed(); err == nil {
			body = b
		}
	}
	e.Body = excerpt(body)
	switch {
	case status == fasthttp.StatusTooManyRequests || status == fasthttp.StatusServiceUnavailable:
		e.After = parseRetryAfter(resp.Header.Peek("Retry-After"), time.Now())
	case status == fasthttp.StatusRequestTimeout || status >= 500:
	case status >= 300 && status < 400:
		e.Permanent = true
		e.Err = fmt.Errorf("redirects are not followed: set url to the final address (Location: %q)", excerptN(resp.Header.Peek("Location"), 200))
	default:
		e.Permanent = true
	}
	return e
}

// appendBody appends the request body for events to dst.
func appendBody(dst []byte, events [][]byte, batch bool) []byte {
	if !batch {
		return append(dst, events[0]...)
	}
	dst = append(dst, batchOpen...)
	for i, ev := range events {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, ev...)
	}
	return append(dst, batchClose...)
}

// maxRetryAfter bounds a Retry-After value before it becomes a Duration.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP
// date. It returns 0 for an absent, malformed or past value.
func parseRetryAfter(v []byte, now time.Time) time.Duration {
	s := strings.TrimSpace(string(v))
	if s == "" {
		return 0
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(s)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// Close closes the sink's idle connections; later Deliver calls return
// [ErrClosed]. Requests in flight finish on their own (each is bounded by
// Timeout); Close does not wait for them.
func (w *Webhook) Close() error {
	w.closed.Store(true)
	w.client.CloseIdleConnections()
	return nil
}
