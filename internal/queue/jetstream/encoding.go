package jetstream

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
)

// Compression. A message's data (a plain item or a pack) may be stored
// compressed with S2, the header hdrEncoding saying so ("s2"). Every
// copy of an item goes through the servers several times (the publish,
// the stream leader's copy to each replica, each replica's file, the
// fetch, and the file's rewrite when the messages around it are
// deleted), and on a cluster of a few machines those bytes are what
// throughput runs out of; events of one request repeat their keys and
// most of their context, so they shrink several times. The host
// compresses once and decompresses once per message.
//
// Data shorter than minCompress, or that S2 does not shrink by an eighth
// at least, is stored as it is. Every handle reads both forms whatever
// its own Options.Compression, so hosts may change the option one at a
// time.
const (
	hdrEncoding = "Insertfn-Encoding"
	encodingS2  = "s2"

	// minCompress is the smallest data compressed.
	minCompress = 512
)

// Values of [Options.Compression].
const (
	CompressionS2   = "s2"
	CompressionNone = "none"
)

// compress replaces m's data with its S2 encoding when the queue
// compresses and that saves an eighth or more, and marks it so.
func (q *Queue) compress(m *nats.Msg) {
	if q.opts.Compression == CompressionNone || m.Header.Get(hdrEncoding) != "" || len(m.Data) < minCompress && !q.compressAll {
		return
	}
	enc := s2.Encode(make([]byte, s2.MaxEncodedLen(len(m.Data))), m.Data)
	if len(enc) > len(m.Data)-len(m.Data)/8 && !q.compressAll {
		return
	}
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	m.Header.Set(hdrEncoding, encodingS2)
	m.Data = enc
}

// errBadEncoding: a message whose data does not decode as its header
// says (it is then taken as one plain item, so that nothing is lost).
var errBadEncoding = errors.New("queue: malformed compressed message")

// expand returns the data of a message delivered, decoded as its header
// says. limit bounds the decoded length: the queue publishes nothing
// larger than the servers' largest message before compression, so a
// message that claims more was not written by a host, and is not
// decoded (a few bytes could otherwise ask for gigabytes).
func expand(h nats.Header, data []byte, limit int) ([]byte, error) {
	switch enc := h.Get(hdrEncoding); enc {
	case "":
		return data, nil
	case encodingS2:
		n, err := s2.DecodedLen(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadEncoding, err)
		}
		if n > limit {
			return nil, fmt.Errorf("%w: it claims %d bytes decoded, the most is %d", errBadEncoding, n, limit)
		}
		out, err := s2.Decode(make([]byte, n), data)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadEncoding, err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: unknown encoding %q", errBadEncoding, enc)
	}
}

// maxDecoded is the longest data a message of this queue decodes to (see
// expand).
func (q *Queue) maxDecoded() int {
	limit := 1 << 20
	if mp := q.nc.MaxPayload(); mp > 0 {
		limit = int(mp)
	}
	return limit
}
