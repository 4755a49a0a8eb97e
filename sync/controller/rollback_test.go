package controller

import (
	"context"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	"homeostat.dev/homeostat/sync/snapshot"
)

func TestRollbackReappliesSnapshotAndSuspends(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "sync-rollback")
	f.repo.commit("v1", map[string]string{"a.yaml": configMapYAML("a", "1"), "b.yaml": configMapYAML("b", "1")})
	o1 := f.run(TriggerManual)
	mustSucceed(t, o1)
	f.repo.commit("v2", map[string]string{"a.yaml": configMapYAML("a", "2"), "b.yaml": "", "c.yaml": configMapYAML("c", "2")})
	o2 := f.run(TriggerManual)
	mustSucceed(t, o2)

	// The two snapshots differ object by object.
	var s1, s2 v1alpha1.Snapshot
	for name, s := range map[string]*v1alpha1.Snapshot{o1.Snapshot: &s1, o2.Snapshot: &s2} {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: name}, s); err != nil {
			t.Fatal(err)
		}
	}
	diffs, err := snapshot.Compare(&s1, &s2)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range diffs {
		got[d.Ref.String()] = string(d.Action)
	}
	want := map[string]string{"ConfigMap/" + f.ns + "/a": "configured", "ConfigMap/" + f.ns + "/b": "pruned", "ConfigMap/" + f.ns + "/c": "created"}
	if len(got) != len(want) {
		t.Fatalf("snapshot diff: got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("snapshot diff: got %v, want %v", got, want)
		}
	}

	o, err := f.runner.Rollback(ctx, f.sync, o1.Snapshot)
	if err != nil {
		t.Fatalf("rollback: %v\n%s", err, o.Changes)
	}
	if v, _ := configMapValue(t, f.ns, "a"); v != "1" {
		t.Fatalf("a not rolled back: %q", v)
	}
	if _, ok := configMapValue(t, f.ns, "b"); !ok {
		t.Fatal("b not restored")
	}
	if _, ok := configMapValue(t, f.ns, "c"); ok {
		t.Fatal("c (not in the snapshot) not pruned")
	}
	var s v1alpha1.Sync
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(f.sync), &s); err != nil {
		t.Fatal(err)
	}
	ready := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady)
	if !s.Spec.Suspend || ready == nil || ready.Reason != ReasonRolledBack {
		t.Fatalf("want suspended with Ready reason RolledBack, got suspend=%v %+v", s.Spec.Suspend, ready)
	}

	// While suspended the controller leaves it alone, and keeps saying why.
	r := &Reconciler{Client: f.c, Runner: f.runner}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(f.sync)}); err != nil {
		t.Fatal(err)
	}
	if v, _ := configMapValue(t, f.ns, "a"); v != "1" {
		t.Fatalf("a suspended Sync was synced: a=%q", v)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(f.sync), &s); err != nil {
		t.Fatal(err)
	}
	if c := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady); c.Reason != ReasonRolledBack {
		t.Fatalf("reconcile of a rolled-back Sync lost the reason: %+v", c)
	}

	// Resume: the next reconcile syncs the newest revision again.
	if err := Resume(ctx, f.c, &s); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(f.sync)}); err != nil {
		t.Fatal(err)
	}
	if v, _ := configMapValue(t, f.ns, "a"); v != "2" {
		t.Fatalf("after resume a=%q, want 2", v)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(f.sync), &s); err != nil {
		t.Fatal(err)
	}
	if s.Spec.Suspend || !apimeta.IsStatusConditionTrue(s.Status.Conditions, v1alpha1.ConditionReady) || s.Status.LastHandledSyncAt == "" {
		t.Fatalf("after resume: suspend=%v conditions %+v lastHandledSyncAt %q", s.Spec.Suspend, s.Status.Conditions, s.Status.LastHandledSyncAt)
	}
}
