package admin

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/pipeline/destfilter"
	"github.com/insertfn/insertfn/internal/pipeline/tap"
)

// Client calls the admin API, for the CLI (insertfn deploy, functions,
// rollback). The zero value is not usable: set URL and Token.
type Client struct {
	// URL is the admin API's base, such as http://127.0.0.1:8081.
	URL string
	// Token is the bearer token.
	Token string
	// HTTP sends the requests; nil: http.DefaultClient.
	HTTP *http.Client
}

// APIError is an answer of the admin API other than a success.
type APIError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is the API's {"error"} message, or the body's start when the
	// answer was not the API's JSON.
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("admin API: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Deploy uploads a new version of m.Name and makes it live (PUT
// /admin/functions/{name}). m carries the settings, limits, failure
// policy and retries; its Wasm is ignored.
//
// # Results
//   - the version, now active; its Unchanged is set when it already was
//     (the same wasm and manifest: the server changed nothing);
//   - an *[APIError] with status 422 and the reason when the module or
//     manifest was refused (the old version stays live), or another
//     error.
func (c *Client) Deploy(ctx context.Context, m functions.Manifest, wasm []byte) (functions.VersionInfo, error) {
	var info functions.VersionInfo
	m.Wasm = ""
	hdr, err := json.Marshal(&m)
	if err != nil {
		return info, fmt.Errorf("admin: manifest: %w", err)
	}
	err = c.do(ctx, http.MethodPut, "/admin/functions/"+url.PathEscape(m.Name), nil, bytes.NewReader(wasm),
		map[string]string{ManifestHeader: string(hdr), "Content-Type": "application/wasm"}, &info)
	return info, err
}

// Functions lists the functions and their versions (GET /admin/functions).
func (c *Client) Functions(ctx context.Context) ([]FunctionInfo, error) {
	var out FunctionList
	if err := c.do(ctx, http.MethodGet, "/admin/functions", nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Functions, nil
}

// Rollback makes the previous version of a function live again (POST
// /admin/functions/{name}/rollback).
//
// # Results
//   - the version, now active;
//   - an *[APIError] with status 409 when there is no previous version.
func (c *Client) Rollback(ctx context.Context, name string) (functions.VersionInfo, error) {
	var info functions.VersionInfo
	err := c.do(ctx, http.MethodPost, "/admin/functions/"+url.PathEscape(name)+"/rollback", nil, nil, nil, &info)
	return info, err
}

// Activate makes a stored version of a function live (POST
// /admin/functions/{name}/activate?version=HASH).
func (c *Client) Activate(ctx context.Context, name, hash string) (functions.VersionInfo, error) {
	var info functions.VersionInfo
	err := c.do(ctx, http.MethodPost, "/admin/functions/"+url.PathEscape(name)+"/activate", url.Values{"version": {hash}}, nil, nil, &info)
	return info, err
}

// Delete removes a function and its stored versions (DELETE
// /admin/functions/{name}).
func (c *Client) Delete(ctx context.Context, name string) error {
	var out DeleteResult
	return c.do(ctx, http.MethodDelete, "/admin/functions/"+url.PathEscape(name), nil, nil, nil, &out)
}

// Test runs an event through a function's live version (POST
// /admin/functions/{name}/test); req.Settings and req.Consent are
// optional.
func (c *Client) Test(ctx context.Context, name string, req TestRequest) (TestResult, error) {
	var out TestResult
	body, err := json.Marshal(&req)
	if err != nil {
		return out, fmt.Errorf("admin: test request: %w", err)
	}
	err = c.do(ctx, http.MethodPost, "/admin/functions/"+url.PathEscape(name)+"/test", nil, bytes.NewReader(body),
		map[string]string{"Content-Type": "application/json"}, &out)
	return out, err
}

// GetFilters returns the filters destination applies now (GET
// /admin/destinations/{name}/filters).
func (c *Client) GetFilters(ctx context.Context, destination string) ([]destfilter.Filter, error) {
	var out []destfilter.Filter
	err := c.do(ctx, http.MethodGet, filtersPath(destination), nil, nil, nil, &out)
	return out, err
}

// SetFilters replaces the filters of destination (PUT
// /admin/destinations/{name}/filters); the server keeps them across
// restarts.
//
// # Results
//   - the filters, now applied;
//   - an *[APIError] with status 422 when they do not compile (its
//     message names each filter, key and FQL position; the filters in
//     place stay), 404 when there is no such destination, or another
//     error.
func (c *Client) SetFilters(ctx context.Context, destination string, filters []destfilter.Filter) ([]destfilter.Filter, error) {
	if filters == nil {
		filters = []destfilter.Filter{}
	}
	body, err := json.Marshal(filters)
	if err != nil {
		return nil, fmt.Errorf("admin: filters: %w", err)
	}
	var out []destfilter.Filter
	err = c.do(ctx, http.MethodPut, filtersPath(destination), nil, bytes.NewReader(body),
		map[string]string{"Content-Type": "application/json"}, &out)
	return out, err
}

// ResetFilters forgets the filters set through the admin API: the
// configuration's apply again (DELETE /admin/destinations/{name}/filters).
// It returns them.
func (c *Client) ResetFilters(ctx context.Context, destination string) ([]destfilter.Filter, error) {
	var out []destfilter.Filter
	err := c.do(ctx, http.MethodDelete, filtersPath(destination), nil, nil, nil, &out)
	return out, err
}

// TestFilter evaluates an FQL expression, or applies a list of filters
// or a destination's, on an event (POST /admin/filters/test).
//
// # Results
//   - the result (see [FilterTestResult]);
//   - an *[APIError] with status 422 when the expression does not parse
//     or the filters do not compile, 400 when the request is malformed.
func (c *Client) TestFilter(ctx context.Context, req FilterTestRequest) (FilterTestResult, error) {
	var out FilterTestResult
	body, err := json.Marshal(&req)
	if err != nil {
		return out, fmt.Errorf("admin: filter test request: %w", err)
	}
	err = c.do(ctx, http.MethodPost, "/admin/filters/test", nil, bytes.NewReader(body),
		map[string]string{"Content-Type": "application/json"}, &out)
	return out, err
}

func filtersPath(destination string) string {
	return "/admin/destinations/" + url.PathEscape(destination) + "/filters"
}

// do sends one request and decodes the JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body io.Reader, header map[string]string, out any) error {
	if c.URL == "" {
		return errors.New("admin: no admin API URL (--admin http://127.0.0.1:8081)")
	}
	u := strings.TrimRight(c.URL, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes))
	if err != nil {
		return fmt.Errorf("admin: %s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e errorBody
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b[:min(len(b), 200)]))
		}
		return &APIError{StatusCode: resp.StatusCode, Message: e.Error}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin: %s %s: the answer is not what the admin API sends: %w", method, path, err)
	}
	return nil
}

// TailQuery chooses what [Client.Tail] streams. The zero value follows
// every record as it comes, without the events themselves.
type TailQuery struct {
	// Filter: source, type, user, fate, the events themselves (Full), the
	// rate and the sample (see [tap.Filter]).
	Filter tap.Filter
	// Recent sends first up to this many of the last records the server
	// kept (at most [tap.HistorySize]).
	Recent int
	// NoFollow ends the stream after the recent records.
	NoFollow bool
}

// values returns q as GET /admin/tail's query.
func (q TailQuery) values() url.Values {
	v := url.Values{}
	f := q.Filter
	for name, s := range map[string]string{"source": f.Source, "type": f.Type, "user": f.User, "fate": string(f.Fate)} {
		if s != "" {
			v.Set(name, s)
		}
	}
	for name, n := range map[string]int{"rate": f.Rate, "sample": f.Sample, "n": q.Recent} {
		if n != 0 {
			v.Set(name, strconv.Itoa(n))
		}
	}
	if f.Full {
		v.Set("full", "1")
	}
	if q.NoFollow {
		v.Set("follow", "0")
	}
	return v
}

// TailMessage is one message of a tail stream: a record, or a count of
// records the server left out.
type TailMessage struct {
	// Record is what became of an event at one stage; nil in a Missed
	// message.
	Record *tap.Record
	// Missed is how many records the server left out because the stream
	// fell behind (the client read too slowly, or events came faster
	// than the stream's buffer).
	Missed uint64
}

// Client-side limits of a tail stream.
const (
	// maxTailLine bounds one line of a tail stream: a record with its
	// payload (at most tap.MaxPayload, up to six times that when a
	// payload that is not JSON is escaped as a string) and its other
	// fields, with room to spare.
	maxTailLine = 1 << 20
	// tailSilence is how long a stream may send nothing, keep-alive
	// comments included, before the client gives up on it.
	tailSilence = 3 * TailKeepAlive
	// defaultTailConnect bounds the wait for a stream's answer when the
	// client has no timeout of its own.
	defaultTailConnect = 30 * time.Second
)

// ErrTailEnded is what [Client.Tail] returns when the server ended a
// stream that follows records: it is shutting down.
var ErrTailEnded = errors.New("admin: the server ended the tail stream (it is shutting down)")

// Tail streams what becomes of events (GET /admin/tail) and calls fn for
// each message, in order, until ctx is done, fn returns an error, or the
// stream ends.
//
// The client's HTTP.Timeout bounds only the wait for the answer (30 s
// without one): a stream lasts as long as it is read. A stream silent for
// three keep-alive intervals is given up with an error.
//
// # Results
//   - nil when a stream with q.NoFollow ended after its records;
//   - ctx's error when ctx is done;
//   - fn's error when fn returns one;
//   - [ErrTailEnded] when the server ended a following stream;
//   - an *[APIError] when the server refused the query (400 naming the
//     parameter, 401 the token, 503 too many streams), or another error
//     (the server could not be reached, the stream broke).
func (c *Client) Tail(ctx context.Context, q TailQuery, fn func(TailMessage) error) error {
	if c.URL == "" {
		return errors.New("admin: no admin API URL (--admin http://127.0.0.1:8081)")
	}
	u := strings.TrimRight(c.URL, "/") + "/admin/tail"
	if v := q.values(); len(v) > 0 {
		u += "?" + v.Encode()
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "text/event-stream")
	hc := http.Client{}
	if c.HTTP != nil {
		hc = *c.HTTP // its transport, without its timeout: that would cut the stream
	}
	connect := cmp.Or(hc.Timeout, defaultTailConnect)
	hc.Timeout = 0

	// The watchdog ends a request without an answer, then a stream gone
	// silent, with the reason as the context's cause.
	var answered atomic.Bool
	watchdog := time.AfterFunc(connect, func() {
		if answered.Load() {
			cancel(fmt.Errorf("admin: the tail stream sent nothing for %v: the server or the network is stalled", tailSilence))
			return
		}
		cancel(fmt.Errorf("admin: GET /admin/tail: no answer within %v", connect))
	})
	defer watchdog.Stop()
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if cause := context.Cause(sctx); cause != nil {
			return cause
		}
		return fmt.Errorf("admin: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e errorBody
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b[:min(len(b), 200)]))
		}
		return &APIError{StatusCode: resp.StatusCode, Message: e.Error}
	}
	answered.Store(true)
	watchdog.Reset(tailSilence)
	err = readTail(resp.Body, func(m TailMessage) error {
		watchdog.Reset(tailSilence)
		return fn(m)
	}, func() { watchdog.Reset(tailSilence) })
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case context.Cause(sctx) != nil: // the watchdog's
		return context.Cause(sctx)
	case err != nil:
		return err
	case !q.NoFollow:
		return ErrTailEnded
	}
	return nil
}

// readTail reads a Server-Sent Events stream from r and calls fn for each
// record ("data" events) and each missed count ("missed" events), and
// alive for every line (comments included); events of other types are
// skipped.
//
// # Results
//   - nil at the end of the stream;
//   - fn's error;
//   - an error saying what was wrong with the stream (a line over
//     maxTailLine, data that is not a record).
func readTail(r io.Reader, fn func(TailMessage) error, alive func()) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxTailLine)
	var event string
	var data []byte
	for sc.Scan() {
		alive()
		line := sc.Bytes()
		if len(line) == 0 { // the end of an event
			if data != nil {
				if err := dispatchTail(event, data, fn); err != nil {
					return err
				}
			}
			event, data = "", nil
			continue
		}
		if line[0] == ':' { // a comment: keep-alive
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			event = string(value)
		case "data":
			if data == nil {
				data = []byte{} // "data:" alone is an event with empty data
			} else {
				data = append(data, '\n')
			}
			data = append(data, value...)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("admin: tail stream: a line longer than %d bytes", maxTailLine)
		}
		return fmt.Errorf("admin: tail stream: %w", err)
	}
	return nil
}

// dispatchTail hands one event of a tail stream to fn.
func dispatchTail(event string, data []byte, fn func(TailMessage) error) error {
	switch event {
	case "", "message":
		var rec tap.Record
		if err := json.Unmarshal(data, &rec); err != nil {
			return fmt.Errorf("admin: tail stream: a record that is not the JSON of one: %w", err)
		}
		return fn(TailMessage{Record: &rec})
	case "missed":
		var m struct {
			Missed uint64 `json:"missed"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("admin: tail stream: a missed count that is not {\"missed\": N}: %w", err)
		}
		return fn(TailMessage{Missed: m.Missed})
	}
	return nil // an event type this client does not know: a newer server's
}
