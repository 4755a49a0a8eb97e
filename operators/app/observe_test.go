package app

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func deployment(gen, observed int64, replicas, updated, available int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Generation: gen},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(replicas)},
		Status: appsv1.DeploymentStatus{ObservedGeneration: observed, UpdatedReplicas: updated,
			AvailableReplicas: available, ReadyReplicas: available},
	}
}

func TestObserveReadinessFollowsTheRollout(t *testing.T) {
	cases := []struct {
		name   string
		dep    *appsv1.Deployment
		ready  metav1.ConditionStatus
		reason string
	}{
		{"no deployment yet", nil, metav1.ConditionFalse, ReasonDeploymentMissing},
		{"new generation not observed", deployment(2, 1, 2, 2, 2), metav1.ConditionFalse, ReasonRollingOut},
		{"replicas still updating", deployment(2, 2, 3, 1, 3), metav1.ConditionFalse, ReasonRollingOut},
		{"updated but not available", deployment(1, 1, 2, 2, 1), metav1.ConditionFalse, ReasonReplicasUnavailable},
		{"all available", deployment(1, 1, 2, 2, 2), metav1.ConditionTrue, ReasonDeploymentReady},
		{"scaled to zero", deployment(1, 1, 0, 0, 0), metav1.ConditionTrue, ReasonDeploymentReady},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := &v1alpha1.App{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "web", Generation: 4}}
			Observe(app, c.dep)
			cond := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady)
			if cond == nil || cond.Status != c.ready || cond.Reason != c.reason {
				t.Fatalf("Ready = %+v, want %s/%s", cond, c.ready, c.reason)
			}
			if app.Status.ObservedGeneration != 4 || cond.ObservedGeneration != 4 {
				t.Errorf("observedGeneration not recorded: %d", app.Status.ObservedGeneration)
			}
		})
	}
}

func TestURL(t *testing.T) {
	cases := []struct {
		spec v1alpha1.AppSpec
		want string
	}{
		{v1alpha1.AppSpec{}, "http://shop.web.svc"},
		{v1alpha1.AppSpec{Domains: []string{"shop.example.com", "www.shop.example.com"}}, "http://shop.example.com"},
		{v1alpha1.AppSpec{Domains: []string{"shop.example.com"}, TLS: &v1alpha1.AppTLS{Issuer: "le"}}, "https://shop.example.com"},
	}
	for _, c := range cases {
		app := &v1alpha1.App{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "web"}, Spec: c.spec}
		if got := URL(app); got != c.want {
			t.Errorf("URL(%+v) = %q, want %q", c.spec, got, c.want)
		}
	}
}
