package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// A reconcile that sees a switchover request its promotion has already
// cleared (the cache lags behind the API server) leaves the new primary
// alone; a request still open goes on and stops the primary.
func TestStaleSwitchoverRequestDoesNotStopTheNewPrimary(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	pg := createPostgres(t, ns, nil)
	pg.Status.Primary = "db-2"
	if err := env.Client.Status().Update(ctx, pg); err != nil {
		t.Fatal(err)
	}
	pod := InstancePod(pg, "db-2", RolePrimary, Options{HomeostatImage: "homeostat:test"})
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if err := env.Client.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	r := newReconciler()
	cached := func() *cluster {
		stale := get(t, &v1alpha1.Postgres{}, ns, pg.Name)
		if stale.Annotations == nil {
			stale.Annotations = map[string]string{}
		}
		stale.Annotations[AnnotationSwitchover] = ""
		return &cluster{pg: stale, requeue: r.poll(), pods: map[string]*corev1.Pod{"db-2": pod},
			obs: map[string]Observation{"db-2": {Reachable: true}, "db-1": {Reachable: true, InRecovery: true}},
			pvcs: map[string]*corev1.PersistentVolumeClaim{
				"db-1": {ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationPVCStatus: pvcReady}}},
				"db-2": {ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationPVCStatus: pvcReady}}}}}
	}

	c := cached()
	err := r.failover(ctx, c)
	if !errors.Is(err, errWait) || !strings.Contains(c.message, "already carried out") {
		t.Fatalf("stale request: %v, phase %s: %s", err, c.phase, c.message)
	}
	if p := get(t, &corev1.Pod{}, ns, "db-2"); !p.DeletionTimestamp.IsZero() {
		t.Fatal("the primary's pod was deleted for a switchover already carried out")
	}

	// The request really open: the primary is stopped.
	if err := r.annotate(ctx, pg, AnnotationSwitchover, ""); err != nil {
		t.Fatal(err)
	}
	c = cached()
	c.pods["db-1"] = pod.DeepCopy()
	c.pods["db-1"].Name = "db-1"
	if err := r.failover(ctx, c); !errors.Is(err, errWait) || c.phase != PhaseSwitchingOver || !strings.Contains(c.message, "stopping primary db-2") {
		t.Fatalf("open request: %v, phase %s: %s", err, c.phase, c.message)
	}
}
