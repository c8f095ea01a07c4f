package quickjs

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/insertfn/insertfn/runtime/internal/webfetch"
)

// Fetcher does the requests of JavaScript's fetch for an instance (the
// runtime's, which knows the function's allow-list and the event's time
// limit).
type Fetcher interface {
	// Fetch does one request. A *webfetch.ForbiddenError says the URL is
	// not allowed; any other error is the network's.
	Fetch(req *webfetch.Request) (*webfetch.Response, error)
}

// SetFetcher makes f do the instance's fetch calls; nil (the default)
// refuses every URL. Set it before Handle, not during.
func (inst *Instance) SetFetcher(f Fetcher) { inst.fetcher = f }

// fetchRequest is a request as web.js writes it.
type fetchRequest struct {
	Method   string      `json:"method"`
	URL      string      `json:"url"`
	Headers  [][2]string `json:"headers"`
	Body     *string     `json:"body"`
	Body64   *string     `json:"body64"`
	Redirect string      `json:"redirect"`
}

// fetchHead is a response's head as web.js reads it.
type fetchHead struct {
	Status     int         `json:"status"`
	StatusText string      `json:"statusText"`
	URL        string      `json:"url"`
	Redirected bool        `json:"redirected"`
	Headers    [][2]string `json:"headers"`
}

// hostFetch is JavaScript's hostFetch(request): the request as JSON (see
// fetchRequest), done by the instance's Fetcher. It returns a string: "0",
// the response's head as JSON, a newline and the body's text; or "1" and
// the error of a request that failed, "2" and the error of a URL the
// function may not fetch (which web.js both throw as a TypeError). A
// forbidden URL also fails the event (Result.Forbidden), caught or not:
// the function's configuration is wrong.
//
// The body becomes a JavaScript string: its invalid UTF-8 and NUL bytes
// read as U+FFFD.
func (inst *Instance) hostFetch(argc, argv uint32) (uint32, error) {
	if argc != 1 {
		return 0, inst.failure(Trap, fmt.Sprintf("the host function fetch was called with %d arguments", argc), nil)
	}
	arg, err := inst.invoke32(inst.argvGet, uint64(argv), 0)
	if err != nil {
		return 0, err
	}
	p, err := inst.invoke32(inst.getString, uint64(inst.ctxPtr), uint64(arg))
	if err != nil {
		return 0, err
	}
	if p == 0 {
		return 0, inst.failure(MemoryLimit, inst.outOfMemory(), nil)
	}
	raw, _ := cBytes(inst.mem, p, 64<<20)
	var req fetchRequest
	jerr := json.Unmarshal(raw, &req)
	if _, err := inst.invoke(inst.freeCString, uint64(inst.ctxPtr), uint64(p)); err != nil {
		return 0, err
	}
	out := inst.doFetch(&req, jerr)
	return inst.newJSString(out)
}

// doFetch does the request and writes hostFetch's answer.
func (inst *Instance) doFetch(req *fetchRequest, jerr error) string {
	if jerr != nil {
		return "1the request is not what web.js writes: " + jerr.Error()
	}
	r := &webfetch.Request{Method: req.Method, URL: req.URL, Header: req.Headers, Redirect: req.Redirect}
	switch {
	case req.Body64 != nil:
		b, err := base64.StdEncoding.DecodeString(*req.Body64)
		if err != nil {
			return "1the request's body is not base64: " + err.Error()
		}
		r.Body = b
	case req.Body != nil:
		r.Body = []byte(*req.Body)
	}
	var resp *webfetch.Response
	var err error
	if inst.fetcher != nil {
		resp, err = inst.fetcher.Fetch(r)
	} else {
		err = &webfetch.ForbiddenError{URL: req.URL, Reason: "the function may not fetch anything"}
	}
	if err != nil {
		var fe *webfetch.ForbiddenError
		if errors.As(err, &fe) {
			if inst.forbidden == "" {
				inst.forbidden = fe.Error()
			}
			return "2" + fe.Error()
		}
		return "1" + err.Error()
	}
	head, err := json.Marshal(fetchHead{Status: resp.Status, StatusText: resp.StatusText, URL: resp.URL,
		Redirected: resp.Redirected, Headers: resp.Header})
	if err != nil {
		return "1" + err.Error()
	}
	var b strings.Builder
	b.Grow(2 + len(head) + len(resp.Body))
	b.WriteByte('0')
	b.Write(head)
	b.WriteByte('\n')
	writeText(&b, resp.Body)
	return b.String()
}

// writeText writes body as valid UTF-8 without NUL bytes (a JavaScript
// string made from a C string ends at the first).
func writeText(b *strings.Builder, body []byte) {
	if utf8.Valid(body) && bytes.IndexByte(body, 0) < 0 {
		b.Write(body)
		return
	}
	for len(body) > 0 {
		r, n := utf8.DecodeRune(body)
		if r == 0 || r == utf8.RuneError && n <= 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.Write(body[:n])
		}
		body = body[n:]
	}
}
