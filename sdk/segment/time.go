package segment

import "time"

// TimeForm is how much of an instant a timestamp string gives. The zero
// value, [TimeInvalid], is a string [ParseTime] refuses.
type TimeForm uint8

// The forms of a timestamp.
const (
	TimeInvalid TimeForm = iota // not a timestamp ParseTime accepts
	TimeDate                    // a date alone (midnight UTC)
	TimeLocal                   // a date and a time without an offset (read as UTC)
	TimeZoned                   // a date and a time with an offset or Z
)

// TimeLayout is how insertfn writes the times it sets (receivedAt, and
// timestamp after the clock skew correction): RFC 3339 in UTC with
// milliseconds, as Segment writes them. [AppendTime] writes it.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// ParseTimeMillis reads a time written in [TimeLayout] (as the ingest
// writes receivedAt) and returns it in milliseconds since the Unix epoch,
// without the cost of a general parser. ok is false for anything else.
func ParseTimeMillis(s string) (ms int64, ok bool) {
	if len(s) != len(TimeLayout) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z' {
		return 0, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for k := from; k < to; k++ {
			c := s[k]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	var f [7]int
	for k, span := range [7][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}, {20, 23}} {
		n, good := num(span[0], span[1])
		if !good {
			return 0, false
		}
		f[k] = n
	}
	if f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > 31 || f[3] > 23 || f[4] > 59 || f[5] > 59 {
		return 0, false
	}
	t := time.Date(f[0], time.Month(f[1]), f[2], f[3], f[4], f[5], f[6]*1e6, time.UTC)
	if t.Day() != f[2] { // February 30 and the like
		return 0, false
	}
	return t.UnixMilli(), true
}

// TimeExample is a timestamp as Segment writes one, for messages that say
// what to send.
const TimeExample = "2024-05-01T12:00:00.000Z"

// ParseTime parses a Segment timestamp (timestamp, originalTimestamp,
// sentAt, receivedAt): the ISO 8601 forms clients send, one set of them
// for every reader of events.
//
// Accepted are RFC 3339 (with or without fractional seconds; the fast
// path) and its common variants: a UTC offset without its colon (+0200)
// or without minutes (+02), no offset (UTC), no seconds, a space or a
// lower-case t between date and time, a lower-case z, and a date alone
// (midnight UTC). Fractional seconds may have any number of digits. The
// hour has two digits. Anything else is refused: other date formats,
// numbers of seconds or milliseconds, out-of-range fields.
//
// # Results
//
// The instant, and the form it was written in ([TimeZoned], [TimeLocal]
// or [TimeDate]); the zero time and [TimeInvalid] for a string ParseTime
// refuses. The form tells whether two timestamps may be compared as
// clocks (the ingest corrects clock skew only between times of the same
// form, and never between dates alone).
func ParseTime(s string) (time.Time, TimeForm) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, TimeZoned
	}
	if len(s) > 10 {
		if s[10] == ' ' || s[10] == 't' {
			s = s[:10] + "T" + s[11:]
		}
		if len(s) < 14 || s[13] != ':' { // a two-digit hour (Go's layouts take one)
			return time.Time{}, TimeInvalid
		}
		if n := len(s); s[n-1] == 'z' {
			s = s[:n-1] + "Z"
		}
	}
	for _, l := range isoLayouts {
		if t, err := time.Parse(l.layout, s); err == nil {
			return t, l.form
		}
	}
	return time.Time{}, TimeInvalid
}

// isoLayouts are the forms ParseTime accepts besides RFC 3339 as it is; a
// layout's fractional seconds (.999999999) are optional in the input.
var isoLayouts = [...]struct {
	layout string
	form   TimeForm
}{
	{time.RFC3339Nano, TimeZoned}, // after a space or t became T
	{"2006-01-02T15:04:05.999999999Z0700", TimeZoned},
	{"2006-01-02T15:04:05.999999999Z07", TimeZoned},
	{"2006-01-02T15:04:05.999999999", TimeLocal},
	{"2006-01-02T15:04Z07:00", TimeZoned},
	{"2006-01-02T15:04Z0700", TimeZoned},
	{"2006-01-02T15:04", TimeLocal},
	{"2006-01-02", TimeDate},
}

// AppendTime appends t in UTC as [TimeLayout] writes it, without
// interpreting the layout (the ingest writes one or two per event).
//
// # Parameters
//
//   - b: the buffer to append to.
//   - t: any time; its fraction is truncated to milliseconds. A year
//     outside 0-9999 is written as [time.Time.AppendFormat] writes it.
func AppendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	h, mi, s := t.Clock()
	ms := t.Nanosecond() / 1e6
	b = appendDigits(b, y, 4)
	b = append(b, '-')
	b = appendDigits(b, int(mo), 2)
	b = append(b, '-')
	b = appendDigits(b, d, 2)
	b = append(b, 'T')
	b = appendDigits(b, h, 2)
	b = append(b, ':')
	b = appendDigits(b, mi, 2)
	b = append(b, ':')
	b = appendDigits(b, s, 2)
	b = append(b, '.')
	b = appendDigits(b, ms, 3)
	return append(b, 'Z')
}

// appendDigits appends the n lowest decimal digits of v >= 0, zero-padded.
func appendDigits(b []byte, v, n int) []byte {
	b = append(b, "0000"[:n]...)
	for i := len(b) - 1; n > 0; n-- {
		b[i] = byte('0' + v%10)
		v /= 10
		i--
	}
	return b
}
