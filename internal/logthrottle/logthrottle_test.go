package logthrottle

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	var buf bytes.Buffer
	th := New(slog.New(slog.NewTextHandler(&buf, nil)), 10*time.Second)
	now := time.Unix(1000, 0)
	th.now = func() time.Time { return now }
	for range 5 {
		th.Log(slog.LevelWarn, "a", "store down")
	}
	th.Log(slog.LevelWarn, "b", "other problem")
	if got := strings.Count(buf.String(), "store down"); got != 1 {
		t.Errorf("%d lines for 5 repeats within the interval, want 1:\n%s", got, buf.String())
	}
	if !strings.Contains(buf.String(), "other problem") {
		t.Error("a different key was suppressed")
	}
	now = now.Add(11 * time.Second)
	th.Log(slog.LevelWarn, "a", "store down")
	if !strings.Contains(buf.String(), "repeated=4") {
		t.Errorf("the line after the interval does not count the suppressed ones:\n%s", buf.String())
	}
}
