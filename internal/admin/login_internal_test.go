package admin

import (
	"testing"
	"time"
)

// TestSessionsExpireAndAreBounded: a session ends SessionTTL after its
// login; past MaxSessions the one that would end first goes.
func TestSessionsExpireAndAreBounded(t *testing.T) {
	s := newSessions()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	first := s.start(t0)
	if !s.valid(first, t0.Add(SessionTTL-time.Second)) || s.valid(first, t0.Add(SessionTTL)) {
		t.Error("a session does not last exactly SessionTTL")
	}
	if s.valid("", t0) || s.valid("not-a-session", t0) {
		t.Error("an unknown id is valid")
	}
	s = newSessions()
	ids := make([]string, MaxSessions+1)
	for i := range ids {
		ids[i] = s.start(t0.Add(time.Duration(i) * time.Second))
	}
	if len(s.expiry) != MaxSessions {
		t.Errorf("%d sessions kept, want %d", len(s.expiry), MaxSessions)
	}
	if s.valid(ids[0], t0) || !s.valid(ids[1], t0) || !s.valid(ids[MaxSessions], t0) {
		t.Error("past the bound, the oldest session did not go, or another did")
	}
	s.end(ids[1])
	if s.valid(ids[1], t0) {
		t.Error("an ended session is still valid")
	}
}

func TestLanding(t *testing.T) {
	for next, want := range map[string]string{
		"/admin/overview/?source=web": "/admin/overview/?source=web",
		"/admin/login":                DefaultLanding,
		"/admin/x\r\nSet-Cookie: a=b": DefaultLanding,
		`/admin/\\evil.example`:       DefaultLanding,
		"javascript:alert(1)":         DefaultLanding,
	} {
		if got := landing(next); got != want {
			t.Errorf("landing(%q) = %q, want %q", next, got, want)
		}
	}
}
