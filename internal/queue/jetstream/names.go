package jetstream

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/insertfn/insertfn/internal/queue"
)

// A topic's streams and subjects. The topic name is escaped into a token
// that NATS allows in both a stream name and a subject: the bytes a-z, 0-9
// and '-' stand for themselves, every other byte is '_' and its two
// upper-case hex digits ("dest:Web_1" → "dest_3A_57eb_5F1"). The escape
// is one-to-one, and yields no upper-case letters outside escapes, so two
// topics never share a stream, even on a file system that ignores case.
// A token longer than maxToken is cut and ends with "_h" and a hash of
// the whole name ('_' then 'h' never occurs in an escape).
//
// With the prefix P, a topic T whose token is t has:
//
//	stream P_Q_t   subject P.q.t          its items (work-queue retention)
//	               subjects P.q.t.<n>     its packs of n items (see pack.go)
//	stream P_D_t   subjects P.d.t.<seq>   its dead letters (created when needed)
//
// Each stream's metadata holds the topic's full escape under metaTopic,
// so that Topics can name a topic whose token was cut.
const (
	maxToken = 160

	metaTopic = "insertfn.topic"
	metaKind  = "insertfn.kind"

	kindItems = "items"
	kindDead  = "dead"

	// consumerName is the durable pull consumer every host shares on each
	// items stream.
	consumerName = "insertfn"
)

// names are the NATS names of one topic.
type names struct {
	topic       queue.Topic
	escaped     string // the topic's whole escape
	itemsName   string // items stream
	subject     string // its subject
	deadName    string // dead-letter stream
	deadSubject string // prefix of the dead letters' subjects: deadSubject + "." + seq
}

// namesOf returns the names of topic under prefix.
func namesOf(prefix string, topic queue.Topic) names {
	esc := escapeTopic(topic)
	tok := esc
	if len(tok) > maxToken {
		sum := sha256.Sum256([]byte(topic))
		tok = tok[:maxToken-34] + "_h" + hex.EncodeToString(sum[:16])
	}
	return names{
		topic:       topic,
		escaped:     esc,
		itemsName:   prefix + "_Q_" + tok,
		subject:     prefix + ".q." + tok,
		deadName:    prefix + "_D_" + tok,
		deadSubject: prefix + ".d." + tok,
	}
}

// escapeTopic returns the escape of a topic name (see names).
func escapeTopic(t queue.Topic) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(t))
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// unescapeTopic reverses escapeTopic.
func unescapeTopic(s string) (queue.Topic, error) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		case c == '_' && i+2 < len(s) && isUpperHex(s[i+1]) && isUpperHex(s[i+2]):
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			b.WriteByte(hi<<4 | lo)
			i += 2
		default:
			return "", fmt.Errorf("queue: %q is not an escaped topic name", s)
		}
	}
	return queue.Topic(b.String()), nil
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}
