package postgres

import (
	"strings"
	"testing"
	"time"
)

func TestSynchronousStandbyNamesFollowsSpecAndReplicas(t *testing.T) {
	for _, tc := range []struct {
		n        int
		replicas []string
		want     string
	}{
		{0, []string{"db-2", "db-3"}, ""},
		{1, nil, ""},
		{1, []string{"db-3", "db-2"}, `ANY 1 ("db_2", "db_3")`},
		{2, []string{"db-2", "db-3"}, `ANY 2 ("db_2", "db_3")`},
		{3, []string{"db-2"}, `ANY 1 ("db_2")`},
	} {
		if got := SynchronousStandbyNames(tc.n, tc.replicas); got != tc.want {
			t.Errorf("SynchronousStandbyNames(%d, %v) = %q, want %q", tc.n, tc.replicas, got, tc.want)
		}
	}
}

func TestParseLSNRoundTrips(t *testing.T) {
	for _, s := range []string{"0/0", "0/3000060", "1A/FF000028", "FFFFFFFF/FFFFFFFF"} {
		l, err := ParseLSN(s)
		if err != nil {
			t.Fatalf("ParseLSN(%q): %v", s, err)
		}
		if l.String() != s {
			t.Errorf("ParseLSN(%q).String() = %q", s, l.String())
		}
	}
	a, _ := ParseLSN("0/FFFFFFFF")
	b, _ := ParseLSN("1/0")
	if a >= b {
		t.Errorf("0/FFFFFFFF should sort before 1/0")
	}
	for _, bad := range []string{"", "0", "x/1", "1/"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) succeeded", bad)
		}
	}
}

func TestChoosePromotionRanksTimelineThenReceivedWAL(t *testing.T) {
	for name, tc := range map[string]struct {
		cands []Candidate
		want  string
	}{
		"none":                 {nil, ""},
		"none ready":           {[]Candidate{{Name: "a", Received: 9}}, ""},
		"most received":        {[]Candidate{{Name: "a", Ready: true, Received: 5}, {Name: "b", Ready: true, Received: 9}}, "b"},
		"not ready skipped":    {[]Candidate{{Name: "a", Ready: true, Received: 5}, {Name: "b", Received: 9}}, "a"},
		"timeline before lsn":  {[]Candidate{{Name: "a", Ready: true, Received: 9, Timeline: 1}, {Name: "b", Ready: true, Received: 5, Timeline: 2}}, "b"},
		"same timeline by lsn": {[]Candidate{{Name: "a", Ready: true, Received: 9, Timeline: 2}, {Name: "b", Ready: true, Received: 5, Timeline: 2}}, "a"},
		"tie broken by name":   {[]Candidate{{Name: "c", Ready: true, Received: 5}, {Name: "b", Ready: true, Received: 5}}, "b"},
	} {
		if got := ChoosePromotion(tc.cands); got != tc.want {
			t.Errorf("%s: ChoosePromotion = %q, want %q", name, got, tc.want)
		}
	}
}

func TestNextBackupCatchesUpOnlyTheNewestMissedRun(t *testing.T) {
	sched, err := parseSchedule("0 3 * * *")
	if err != nil {
		t.Fatal(err)
	}
	day := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name          string
		last, now     time.Time
		wantDue       bool
		due, wantNext time.Time
	}{
		{"not yet", day(20, 3), day(20, 12), false, time.Time{}, day(21, 3)},
		{"due", day(20, 3), day(21, 3), true, day(21, 3), day(22, 3)},
		{"missed three", day(20, 3), day(23, 12), true, day(23, 3), day(24, 3)},
	} {
		due, isDue, next := NextBackup(sched, tc.last, tc.now)
		if isDue != tc.wantDue || !due.Equal(tc.due) || !next.Equal(tc.wantNext) {
			t.Errorf("%s: NextBackup = %v %v %v, want %v %v %v", tc.name, due, isDue, next, tc.due, tc.wantDue, tc.wantNext)
		}
	}
	if _, err := parseSchedule("every day"); err == nil {
		t.Error("parseSchedule accepted nonsense")
	}
}

func TestFailoverSafeNeedsAReplicaThatHoldsEveryAcknowledgedCommit(t *testing.T) {
	all := []string{"db-2", "db-3"}
	for name, tc := range map[string]struct {
		k         int
		replicas  []string
		reachable []string
		safe      bool
		why       string
	}{
		"async: always":                   {0, all, nil, true, ""},
		"ANY 1 of 2, both reachable":      {1, all, all, true, ""},
		"ANY 1 of 2, one reachable":       {1, all, []string{"db-3"}, false, "unreachable: [db-2]"},
		"ANY 1 of 3, two reachable":       {1, []string{"a", "b", "c"}, []string{"a", "b"}, false, "needs 3 of the replicas [a b c]"},
		"ANY 2 of 3, two reachable":       {2, []string{"a", "b", "c"}, []string{"a", "c"}, true, ""},
		"ANY 2 of 3, one reachable":       {2, []string{"a", "b", "c"}, []string{"c"}, false, "unreachable: [a b]"},
		"k above the replicas is capped":  {3, all, all, true, ""},
		"one replica, k 1, it is missing": {1, []string{"a"}, nil, false, "unreachable: [a]"},
	} {
		reach := map[string]bool{}
		for _, r := range tc.reachable {
			reach[r] = true
		}
		safe, why := FailoverSafe(tc.k, tc.replicas, reach)
		if safe != tc.safe || !strings.Contains(why, tc.why) {
			t.Errorf("%s: FailoverSafe = %v %q, want %v containing %q", name, safe, why, tc.safe, tc.why)
		}
	}
}
