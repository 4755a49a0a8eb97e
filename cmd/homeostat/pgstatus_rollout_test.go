package main

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/internal/golden"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// During a rolling update pg status names the outdated instances and what
// the update waits for; a supervised one says which command finishes it.
func TestPGStatusShowsTheRollingUpdate(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ago := metav1.NewTime(now.Add(-20 * time.Second))
	msg := "every replica is updated; primary shopdb-1 is outdated (pod template) and waits for `homeostat pg switchover shopdb -n web` (spec.primaryUpdateStrategy: supervised)"
	pg := &v1alpha1.Postgres{
		ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "shopdb"},
		Spec: v1alpha1.PostgresSpec{Version: "16", Image: "postgres:16.4", Instances: 3, Synchronous: 1,
			Storage: v1alpha1.Storage{Size: "20Gi"}, PrimaryUpdateStrategy: "supervised"},
		Status: v1alpha1.PostgresStatus{
			Phase: "WaitingForSwitchover", Primary: "shopdb-1", ReadyInstances: 3,
			Instances: []v1alpha1.InstanceStatus{
				{Name: "shopdb-1", Role: "primary", Ready: true, Timeline: 3, LSN: "0/9000148", Outdated: "pod template"},
				{Name: "shopdb-2", Role: "replica", Ready: true, Timeline: 3, LSN: "0/9000148"},
				{Name: "shopdb-3", Role: "replica", Ready: true, Timeline: 3, LSN: "0/9000148"},
			},
			Conditions: []metav1.Condition{
				{Type: "Ready", Status: "False", Reason: "WaitingForSwitchover", Message: msg, LastTransitionTime: ago},
			},
		},
	}
	var out bytes.Buffer
	if err := printPGStatus(&out, pg, nil, now); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, filepath.Join("testdata", "pg-status-rollout.golden"), out.Bytes())
}
