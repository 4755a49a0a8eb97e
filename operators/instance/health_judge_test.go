package instance

import (
	"strings"
	"testing"
)

// TestJudgeReadiness pins the readiness rule of the health endpoint.
func TestJudgeReadiness(t *testing.T) {
	m := Membership{Name: "db-2", Upstream: Upstream{Host: "db-rw", Port: 5432}}
	streaming := localState{inRecovery: true, receiver: "streaming", senderHost: "db-rw", senderPort: 5432, lag: 1000}
	with := func(f func(*localState)) localState { s := streaming; f(&s); return s }
	for _, tc := range []struct {
		name    string
		state   localState
		member  Membership
		primary string
		ready   bool
		reason  string
	}{
		{"primary accepts writes", localState{}, Membership{Name: "db-1"}, "db-1", true, "accepts writes"},
		{"primary, operator unknown", localState{}, Membership{Name: "db-1"}, "", true, "accepts writes"},
		{"primary read-only", localState{readOnly: true}, Membership{Name: "db-1"}, "db-1", false, "read-only"},
		{"deposed primary", localState{}, Membership{Name: "db-1"}, "db-2", false, "deposed"},
		{"replica streams", streaming, m, "db-1", true, "streams from the primary"},
		{"replica at the bound", with(func(s *localState) { s.lag = 4096 }), m, "db-1", true, "streams"},
		{"replica past the bound", with(func(s *localState) { s.lag = 4097 }), m, "db-1", false, "replay lags 4097 bytes"},
		{"receiver stopped", with(func(s *localState) { s.receiver = "" }), m, "db-1", false, "WAL receiver: none"},
		{"receiver waiting", with(func(s *localState) { s.receiver = "waiting" }), m, "db-1", false, "WAL receiver: waiting"},
		{"streams from elsewhere", with(func(s *localState) { s.senderHost = "10.0.0.9" }), m, "db-1", false, "not from the primary at db-rw:5432"},
		{"promotion under way", streaming, m, "db-2", false, "promotion under way"},
	} {
		got := judge(tc.state, tc.member, tc.primary, 4096)
		if got.Ready != tc.ready || !strings.Contains(got.Reason, tc.reason) {
			t.Errorf("%s: got %+v, want ready %v with %q", tc.name, got, tc.ready, tc.reason)
		}
	}
}
