package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func TestWaitForHealth(t *testing.T) {
	f := newFixture(t, "sync-health")
	f.sync.Spec.Wait = new(true)
	f.sync.Spec.Timeout = &metav1.Duration{Duration: 3 * time.Second}
	if err := env.Client.Update(context.Background(), f.sync); err != nil {
		t.Fatal(err)
	}
	// ConfigMaps are healthy once they exist.
	f.repo.commit("config", map[string]string{"a.yaml": configMapYAML("a", "1")})
	o := f.run(TriggerManual)
	mustSucceed(t, o)
	if !o.Healthy {
		t.Fatal("ConfigMaps must be healthy")
	}
	// A Deployment never becomes available without nodes: the wait times out.
	deployment := `apiVersion: apps/v1
kind: Deployment
metadata:
  name: never-ready
spec:
  selector: {matchLabels: {app: never-ready}}
  template:
    metadata: {labels: {app: never-ready}}
    spec: {containers: [{name: app, image: nginx}]}
`
	f.repo.commit("deployment", map[string]string{"d.yaml": deployment})
	o = f.run(TriggerManual)
	if o.Reason != ReasonHealthFailed || o.Healthy {
		t.Fatalf("want HealthCheckFailed, got %q (%v)", o.Reason, o.Err)
	}
	if len(o.Health) != 1 || !strings.Contains(o.Health[0].Ref.String(), "never-ready") {
		t.Fatalf("health should name the Deployment: %+v", o.Health)
	}
	if c := apimeta.FindStatusCondition(f.sync.Status.Conditions, v1alpha1.ConditionReconciling); c == nil || c.Reason != ReasonProgressingWithRetry {
		t.Fatalf("a health failure is retried: want Reconciling/ProgressingWithRetry, got %+v", f.sync.Status.Conditions)
	}
	// The objects were applied and are owned even though unhealthy.
	if len(f.sync.Status.Inventory) != 2 || f.sync.Status.LastAppliedRevision == f.sync.Status.LastAttemptedRevision {
		t.Fatalf("status after a health failure: %+v", f.sync.Status)
	}
}

// A new Postgres is not healthy until its operator says so: with no
// operator running, the wait names it; once its status reports the applied
// generation Ready (as the operator writes it), the sync is healthy.
func TestWaitForOperatorKinds(t *testing.T) {
	const ns = "sync-health-op"
	f := newFixture(t, ns)
	f.sync.Spec.Wait = new(true)
	f.sync.Spec.Timeout = &metav1.Duration{Duration: 2 * time.Second}
	if err := env.Client.Update(context.Background(), f.sync); err != nil {
		t.Fatal(err)
	}
	f.repo.commit("postgres", map[string]string{"db.yaml": `apiVersion: homeostat.dev/v1alpha1
kind: Postgres
metadata: {name: db, namespace: ` + ns + `}
spec: {version: "16", instances: 1, storage: {size: 1Gi}}
`})
	o := f.run(TriggerManual)
	if o.Reason != ReasonHealthFailed || len(o.Health) != 1 {
		t.Fatalf("want HealthCheckFailed naming the Postgres, got %q %+v (%v)", o.Reason, o.Health, o.Err)
	}
	if h := o.Health[0]; h.Ref.Kind != "Postgres" || !strings.Contains(h.Err, "waiting for the homeostat operator") {
		t.Fatalf("health of the Postgres: %+v", h)
	}

	pg := &v1alpha1.Postgres{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "db"}, pg); err != nil {
		t.Fatal(err)
	}
	pg.Status.ObservedGeneration = pg.Generation
	apimeta.SetStatusCondition(&pg.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady,
		Status: metav1.ConditionTrue, Reason: "ReconciliationSucceeded", Message: "1 instances ready"})
	if err := env.Client.Status().Update(context.Background(), pg); err != nil {
		t.Fatal(err)
	}
	o = f.run(TriggerManual)
	mustSucceed(t, o)
	if !o.Healthy {
		t.Fatalf("a Ready Postgres of the applied generation is healthy: %+v", o.Health)
	}
}
