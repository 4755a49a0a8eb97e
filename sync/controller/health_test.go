package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
