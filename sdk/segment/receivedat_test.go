package segment_test

import (
	"testing"
	"time"

	"github.com/insertfn/insertfn/sdk/segment"
)

func TestParseTimeMillis(t *testing.T) {
	for _, s := range []string{"2024-05-01T12:00:00.000Z", "1999-12-31T23:59:59.999Z", "2024-02-29T00:00:00.123Z", segment.TimeExample} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := segment.ParseTimeMillis(s); !ok || got != want.UnixMilli() {
			t.Errorf("segment.ParseTimeMillis(%s) = %d, %v; want %d", s, got, ok, want.UnixMilli())
		}
	}
	for _, s := range []string{"", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000+01:00", "2023-02-29T00:00:00.000Z",
		"2024-13-01T00:00:00.000Z", "2024-05-01T24:00:00.000Z", "2024-05-01T12:00:00.00xZ", "2024-05-01 12:00:00.000Z"} {
		if got, ok := segment.ParseTimeMillis(s); ok {
			t.Errorf("segment.ParseTimeMillis(%q) = %d; want refused", s, got)
		}
	}
}

func TestTrailingReceivedAt(t *testing.T) {
	for _, c := range []struct {
		event, want string
		ok          bool
	}{
		{`{"type":"track","receivedAt":"2024-05-01T12:00:00.000Z"}`, "2024-05-01T12:00:00.000Z", true},
		{`{"receivedAt":"2024-05-01T12:00:00.000Z"}`, "", false}, // no comma: not the ingest's tail
		{`{"type":"track","receivedAt":"2024-05-01T12:00:00.000Z","x":1}`, "", false},
		{`{"type":"track","receivedAt":"2024-05-01T12:00:00\"000Z"}`, "", false},
		{`{"type":"track","receivedAt":"2024-05-01T12:00:00.0000Z"}`, "", false},
		{`}`, "", false},
	} {
		got, ok := segment.TrailingReceivedAt([]byte(c.event))
		if got != c.want || ok != c.ok {
			t.Errorf("segment.TrailingReceivedAt(%s) = %q, %v; want %q, %v", c.event, got, ok, c.want, c.ok)
		}
	}
}
