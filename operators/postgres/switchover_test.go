package postgres

import (
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func TestSwitchoverPromotesOnlyAReplicaThatCaughtUp(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	r := &PostgresReconciler{Now: func() time.Time { return now }}
	lsn := func(s string) LSN { l, _ := ParseLSN(s); return l }
	for _, tc := range []struct {
		name     string
		need     string
		received LSN
		stopped  time.Duration // how long ago the primary was asked to stop
		wait     bool
		phase    string
	}{
		{"caught up", "0/5000000", lsn("0/5000000"), time.Second, false, ""},
		{"ahead", "0/5000000", lsn("0/50000A0"), time.Second, false, ""},
		{"behind", "0/5000000", lsn("0/4FFFFFF"), time.Second, true, PhaseSwitchingOver},
		// Promoting it could lose commits: a human decides (pg promote --force).
		{"behind for too long", "0/5000000", lsn("0/4000000"), 2 * time.Minute, true, ReasonFailoverUnsafe},
		{"no recorded position", "", 0, time.Second, false, ""},
	} {
		pg := &v1alpha1.Postgres{}
		pg.Annotations = map[string]string{AnnotationSwitchover: "", AnnotationSwitchoverLSN: tc.need}
		pg.Spec.FailoverDelay = &metav1.Duration{Duration: 30 * time.Second}
		pg.Status.Conditions = []metav1.Condition{{Type: ConditionPrimaryAvailable, Status: metav1.ConditionFalse,
			LastTransitionTime: metav1.NewTime(now.Add(-tc.stopped))}}
		c := &cluster{pg: pg, obs: map[string]Observation{"db-2": {Reachable: true, InRecovery: true, Received: tc.received}}, requeue: 5 * time.Second}
		err := r.switchoverCaughtUp(c, "db-2")
		if got := errors.Is(err, errWait); got != tc.wait || c.phase != tc.phase {
			t.Errorf("%s: waits = %v in phase %q, want %v in %q (%v)", tc.name, got, c.phase, tc.wait, tc.phase, err)
		}
	}
}
