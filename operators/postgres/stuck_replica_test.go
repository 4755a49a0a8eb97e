package postgres

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func TestReplicaThatStopsStreamingIsClonedAfresh(t *testing.T) {
	ns := newNamespace(t)
	pg := createPostgres(t, ns, func(pg *v1alpha1.Postgres) { pg.Spec.Instances = 3 })
	readyVolumes(t, pg, 3)
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	r := newReconciler()
	r.Now = func() time.Time { return now }
	ready := func(name string) *corev1.Pod {
		p := InstancePod(pg, name, RoleReplica, r.Options)
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		return p
	}
	c := &cluster{
		pg:   get(t, &v1alpha1.Postgres{}, ns, "db"),
		pvcs: map[string]*corev1.PersistentVolumeClaim{},
		pods: map[string]*corev1.Pod{"db-2": ready("db-2"), "db-3": ready("db-3")},
		obs:  map[string]Observation{"db-2": {Reachable: true, InRecovery: true}, "db-3": {Reachable: true, InRecovery: true}},
	}
	for _, n := range []string{"db-1", "db-2", "db-3"} {
		c.pvcs[n] = get(t, &corev1.PersistentVolumeClaim{}, ns, n)
	}
	c.pg.Status.Primary = "db-1"
	// db-2 streams; db-3 does not, so its readiness probe fails: it is
	// still a candidate for a fresh clone.
	c.pods["db-3"].Status.Conditions[0].Status = corev1.ConditionFalse
	active := map[string]bool{"db_2": true, "db_3": false}
	step := func(after time.Duration) error {
		now = now.Add(after)
		return r.recloneStuckReplicas(context.Background(), c, []string{"db-2", "db-3"}, active)
	}
	if err := step(0); err != nil {
		t.Fatal(err)
	}
	if err := step(time.Minute); err != nil {
		t.Fatalf("a replica not streaming for a minute was touched: %v", err)
	}
	if live := liveVolumes(t, ns); !live["db-3"] {
		t.Fatal("db-3 removed before StuckAfter")
	}
	// It streams again for a moment: the clock starts over.
	active["db_3"] = true
	if err := step(time.Second); err != nil {
		t.Fatal(err)
	}
	active["db_3"] = false
	if err := step(90 * time.Second); err != nil {
		t.Fatal(err)
	}
	if live := liveVolumes(t, ns); !live["db-3"] {
		t.Fatal("the not-streaming clock did not start over")
	}
	if err := step(3 * time.Minute); err == nil {
		t.Fatal("want the workflow to wait after removing a stuck replica")
	}
	live := liveVolumes(t, ns)
	if live["db-3"] || !live["db-2"] || !live["db-1"] {
		t.Errorf("volumes = %v; want only db-3 removed", live)
	}
}
