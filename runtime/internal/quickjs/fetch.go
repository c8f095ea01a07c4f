package quickjs

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"

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

// hostFetch is JavaScript's hostFetch(request): a request as web.js writes
// it (see parseFetchRequest), done by the instance's Fetcher. It returns a
// string: "0" and the response (see writeFetchResponse); or "1" and the
// error of a request that failed, "2" and the error of a URL the function
// may not fetch (which web.js both throw as a TypeError). A forbidden URL
// also fails the event (Result.Forbidden), caught or not: the function's
// configuration is wrong.
//
// Both are plain text, which costs JavaScript in the engine a few native
// string calls to write and read, where JSON would cost it tens of
// microseconds.
func (inst *Instance) hostFetch(argc, argv uint32) (uint32, error) {
	raw, p, err := inst.argView("fetch", argc, argv, 64<<20)
	if err != nil {
		return 0, err
	}
	req, perr := parseFetchRequest(raw)
	if err := inst.freeArg(p); err != nil {
		return 0, err
	}
	var out string
	if perr != nil {
		out = "1the request is not what web.js writes: " + perr.Error()
	} else {
		out = inst.doFetch(req)
	}
	return inst.newJSString(out)
}

// parseFetchRequest reads a request as web.js's fetch writes it: the
// method, the URL and the redirect mode ("" for follow) on a line each;
// a line a header, "name:value" (names lowercased, values without CR, LF
// or NUL); an empty line; then the body: "t" and its text, "b" and its
// bytes in base64, or nothing when it has none. raw is the engine's
// memory: the head and the body are copied, once each.
func parseFetchRequest(raw []byte) (*webfetch.Request, error) {
	end, lines := 0, 0
	for {
		i := bytes.IndexByte(raw[end:], '\n')
		if i < 0 {
			if lines < 3 {
				return nil, errors.New("it ends before its headers")
			}
			return nil, errors.New("its headers do not end")
		}
		end += i + 1
		lines++
		if lines > 3 && i == 0 {
			break // the empty line
		}
	}
	head := string(raw[:end])
	var line [3]string
	for i := range line {
		line[i], head, _ = strings.Cut(head, "\n")
	}
	r := &webfetch.Request{Method: line[0], URL: line[1], Redirect: line[2]}
	for {
		l, rest, _ := strings.Cut(head, "\n")
		head = rest
		if l == "" {
			break
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("the header line %q has no name", l)
		}
		r.Header = append(r.Header, [2]string{name, value})
	}
	body := raw[end:]
	switch {
	case len(body) == 0:
	case body[0] == 't':
		r.Body = bytes.Clone(body[1:])
		if r.Body == nil {
			r.Body = []byte{}
		}
	case body[0] == 'b':
		b := make([]byte, base64.StdEncoding.DecodedLen(len(body)-1))
		n, err := base64.StdEncoding.Decode(b, body[1:])
		if err != nil {
			return nil, fmt.Errorf("its body is not base64: %w", err)
		}
		r.Body = b[:n]
	default:
		return nil, fmt.Errorf("its body starts with %q", body[0])
	}
	return r, nil
}

// doFetch does the request and writes hostFetch's answer.
func (inst *Instance) doFetch(r *webfetch.Request) string {
	var resp *webfetch.Response
	var err error
	if inst.fetcher != nil {
		resp, err = inst.fetcher.Fetch(r)
	} else {
		err = webfetch.NothingAllowed(r.URL)
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
	if resp.Status < 0 || resp.Status > 999 {
		return "1the response's status " + strconv.Itoa(resp.Status) + " is not three digits"
	}
	return writeFetchResponse(resp)
}

// writeFetchResponse writes a response as web.js's fetch reads it: "0";
// the status in three digits; "1" if the response was redirected, else
// "0"; the status text, a newline, the URL, a newline; a line a header,
// "name:value"; an empty line; then the body's text. The lines hold no CR,
// LF or NUL (each becomes a space) and are valid UTF-8; a header whose
// name is not a token is left out, and names are lowercased.
//
// The body becomes a JavaScript string: its invalid UTF-8 and NUL bytes
// read as U+FFFD.
func writeFetchResponse(resp *webfetch.Response) string {
	n := 8 + len(resp.StatusText) + len(resp.URL) + len(resp.Body)
	for _, h := range resp.Header {
		n += len(h[0]) + len(h[1]) + 2
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteByte('0')
	b.WriteByte(byte('0' + resp.Status/100))
	b.WriteByte(byte('0' + resp.Status/10%10))
	b.WriteByte(byte('0' + resp.Status%10))
	if resp.Redirected {
		b.WriteByte('1')
	} else {
		b.WriteByte('0')
	}
	writeLine(&b, resp.StatusText)
	b.WriteByte('\n')
	writeLine(&b, resp.URL)
	b.WriteByte('\n')
	for _, h := range resp.Header {
		if !httpguts.ValidHeaderFieldName(h[0]) {
			continue
		}
		for i := 0; i < len(h[0]); i++ {
			c := h[0][i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b.WriteByte(c)
		}
		b.WriteByte(':')
		writeLine(&b, h[1])
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	writeText(&b, resp.Body)
	return b.String()
}

// writeLine writes s as valid UTF-8 without CR, LF or NUL (a space each).
func writeLine(b *strings.Builder, s string) {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && (c == '\n' || c == '\r' || c == 0) || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		b.WriteString(s)
		return
	}
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if r == '\n' || r == '\r' || r == 0 {
			r = ' '
		}
		b.WriteRune(r)
	}
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
