package admin

import (
	"bytes"
	"encoding/json"
	"net"
	"strconv"
)

// net/http answers the requests it cannot parse itself, before any
// handler runs: headers over MaxHeaderBytes (431), a malformed request
// (400), an unsupported transfer coding (501). It writes those answers
// straight to the connection in one piece, as text/plain. So that every
// answer of the admin API is JSON ({"error": "..."}), the admin listener
// wraps its connections and rewrites exactly those writes.

// plainErrorHeaders is what net/http puts between the status line and the
// body of the answers it writes itself (net/http/server.go errorHeaders).
const plainErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// jsonErrorsListener wraps the connections it accepts in jsonErrorsConn.
type jsonErrorsListener struct{ net.Listener }

func (l jsonErrorsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return jsonErrorsConn{c}, nil
}

// jsonErrorsConn rewrites net/http's own plain-text error answers as JSON.
type jsonErrorsConn struct{ net.Conn }

func (c jsonErrorsConn) Write(p []byte) (int, error) {
	if q, ok := jsonProtocolError(p); ok {
		if _, err := c.Conn.Write(q); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// jsonProtocolError returns the JSON form of p when p is a whole answer
// net/http wrote itself ("HTTP/1.1 431 ...", its fixed headers, a text
// body); ok is false for anything else.
func jsonProtocolError(p []byte) ([]byte, bool) {
	const proto = "HTTP/1.1 "
	if !bytes.HasPrefix(p, []byte(proto)) || len(p) < len(proto)+3 || p[len(proto)] < '4' {
		return nil, false
	}
	i := bytes.Index(p, []byte(plainErrorHeaders))
	if i < 0 || bytes.IndexByte(p[:i], '\n') >= 0 {
		return nil, false
	}
	status := p[:i]
	code := string(status[len(proto) : len(proto)+3])
	if _, err := strconv.Atoi(code); err != nil {
		return nil, false
	}
	body, _ := json.Marshal(errorBody{Error: "the request could not be read: " + string(p[i+len(plainErrorHeaders):])})
	var b bytes.Buffer
	b.Write(status)
	b.WriteString("\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ")
	b.WriteString(strconv.Itoa(len(body)))
	b.WriteString("\r\n\r\n")
	b.Write(body)
	return b.Bytes(), true
}
