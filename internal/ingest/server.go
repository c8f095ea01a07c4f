// Package ingest is the first stage of an event's path: a fasthttp server
// that speaks Segment's HTTP tracking API, validates and normalizes the
// events it receives and hands them to an [Accepter]. It knows nothing of what
// happens to an event afterwards; it answers 200 only once the Accepter
// has taken the events (insertfn's Accepter appends them to a durable
// queue).
//
// # Routes
//
// POST /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group and
// /v1/alias take one event; POST /v1/batch and /v1/import (an older name
// of batch) take {"batch":[events...]} with optional top-level context,
// integrations, sentAt and writeKey. analytics.js's short paths are the
// same routes: /v1/t, /v1/i, /v1/p, /v1/s, /v1/g, /v1/a and /v1/b; its
// own metrics, POST /v1/m, are answered 200 and not kept. Other paths
// answer 404; another method answers 405 with "Allow: POST, OPTIONS".
// Content-Type is not checked (analytics.js sends text/plain).
//
// # Browsers
//
// OPTIONS on a route is a CORS preflight: 204 with
// Access-Control-Allow-Origin (the request's Origin), -Methods, -Headers
// (those the browser asks for) and -Max-Age ([PreflightMaxAge]), whatever
// the origin: a source's origins are checked on the request itself, which
// names the source. Every answer to a request with an
// Origin header carries Access-Control-Allow-Origin, errors included, so
// that the page's library sees the status. A source's
// [Source.AllowedOrigins] restricts which pages may send its events.
//
// # Authentication
//
// The write key is the user name of HTTP Basic auth (the password is
// ignored; Segment's clients send it empty) or, without an Authorization
// header, the writeKey member of the body. The key names the [Source].
// A missing or unknown key answers 401; a malformed Authorization header
// does too, and a Basic key is never second-guessed by one in the body.
//
// # Bodies
//
// "Content-Encoding: gzip" bodies are inflated, up to the route's limit
// ([Config.MaxEventBytes] for single calls, [Config.MaxBatchBytes] for
// batches); identity is the other encoding accepted (415 for the rest).
// Answers are JSON: {"success":true}, or {"success":false,"error":"..."}
// with a message that says what to fix.
//
//   - 400: not JSON, not an object, batch not an array, or an invalid event
//     (see below); for a batch, the message names the event's index.
//   - 401: missing or unknown write key.
//   - 413: a single call over MaxEventBytes, a batch over MaxBatchBytes or
//     with more than [Config.MaxBatchEvents] events (413 rather than
//     Segment's 400: clients treat both alike, 413 says why). An
//     oversized body is read and discarded before the answer, up to
//     [DrainFactor] times the larger limit, so that a client writing it
//     whole reads the 413 (see [Config.MaxBatchBytes]).
//   - 431: headers over [Config.MaxHeaderBytes]; 408: a request not
//     received within [Config.ReadTimeout].
//   - 429 with Retry-After: the Accepter reported [ErrBackpressure] (the
//     queue is full). 429 rather than 503: it is how Segment's API tells a
//     client to slow down, and the clients honour Retry-After on it
//     (analytics.js only on a 429; analytics-node and analytics-go retry
//     it too).
//   - 503 with Retry-After: the server is shutting down and gave up
//     waiting for the Accepter.
//   - 500: the Accepter failed otherwise; the events were not accepted and
//     the client should retry.
//
// # Events
//
// Every event needs userId or anonymousId (a non-empty string or a
// number); track needs event, alias needs previousId (as analytics-go and
// Segment's alias docs require), group needs groupId. A batch element
// needs a type; a single call's type is its path, whatever the body says.
// messageId, if sent, must be a string of at most 100 characters.
// timestamp, originalTimestamp and sentAt, if sent, must be ISO 8601 dates
// or date-times (RFC 3339 and the common variants [segment.ParseTime]
// lists, the forms the consent store reads too; no offset means UTC); the
// clock skew sentAt - timestamp is corrected only
// when both have a time, both with an offset or both without.
//
// What is stored is what insertfn judges, so that a destination can read
// nothing else: of a member name an object repeats, at any depth and
// compared after unescaping, only the first member is kept (as gjson, the
// functions, the router and the consent store read it; a destination's
// JSON decoder would read the last), and bytes that are not UTF-8 become
// U+FFFD (as a destination's decoder reads them). Ids that are numbers
// (userId, anonymousId, previousId, groupId) are stored as strings, as
// JavaScript's String(n) writes them (sdk/consent.NumberID): 123, 123.0
// and 1.23e2 are all "123", the id the consent store keys; a number no
// string denotes exactly (12345678901234567891) is refused with a 400.
//
// The event handed on keeps every other member the client sent, except
// writeKey, and gets:
//
//   - type: the path's for single calls, else the event's own;
//   - messageId: the client's, or "ifn-" and 32 random hex digits;
//   - context, integrations: merged with the batch's (below);
//   - sentAt: the event's, else the batch's;
//   - originalTimestamp: the client's originalTimestamp, else its timestamp;
//   - timestamp: corrected for the client's clock skew as Segment does it,
//     receivedAt − (sentAt − originalTimestamp), when both are known; the
//     client's time when sentAt is not; receivedAt when it sent no time;
//   - receivedAt: the server's time, UTC, with milliseconds.
//
// A batch's top-level context and integrations are merged into each of
// its events one level deep: a member the event has is kept whole, even
// when both are objects (so an event's context.library replaces the
// batch's rather than mixing with it); members only the batch has are
// added. integrations is not materialized when absent: no integrations
// object means {"All": true}, as insertfn's routing reads it.
//
// A batch with invalid events: see [Config.StrictBatch].
//
// # Duplicates
//
// Events whose messageId is among the last [Config.DedupeWindow] ids
// accepted for the same source are answered 200 and not handed to the
// Accepter again; so are repeats of one messageId within a request. An id
// is remembered only once the Accepter has taken its event, so an event
// refused with 429, 503 or 500 is not mistaken for a duplicate when the client
// retries. Two requests carrying the same event at the same moment can
// both be accepted: delivery is at-least-once, and receivers deduplicate by
// messageId.
package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/insertfn/insertfn/internal/logthrottle"
	"github.com/insertfn/insertfn/sdk/segment"
)

// ErrBackpressure is the error (possibly wrapped) an [Accepter] returns
// when it cannot take events now but will later, for example because its
// queue is full: the server answers 429 with a Retry-After header, and
// Segment's clients retry.
var ErrBackpressure = errors.New("server: the event store is full; retry later")

// ErrServerClosed is returned by [Server.Serve] and
// [Server.ListenAndServe] called after [Server.Shutdown].
var ErrServerClosed = errors.New("server: the server has been shut down")

// Accepter takes the events of one request. Accept is called at most once
// per request, with every valid, not-duplicate event of it, and the
// request is answered 200 only if Accept returns nil; if it returns an
// error, none of the events count as accepted (the client retries them
// all), so an Accepter must take all of them or none.
//
// Accept is called from many goroutines at once and must be safe for
// concurrent use.
//
// # Parameters
//
//   - ctx is canceled only when a [Server.Shutdown] gives up waiting for
//     in-flight requests; it carries no per-request deadline.
//   - source is the [Source.Name] the write key authenticated.
//   - events holds one normalized event per element: a complete JSON
//     object, in request order. The slices, and the bytes they point to,
//     belong to the server and are reused for later requests as soon as
//     Accept returns: an Accepter that keeps an event after returning must
//     copy it (appending it to a database that copies, as the queue's Append does,
//     is enough).
//
// # Results
//
// nil: the events are accepted and the client is answered 200. An error
// wrapping [ErrBackpressure]: 429 with Retry-After. Any other error: 500,
// and the error is logged (the client is told only that storing failed).
type Accepter interface {
	Accept(ctx context.Context, source string, events [][]byte) error
}

// AccepterFunc adapts a function to [Accepter].
type AccepterFunc func(ctx context.Context, source string, events [][]byte) error

// Accept calls f.
func (f AccepterFunc) Accept(ctx context.Context, source string, events [][]byte) error {
	return f(ctx, source, events)
}

// Option changes an optional part of a [Server].
type Option func(*options)

type options struct {
	logger *slog.Logger
	now    func() time.Time
	peers  DedupePeers
}

// DedupePeers share the messageIds a host accepted with the other hosts of
// a cluster, so that a client's retry that reaches another host is caught
// there too (see [Server.RememberAccepted] for the other direction).
type DedupePeers interface {
	// Accepted is told the messageIds of the events a source accepted,
	// once the Accepter took them. It must not block; ids are its own.
	Accepted(source string, ids []string)
}

// WithDedupePeers shares accepted messageIds with the other hosts of a
// cluster. The default shares nothing.
func WithDedupePeers(p DedupePeers) Option {
	return func(o *options) { o.peers = p }
}

// WithLogger sets where the server logs failures of the Accepter and of
// connections. The default discards them.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithClock sets the clock that stamps receivedAt; tests use it. The
// default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// Server is a Segment-compatible ingest server. Build it with [New]; its
// methods are safe for concurrent use.
type Server struct {
	cfg     Config
	acc     Accepter
	log     *slog.Logger
	noisy   *logthrottle.Throttle // failures that repeat per request
	now     func() time.Time
	sources map[string]*source // by write key
	byName  map[string]*source
	peers   DedupePeers // nil: no other host
	hash    hasher
	srv     *fasthttp.Server
	pool    sync.Pool // of *scratch
	stats   counters

	// acceptCtx is passed to Accept; cancel ends it when Shutdown gives up.
	acceptCtx context.Context
	cancel    context.CancelFunc

	mu        sync.Mutex
	closed    bool           // Shutdown was called
	listeners []net.Listener // given to Serve
}

// sharePeers tells the other hosts the messageIds of sc's accepted events.
func (s *Server) sharePeers(sc *scratch, src *source) {
	var ids []string
	for _, sp := range sc.spans {
		if sp.dedupe && !sp.dup {
			ids = append(ids, gjson.GetBytes(sc.out[sp.start:sp.end], "messageId").String())
		}
	}
	if len(ids) > 0 {
		s.peers.Accepted(src.name, ids)
	}
}

// RememberAccepted adds messageIds another host of the cluster accepted
// for the named source to its dedupe window, so that a retry of one of
// them sent here is answered as a duplicate. An unknown source, or one
// without a window, changes nothing.
func (s *Server) RememberAccepted(sourceName string, ids []string) {
	src := s.byName[sourceName]
	if src == nil || src.window == nil {
		return
	}
	src.window.mu.Lock()
	for _, id := range ids {
		if id != "" {
			src.window.addLocked(s.hash.key(id))
		}
	}
	src.window.mu.Unlock()
}

// source is one configured source and its dedupe window (nil when
// deduplication is off).
type source struct {
	name    string
	window  *window
	origins origins // the browser origins it accepts
}

// New returns a server for sources that hands accepted events to acc.
// It does not listen yet: call [Server.ListenAndServe] or [Server.Serve],
// or mount [Server.Handler] in a fasthttp server of your own.
//
// # Parameters
//
//   - cfg: the zero value is usable; zero fields take their defaults.
//   - sources: at least one; names unique, every write key non-empty and
//     naming one source. New keeps its own copy.
//   - acc: receives the events; see [Accepter] for its contract.
//
// # Results
//
// An error names every problem in cfg and sources.
func New(cfg Config, sources []Source, acc Accepter, opts ...Option) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if len(sources) == 0 {
		err = errors.Join(err, errors.New("server: no source configured; events need a source with a write key"))
	}
	if acc == nil {
		err = errors.Join(err, errors.New("server: the Accepter is nil"))
	}
	if err = errors.Join(err, checkSources(sources)); err != nil {
		return nil, err
	}
	o := options{logger: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		cfg:     cfg,
		acc:     acc,
		log:     o.logger,
		noisy:   logthrottle.New(o.logger, 10*time.Second),
		now:     o.now,
		sources: make(map[string]*source),
		byName:  make(map[string]*source),
		peers:   o.peers,
		hash:    newHasher(),
	}
	s.pool.New = func() any { return new(scratch) }
	for _, src := range sources {
		st := &source{name: src.Name}
		st.origins, _ = newOrigins(src.AllowedOrigins) // checked by checkSources
		if cfg.DedupeWindow > 0 {
			st.window = newWindow(cfg.DedupeWindow)
		}
		for _, k := range src.WriteKeys {
			s.sources[k] = st
		}
		s.byName[src.Name] = st
	}
	s.acceptCtx, s.cancel = context.WithCancel(context.Background())
	s.srv = &fasthttp.Server{
		Handler:            s.handle,
		ErrorHandler:       s.handleError,
		Name:               "insertfn",
		ReadBufferSize:     cfg.MaxHeaderBytes,
		ReadTimeout:        cfg.ReadTimeout,
		WriteTimeout:       cfg.WriteTimeout,
		IdleTimeout:        cfg.IdleTimeout,
		MaxRequestBodySize: cfg.wireLimit(),
		StreamRequestBody:  true, // the handler reads the body: see readWire
		// With streaming, fasthttp would read a multipart body whole (large
		// parts into temporary files) before the handler could refuse it.
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		NoDefaultContentType:         true,
		Logger:                       fasthttpLogger{s.log},
	}
	return s, nil
}

// Config returns the configuration in use, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Handler returns the request handler, for mounting in a fasthttp server
// of the caller's own (Serve and ListenAndServe use it too). The handler
// bounds bodies itself; with StreamRequestBody it also reads and discards
// an oversized body as [Config.MaxBatchBytes] documents, so the client
// gets its 413.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// Serve serves HTTP on ln until [Server.Shutdown] is called, then returns
// nil (or [ErrServerClosed] if Shutdown came first). Any other error is
// the listener's.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	err := s.srv.Serve(ln)
	if err != nil && errors.Is(err, net.ErrClosed) && s.isClosed() {
		return nil // Shutdown closed ln before fasthttp knew of it
	}
	return err
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// ListenAndServe listens on [Config.Listen] and serves HTTP there, as
// [Server.Serve] does.
func (s *Server) ListenAndServe() error {
	if s.isClosed() {
		return ErrServerClosed
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listening on %s (the listen setting): %w", s.cfg.Listen, err)
	}
	return s.Serve(ln)
}

// Shutdown stops the server gracefully: it closes the listeners, lets the
// requests in flight finish (each answered as usual: 200 only once Accept
// returned nil), closes idle connections and returns once no connection
// is left. If ctx ends first, Shutdown cancels the context of the Accept
// calls still running (their requests are answered 503) and returns
// ctx's error. After Shutdown, Serve and ListenAndServe fail with
// [ErrServerClosed].
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	lns := s.listeners
	s.listeners = nil
	s.mu.Unlock()
	err := s.srv.ShutdownWithContext(ctx)
	for _, ln := range lns {
		// fasthttp closed the listeners it had registered; this closes one
		// a concurrent Serve had not yet handed to it.
		_ = ln.Close()
	}
	if err != nil {
		s.cancel()
		return fmt.Errorf("server: shutdown did not finish in time; in-flight requests were abandoned: %w", err)
	}
	return nil
}

// fasthttpLogger sends fasthttp's own messages (connection errors) to the
// server's logger at debug level.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	if f.l.Enabled(context.Background(), slog.LevelDebug) {
		f.l.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
	}
}

// scratch holds the buffers of one request; the server pools them. Every
// field is reset (not freed) between requests.
type scratch struct {
	auth     []byte             // decoded Basic credentials
	wire     []byte             // the body as sent
	body     []byte             // inflated gzip body
	clean    []byte             // the body rewritten by cleanBody
	br       bytes.Reader       // reads the gzip body
	gz       *gzip.Reader       // reused inflater
	out      []byte             // normalized events, back to back
	spans    []span             // one per valid event
	events   [][]byte           // what Accept gets: views of out
	members  []member           // its members copied as they are
	merged   []namedMember      // the members of its context, reordered
	index    bodyIndex          // the body's members, a batch's events
	inReq    map[idKey]struct{} // dedupe keys seen in this request
	rejected []rejected         // invalid events of a batch
	received []byte             // receivedAt, formatted
	resp     []byte             // response body
}

// span locates one normalized event in scratch.out.
type span struct {
	start, end int
	key        idKey
	dedupe     bool // key is a client messageId
	dup        bool // a duplicate: not handed to Accept
}

// rejected is an invalid event of a batch.
type rejected struct {
	index int
	p     problem
}

// maxPooled is the largest buffer kept for reuse; larger ones (after an
// unusually big request) are left to the garbage collector.
const maxPooled = 4 << 20

func (s *Server) putScratch(sc *scratch) {
	if cap(sc.out) > maxPooled {
		sc.out = nil
	}
	if cap(sc.body) > maxPooled {
		sc.body = nil
	}
	if cap(sc.wire) > maxPooled {
		sc.wire = nil
	}
	sc.wire = sc.wire[:0]
	if cap(sc.clean) > maxPooled {
		sc.clean = nil
	}
	sc.clean = sc.clean[:0]
	sc.out, sc.body, sc.spans, sc.events = sc.out[:0], sc.body[:0], sc.spans[:0], sc.events[:0]
	clear(sc.events[:cap(sc.events)]) // do not keep views of out alive past their use
	sc.rejected, sc.resp, sc.received = sc.rejected[:0], sc.resp[:0], sc.received[:0]
	clear(sc.members[:cap(sc.members)])
	clear(sc.merged[:cap(sc.merged)])
	sc.index.release()
	clear(sc.inReq)
	s.pool.Put(sc)
}

// Request-level problems.
var (
	errNotFound       = problem{404, "no such endpoint: use POST /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias, /v1/batch or /v1/import (or analytics.js's /v1/t, /v1/i, /v1/p, /v1/s, /v1/g, /v1/a, /v1/b)"}
	errMethod         = problem{405, "method not allowed: the tracking API takes POST"}
	errNoKey          = problem{401, "missing write key: send it as the HTTP Basic auth user name (empty password) or as writeKey in the body"}
	errUnknownKey     = problem{401, "unknown write key: no source has this write key"}
	errBadAuth        = problem{401, "the Authorization header is not HTTP Basic auth: send the write key as the user name with an empty password"}
	errEncoding       = problem{415, "unsupported Content-Encoding: send the body uncompressed or with Content-Encoding: gzip"}
	errBadGzip        = problem{400, "the body is not valid gzip although Content-Encoding says gzip"}
	errBadJSON        = problem{400, "the body is not valid JSON"}
	errBodyNotObject  = problem{400, "the body must be a JSON object"}
	errEventBody      = problem{413, "the body is larger than the per-event limit (max_event_bytes); split it or send less"}
	errBatchBody      = problem{413, "the batch is larger than the batch limit (max_batch_bytes); send smaller batches"}
	errBatchCount     = problem{413, "the batch has more events than the limit (max_batch_events); send smaller batches"}
	errNoBatch        = problem{400, `the body needs "batch": an array of event objects`}
	errBatchContext   = problem{400, "the batch's top-level context must be a JSON object"}
	errBatchIntegs    = problem{400, "the batch's top-level integrations must be a JSON object"}
	errBatchSentAt    = problem{400, "the batch's sentAt must be an ISO 8601 date-time string such as 2024-05-01T12:00:00.000Z"}
	errBackpressure   = problem{429, "the server's event queue is full (a destination is not keeping up); retry after the Retry-After seconds"}
	errShuttingDown   = problem{503, "the server is shutting down; retry later"}
	errStore          = problem{500, "the server could not store the events; retry later"}
	errMalformedHTTP  = problem{400, "malformed HTTP request"}
	errBodyRead       = problem{400, "the request body could not be read to its end (the client stopped sending, or bad chunked encoding)"}
	errHeaderTooLarge = problem{431, "the request headers are larger than the server reads (server.max_header_bytes); send fewer or shorter headers"}
	errReadTimeout    = problem{408, "the request was not received within the server's read timeout (server.read_timeout)"}
	errHTTPBodyTooBig = problem{413, "the request body is larger than the server accepts (max_batch_bytes)"}
)

// route maps a path to the type its single call sets; batch reports the
// batch paths.
func route(path []byte) (typ segment.EventType, batch, ok bool) {
	switch string(path) {
	case "/v1/batch", "/v1/import", "/v1/b":
		return segment.Other, true, true
	case "/v1/track", "/v1/t":
		return segment.Track, false, true
	case "/v1/identify", "/v1/i":
		return segment.Identify, false, true
	case "/v1/page", "/v1/p":
		return segment.Page, false, true
	case "/v1/screen", "/v1/s":
		return segment.Screen, false, true
	case "/v1/group", "/v1/g":
		return segment.Group, false, true
	case "/v1/alias", "/v1/a":
		return segment.Alias, false, true
	}
	return segment.Other, false, false
}

// handle serves one request.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	s.stats.requests.Add(1)
	typ, batch, ok := route(ctx.Path())
	metrics := !ok && string(ctx.Path()) == metricsPath
	origin := ctx.Request.Header.Peek("Origin")
	if (ok || metrics) && ctx.IsOptions() {
		s.discardBody(ctx)
		s.preflight(ctx, origin)
		return
	}
	if len(origin) > 0 {
		allowOrigin(ctx, origin)
	}
	if metrics && ctx.IsPost() {
		s.clientMetrics(ctx)
		return
	}
	if !ok {
		s.stats.notFound.Add(1)
		s.discardBody(ctx)
		s.fail(ctx, nil, errNotFound)
		return
	}
	if !ctx.IsPost() {
		s.stats.methodNotAllowed.Add(1)
		s.discardBody(ctx)
		ctx.Response.Header.Set("Allow", "POST, OPTIONS")
		s.fail(ctx, nil, errMethod)
		return
	}
	sc := s.pool.Get().(*scratch)
	defer s.putScratch(sc)

	limit, tooBig := s.cfg.MaxEventBytes, errEventBody
	if batch {
		limit, tooBig = s.cfg.MaxBatchBytes, errBatchBody
	}
	// The body as sent, read whole before anything is answered (as
	// fasthttp does without streaming), so that a refusal reaches a
	// client that writes its whole body before it reads.
	raw, p := s.readWire(ctx, sc, limit, tooBig)
	if !p.ok() {
		if p.status == 413 {
			s.stats.tooLarge.Add(1)
		} else {
			s.stats.malformed.Add(1)
		}
		s.fail(ctx, sc, p)
		return
	}

	var src *source
	if auth := ctx.Request.Header.Peek("Authorization"); len(auth) > 0 {
		key, ok := basicUser(sc, auth)
		if !ok {
			s.stats.unauthorized.Add(1)
			s.fail(ctx, sc, errBadAuth)
			return
		}
		if src = s.sources[string(key)]; src == nil {
			s.stats.unauthorized.Add(1)
			s.fail(ctx, sc, errUnknownKey)
			return
		}
	}

	body, p := s.readBody(ctx, sc, raw, limit, tooBig)
	if !p.ok() {
		if p.status == 413 {
			s.stats.tooLarge.Add(1)
		} else {
			s.stats.malformed.Add(1)
		}
		s.fail(ctx, sc, p)
		return
	}
	// A view of the body: gjson then returns substrings of it instead of
	// copies. Nothing read from it outlives the request (normalize copies
	// what it keeps into sc.out).
	js := unsafe.String(unsafe.SliceData(body), len(body))
	if !scanBody(js, &sc.index) {
		s.stats.malformed.Add(1)
		s.fail(ctx, sc, errBadJSON)
		return
	}
	if sc.index.unclean {
		// A repeated member name or invalid UTF-8: store what every reader
		// reads alike (see cleanBody), and read that.
		s.stats.cleaned.Add(1)
		sc.clean = cleanBody(sc.clean[:0], js)
		js = unsafe.String(unsafe.SliceData(sc.clean), len(sc.clean))
		sc.index.reset()
		if !scanBody(js, &sc.index) || sc.index.unclean {
			s.stats.malformed.Add(1)
			s.fail(ctx, sc, errBadJSON)
			return
		}
	}
	if !sc.index.object {
		s.stats.malformed.Add(1)
		s.fail(ctx, sc, errBodyNotObject)
		return
	}
	if src == nil {
		wk := sc.index.member("writeKey")
		if wk.Type != gjson.String || wk.Str == "" {
			s.stats.unauthorized.Add(1)
			s.fail(ctx, sc, errNoKey)
			return
		}
		if src = s.sources[wk.Str]; src == nil {
			s.stats.unauthorized.Add(1)
			s.fail(ctx, sc, errUnknownKey)
			return
		}
	}

	if len(origin) > 0 && !src.origins.allows(origin) {
		s.stats.forbiddenOrigin.Add(1)
		s.fail(ctx, sc, errOrigin)
		return
	}

	now := s.now().UTC()
	sc.received = segment.AppendTime(sc.received[:0], now)
	if batch {
		if p := s.normalizeBatch(sc, &sc.index, now); !p.ok() {
			s.fail(ctx, sc, p)
			return
		}
	} else {
		s.stats.events.Add(1)
		key, dedupe, p := normalize(sc, sc.index.bodyView(), typ, &shared{}, now, s.hash)
		if !p.ok() {
			s.stats.invalidEvents.Add(1)
			s.fail(ctx, sc, p)
			return
		}
		sc.spans = append(sc.spans, span{start: 0, end: len(sc.out), key: key, dedupe: dedupe})
	}
	s.accept(ctx, sc, src)
}

// normalizeBatch normalizes the events of a batch body, indexed by
// scanBody, into sc. A problem refuses the whole batch.
func (s *Server) normalizeBatch(sc *scratch, x *bodyIndex, now time.Time) problem {
	sh := shared{context: x.member("context"), integrations: x.member("integrations"), sentAt: x.member("sentAt"),
		contextMembers: x.span(x.contexts, x.context)}
	if !x.hasBatch {
		s.stats.malformed.Add(1)
		return errNoBatch
	}
	if present(sh.context) && !sh.context.IsObject() {
		s.stats.malformed.Add(1)
		return errBatchContext
	}
	if present(sh.integrations) && !sh.integrations.IsObject() {
		s.stats.malformed.Add(1)
		return errBatchIntegs
	}
	if present(sh.sentAt) {
		if _, form := parseTimeField(sh.sentAt); form == segment.TimeInvalid {
			s.stats.malformed.Add(1)
			return errBatchSentAt
		}
	}
	i := 0
	for e := range x.elements {
		raw := x.elements[e].raw
		if i == s.cfg.MaxBatchEvents {
			i++ // one too many: the whole batch is refused below
			break
		}
		var p problem
		var key idKey
		var dedupe bool
		start := len(sc.out)
		if len(raw) > s.cfg.MaxEventBytes {
			p = errEventTooLarge
		} else {
			key, dedupe, p = normalize(sc, x.view(e), segment.Other, &sh, now, s.hash)
		}
		if p.ok() {
			sc.spans = append(sc.spans, span{start: start, end: len(sc.out), key: key, dedupe: dedupe})
		} else {
			sc.rejected = append(sc.rejected, rejected{index: i, p: p})
		}
		i++
		if s.cfg.StrictBatch && !p.ok() {
			break
		}
	}
	if i > s.cfg.MaxBatchEvents {
		sc.out, sc.spans, sc.rejected = sc.out[:0], sc.spans[:0], sc.rejected[:0]
		s.stats.tooLarge.Add(1)
		return errBatchCount
	}
	s.stats.events.Add(uint64(i))
	if len(sc.rejected) > 0 {
		s.stats.invalidEvents.Add(uint64(len(sc.rejected)))
		if s.cfg.StrictBatch || len(sc.spans) == 0 {
			r := sc.rejected[0]
			return problem{r.p.status, "batch[" + strconv.Itoa(r.index) + "]: " + r.p.msg}
		}
	}
	return problem{}
}

// accept drops duplicates, hands the rest of sc's events to the Accepter
// and answers.
func (s *Server) accept(ctx *fasthttp.RequestCtx, sc *scratch, src *source) {
	dups := 0
	if src.window != nil {
		if sc.inReq == nil {
			sc.inReq = make(map[idKey]struct{})
		}
		src.window.mu.Lock()
		for i := range sc.spans {
			sp := &sc.spans[i]
			if !sp.dedupe {
				continue
			}
			if _, again := sc.inReq[sp.key]; again || src.window.containsLocked(sp.key) {
				sp.dup = true
				dups++
				continue
			}
			sc.inReq[sp.key] = struct{}{}
		}
		src.window.mu.Unlock()
	}
	for _, sp := range sc.spans {
		if !sp.dup {
			sc.events = append(sc.events, sc.out[sp.start:sp.end])
		}
	}
	if len(sc.events) > 0 {
		if err := s.acc.Accept(s.acceptCtx, src.name, sc.events); err != nil {
			if errors.Is(err, ErrBackpressure) || s.acceptCtx.Err() != nil {
				s.stats.backpressure.Add(1)
				secs := int((s.cfg.RetryAfter + time.Second - 1) / time.Second)
				ctx.Response.Header.Set("Retry-After", strconv.Itoa(secs))
				if s.acceptCtx.Err() != nil {
					s.fail(ctx, sc, errShuttingDown)
				} else {
					s.fail(ctx, sc, errBackpressure)
				}
				return
			}
			s.stats.storeFailed.Add(1)
			s.noisy.Log(slog.LevelError, "accept", "the Accepter refused events; answered 500",
				"source", src.name, "events", len(sc.events), "error", err)
			s.fail(ctx, sc, errStore)
			return
		}
		if src.window != nil {
			src.window.mu.Lock()
			for _, sp := range sc.spans {
				if sp.dedupe && !sp.dup {
					src.window.addLocked(sp.key)
				}
			}
			src.window.mu.Unlock()
			if s.peers != nil {
				s.sharePeers(sc, src)
			}
		}
	}
	s.stats.accepted.Add(uint64(len(sc.events)))
	s.stats.duplicates.Add(uint64(dups))
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	if len(sc.rejected) == 0 {
		ctx.SetBodyString(`{"success":true}`)
		return
	}
	sc.resp = append(sc.resp[:0], `{"success":true,"rejected":`...)
	sc.resp = appendRejected(sc.resp, sc.rejected)
	sc.resp = append(sc.resp, '}')
	ctx.SetBody(sc.resp)
}

// maxListed bounds the rejected events listed in one answer.
const maxListed = 100

func appendRejected(b []byte, rs []rejected) []byte {
	b = append(b, '[')
	for i, r := range rs {
		if i == maxListed {
			break
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(r.index), 10)
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(r.p.status), 10)
		b = append(b, `,"error":`...)
		b = appendJSONString(b, r.p.msg)
		b = append(b, '}')
	}
	return append(b, ']')
}

// readWire returns the request body as sent, refusing one longer than
// limit (uncompressed) or the wire limit (gzip). An oversized body is read
// and discarded up to the drain limit, so the client, which may be still
// writing it, reads the 413 instead of a reset connection; past the drain
// limit (or when Content-Length says it will be passed) the connection is
// closed after the 413.
func (s *Server) readWire(ctx *fasthttp.RequestCtx, sc *scratch, limit int, tooBig problem) ([]byte, problem) {
	if enc := ctx.Request.Header.ContentEncoding(); len(enc) > 0 && string(enc) != "identity" {
		limit = s.cfg.wireLimit()
	}
	if !ctx.Request.IsBodyStream() { // a server of the caller's own, without streaming
		raw := ctx.Request.Body()
		if len(raw) > limit {
			return nil, tooBig
		}
		return raw, problem{}
	}
	if n := ctx.Request.Header.ContentLength(); n > limit {
		if n > s.cfg.drainLimit() {
			ctx.SetConnectionClose()
		} else {
			s.discardBody(ctx)
		}
		return nil, tooBig
	}
	r := ctx.RequestBodyStream()
	buf := sc.wire[:0]
	if n := ctx.Request.Header.ContentLength(); n > 0 {
		buf = slices.Grow(buf, n+1)
	}
	for len(buf) <= limit {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(max(cap(buf), 8<<10), limit+1-len(buf)))
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			sc.wire = buf
			ctx.SetConnectionClose()
			return nil, errBodyRead
		}
	}
	sc.wire = buf
	if len(buf) > limit {
		s.discardBody(ctx)
		return nil, tooBig
	}
	return buf, problem{}
}

// discardBody reads what is left of a streamed request body, up to the
// drain limit, and closes the connection after the answer when more is
// left or the body cannot be read.
func (s *Server) discardBody(ctx *fasthttp.RequestCtx) {
	if !ctx.Request.IsBodyStream() {
		return
	}
	if n := ctx.Request.Header.ContentLength(); n > s.cfg.drainLimit() {
		ctx.SetConnectionClose()
		return
	}
	// One byte more than the limit tells a body that goes on.
	if _, err := io.CopyN(io.Discard, ctx.RequestBodyStream(), int64(s.cfg.drainLimit())+1); err != io.EOF {
		ctx.SetConnectionClose()
	}
}

// readBody returns the request body raw, inflated if it is gzip, refusing
// one over limit.
func (s *Server) readBody(ctx *fasthttp.RequestCtx, sc *scratch, raw []byte, limit int, tooBig problem) ([]byte, problem) {
	enc := ctx.Request.Header.ContentEncoding()
	switch {
	case len(enc) == 0 || string(enc) == "identity":
		if len(raw) > limit {
			return nil, tooBig
		}
		return raw, problem{}
	case string(enc) == "gzip" || string(enc) == "x-gzip":
	default:
		return nil, errEncoding
	}
	sc.br.Reset(raw)
	if sc.gz == nil {
		gz, err := gzip.NewReader(&sc.br)
		if err != nil {
			return nil, errBadGzip
		}
		sc.gz = gz
	} else if err := sc.gz.Reset(&sc.br); err != nil {
		return nil, errBadGzip
	}
	// Read at most limit+1 bytes: one more than allowed tells a body over
	// the limit, and the rest of a gzip bomb is never inflated.
	buf := sc.body[:0]
	for len(buf) <= limit {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(max(cap(buf), 4<<10, 2*len(raw)), limit+1-len(buf)))
		}
		n, err := sc.gz.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			sc.body = buf
			return nil, errBadGzip
		}
	}
	sc.body = buf
	if len(buf) > limit {
		return nil, tooBig
	}
	return buf, problem{}
}

// basicUser returns the user name of a Basic Authorization header,
// decoded into sc.auth.
func basicUser(sc *scratch, auth []byte) ([]byte, bool) {
	const prefix = "basic "
	if len(auth) <= len(prefix) || !bytes.EqualFold(auth[:len(prefix)], []byte(prefix)) {
		return nil, false
	}
	enc := bytes.TrimSpace(auth[len(prefix):])
	need := base64.StdEncoding.DecodedLen(len(enc))
	if cap(sc.auth) < need {
		sc.auth = make([]byte, need)
	}
	n, err := base64.StdEncoding.Decode(sc.auth[:need], enc)
	if err != nil {
		return nil, false
	}
	cred := sc.auth[:n]
	if i := bytes.IndexByte(cred, ':'); i >= 0 {
		cred = cred[:i]
	}
	return cred, len(cred) > 0
}

// fail answers p as {"success":false,"error":...}. sc may be nil.
func (s *Server) fail(ctx *fasthttp.RequestCtx, sc *scratch, p problem) {
	ctx.SetStatusCode(p.status)
	ctx.SetContentType("application/json")
	var b []byte
	if sc != nil {
		b = sc.resp[:0]
	}
	b = append(b, `{"success":false,"error":`...)
	b = appendJSONString(b, p.msg)
	if sc != nil && len(sc.rejected) > 0 {
		b = append(b, `,"rejected":`...)
		b = appendRejected(b, sc.rejected)
	}
	b = append(b, '}')
	ctx.SetBody(b)
	if sc != nil {
		sc.resp = b
	}
}

// handleError answers the requests fasthttp could not parse.
// They are answered in JSON like every other refusal.
func (s *Server) handleError(ctx *fasthttp.RequestCtx, err error) {
	// fasthttp has reset the request by now, so its Origin is gone: any
	// origin may read these answers (they carry no credentials, only why).
	ctx.Response.Header.Set("Access-Control-Allow-Origin", "*")
	s.stats.requests.Add(1)
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.stats.tooLarge.Add(1)
		s.fail(ctx, nil, errHTTPBodyTooBig)
	case errors.As(err, &small):
		s.stats.tooLarge.Add(1)
		s.fail(ctx, nil, errHeaderTooLarge)
	case errors.As(err, &netErr) && netErr.Timeout():
		s.stats.malformed.Add(1)
		s.fail(ctx, nil, errReadTimeout)
	default:
		s.stats.malformed.Add(1)
		s.fail(ctx, nil, errMalformedHTTP)
	}
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hexdig = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexdig[c>>4], hexdig[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
