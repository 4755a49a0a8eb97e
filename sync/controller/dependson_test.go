package controller

import (
	"context"
	"strings"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// A Sync that depends on another waits (DependencyNotReady, nothing
// applied, a short requeue) until that one is Ready at its latest revision,
// then applies; a cycle is refused with its path and marked Stalled.
func TestDependsOnWaitsAndRefusesCycles(t *testing.T) {
	ctx := context.Background()
	infra := newFixture(t, "deps-infra")
	apps := newFixture(t, "deps-apps")
	infra.repo.commit("infra", map[string]string{"base.yaml": configMapYAML("base", "1")})
	apps.repo.commit("apps", map[string]string{"app.yaml": configMapYAML("app", "1")})
	setDeps := func(f *fixture, deps ...v1alpha1.SyncReference) {
		t.Helper()
		if err := f.c.Get(ctx, client.ObjectKeyFromObject(f.sync), f.sync); err != nil {
			t.Fatal(err)
		}
		f.sync.Spec.DependsOn = deps
		if err := f.c.Update(ctx, f.sync); err != nil {
			t.Fatal(err)
		}
	}
	reconcile := func(f *fixture) (ctrl.Result, *v1alpha1.Sync) {
		t.Helper()
		r := &Reconciler{Client: f.c, Runner: f.runner}
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(f.sync)})
		if err != nil {
			t.Fatal(err)
		}
		s := &v1alpha1.Sync{}
		if err := f.c.Get(ctx, client.ObjectKeyFromObject(f.sync), s); err != nil {
			t.Fatal(err)
		}
		return res, s
	}
	setDeps(apps, v1alpha1.SyncReference{Name: "apps", Namespace: "deps-infra"})

	// infra has not synced: apps waits and applies nothing.
	res, s := reconcile(apps)
	ready := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Reason != ReasonDependencyNotReady || !strings.Contains(ready.Message, "dependency deps-infra/apps is not ready") || res.RequeueAfter != dependencyRetry {
		t.Fatalf("before infra synced: Ready %+v, requeue %v", ready, res.RequeueAfter)
	}
	if _, ok := configMapValue(t, "deps-apps", "app"); ok {
		t.Fatal("apps applied before its dependency was ready")
	}

	// infra becomes Ready at its revision: apps applies.
	if _, s := reconcile(infra); !apimeta.IsStatusConditionTrue(s.Status.Conditions, v1alpha1.ConditionReady) {
		t.Fatalf("infra not ready: %+v", s.Status.Conditions)
	}
	if _, s = reconcile(apps); !apimeta.IsStatusConditionTrue(s.Status.Conditions, v1alpha1.ConditionReady) {
		t.Fatalf("apps not ready after infra: %+v", s.Status.Conditions)
	}
	if v, _ := configMapValue(t, "deps-apps", "app"); v != "1" {
		t.Fatalf("apps did not apply: %q", v)
	}

	// infra now depends on apps: a cycle, refused with its path.
	setDeps(infra, v1alpha1.SyncReference{Name: "apps", Namespace: "deps-apps"})
	_, s = reconcile(apps)
	ready = apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady)
	stalled := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionStalled)
	want := "dependency cycle: deps-apps/apps -> deps-infra/apps -> deps-apps/apps"
	if ready == nil || ready.Message != want || stalled == nil || stalled.Status != metav1.ConditionTrue {
		t.Fatalf("cycle: Ready %+v, Stalled %+v; want %q", ready, stalled, want)
	}
}
