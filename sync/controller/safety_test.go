package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
	"homeostat.dev/homeostat/sync/snapshot"
)

// deploymentYAML is a Deployment whose selector is app=<selector>.
func deploymentYAML(name, selector, annotations string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
  annotations: {%s}
spec:
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec: {containers: [{name: c, image: nginx}]}
`, name, annotations, selector, selector)
}

// update re-reads the fixture's Sync, changes its spec and writes it.
func (f *fixture) update(change func(*v1alpha1.Sync)) {
	f.t.Helper()
	ctx := context.Background()
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(f.sync), f.sync); err != nil {
		f.t.Fatal(err)
	}
	change(f.sync)
	if err := env.Client.Update(ctx, f.sync); err != nil {
		f.t.Fatal(err)
	}
}

func snapshotCount(t *testing.T, ns string) int {
	t.Helper()
	snaps, err := snapshot.List(context.Background(), env.Client, ns, "apps")
	if err != nil {
		t.Fatal(err)
	}
	return len(snaps)
}

// A selector change fails once, naming the field and the opt-in; the same
// revision is not retried on the interval; spec.force re-creates it.
func TestImmutableFieldFailsOnceThenRecreatesOnForce(t *testing.T) {
	f := newFixture(t, "safety-immutable")
	f.repo.commit("web", map[string]string{"web.yaml": deploymentYAML("web", "v1", "")})
	mustSucceed(t, f.run(TriggerManual))

	f.repo.commit("new selector", map[string]string{"web.yaml": deploymentYAML("web", "v2", "")})
	o := f.run(TriggerInterval)
	if o.Reason != ReasonImmutableField || !strings.Contains(o.Err.Error(), "spec.selector") || !strings.Contains(o.Err.Error(), "homeostat.dev/recreate") {
		t.Fatalf("want %s naming spec.selector and the annotation, got %s: %v", ReasonImmutableField, o.Reason, o.Err)
	}
	if !apimeta.IsStatusConditionTrue(f.sync.Status.Conditions, v1alpha1.ConditionStalled) {
		t.Fatalf("want Stalled, got %+v", f.sync.Status.Conditions)
	}
	snaps := snapshotCount(t, f.ns)
	f.writes.reset()
	if o := f.runner.Sync(context.Background(), f.sync, TriggerInterval); !o.Skipped {
		t.Fatalf("the stalled revision was tried again on the interval: %s %v", o.Reason, o.Err)
	}
	if n := snapshotCount(t, f.ns); n != snaps || f.writes.n.Load() != 0 {
		t.Fatalf("a skipped interval wrote: %d snapshots (had %d), %v", n, snaps, f.writes.paths)
	}
	if o := f.run(TriggerManual); o.Skipped || o.Reason != ReasonImmutableField {
		t.Fatalf("a manual sync must try again: skipped %v, %s", o.Skipped, o.Reason)
	}

	f.update(func(s *v1alpha1.Sync) { s.Spec.Force = true })
	o = f.run(TriggerInterval)
	mustSucceed(t, o)
	if len(o.Changes.Changes) != 1 || !o.Changes.Changes[0].Recreated {
		t.Fatalf("want web recreated, got\n%s", o.Changes)
	}
}

// A commit that removes every file (or most) prunes nothing unless a limit
// or --allow-mass-prune allows it.
func TestMassPruneIsRefused(t *testing.T) {
	f := newFixture(t, "safety-mass-prune")
	files := map[string]string{}
	for i := range 4 {
		files[fmt.Sprintf("c%d.yaml", i)] = configMapYAML(fmt.Sprintf("c%d", i), "1")
	}
	f.repo.commit("four", files)
	mustSucceed(t, f.run(TriggerManual))

	gone := map[string]string{}
	for name := range files {
		gone[name] = ""
	}
	gone["README.md"] = "nothing here any more\n"
	f.repo.commit("remove everything", gone)
	o := f.run(TriggerInterval)
	if o.Reason != ReasonPruneRefused || !strings.Contains(o.Err.Error(), "refusing to prune 4 of 4 objects") {
		t.Fatalf("want %s for 4 of 4, got %s: %v", ReasonPruneRefused, o.Reason, o.Err)
	}
	for i := range 4 {
		if _, ok := configMapValue(t, f.ns, fmt.Sprintf("c%d", i)); !ok {
			t.Fatalf("c%d was pruned by a refused mass prune", i)
		}
	}
	if len(f.sync.Status.Inventory) != 4 {
		t.Fatalf("the inventory must keep what was not pruned: %v", f.sync.Status.Inventory)
	}

	f.update(func(s *v1alpha1.Sync) { s.Spec.PruneLimit = new(int32(3)) })
	if o := f.run(TriggerInterval); o.Reason != ReasonPruneRefused || !strings.Contains(o.Err.Error(), "spec.pruneLimit (3)") {
		t.Fatalf("a limit of 3 must refuse 4: %s %v", o.Reason, o.Err)
	}
	f.runner.AllowMassPrune = true
	o = f.run(TriggerManual)
	f.runner.AllowMassPrune = false
	mustSucceed(t, o)
	if o.Changes.Count(hsync.Pruned) != 4 || len(f.sync.Status.Inventory) != 0 {
		t.Fatalf("--allow-mass-prune: want 4 pruned, got\n%s", o.Changes)
	}
}

// An object annotated homeostat.dev/prune: disabled stays when it leaves
// git, and leaves the inventory.
func TestPruneDisabledKeepsTheObject(t *testing.T) {
	f := newFixture(t, "safety-prune-disabled")
	kept := strings.Replace(configMapYAML("kept", "1"), "metadata:\n", "metadata:\n  annotations: {homeostat.dev/prune: disabled}\n", 1)
	f.repo.commit("three", map[string]string{"kept.yaml": kept, "a.yaml": configMapYAML("a", "1"), "b.yaml": configMapYAML("b", "1")})
	mustSucceed(t, f.run(TriggerManual))
	f.repo.commit("drop kept", map[string]string{"kept.yaml": ""})
	mustSucceed(t, f.run(TriggerInterval))
	if _, ok := configMapValue(t, f.ns, "kept"); !ok {
		t.Fatal("an object with prune: disabled was pruned")
	}
	for _, r := range f.sync.Status.Inventory {
		if r.Name == "kept" {
			t.Fatalf("kept must leave the inventory: %v", f.sync.Status.Inventory)
		}
	}
}

// handMadeClaim creates a PersistentVolumeClaim homeostat did not apply.
func handMadeClaim(t *testing.T, ns string) *corev1.PersistentVolumeClaim {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if err := env.Client.Create(context.Background(), pvc); err != nil {
		t.Fatal(err)
	}
	return pvc
}

func namespaceYAML(name string) string {
	return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n"
}

func namespaceLive(t *testing.T, name string) bool {
	t.Helper()
	var n corev1.Namespace
	err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, &n)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil && n.DeletionTimestamp.IsZero()
}

// A Namespace that leaves git while it holds a volume claim made by hand is
// kept (the Sync says so) until the claim is gone; the same when the Sync
// itself is deleted.
func TestNamespaceHoldingForeignObjectsIsNotPruned(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "safety-foreign")
	dbNS := f.ns + "-db"
	cm := strings.Replace(configMapYAML("settings", "1"), "metadata:\n", "metadata:\n  namespace: "+dbNS+"\n", 1)
	files := map[string]string{"ns.yaml": namespaceYAML(dbNS), "settings.yaml": cm}
	for i := range 3 {
		files[fmt.Sprintf("c%d.yaml", i)] = configMapYAML(fmt.Sprintf("c%d", i), "1")
	}
	f.repo.commit("db namespace", files)
	mustSucceed(t, f.run(TriggerManual))
	handMadeClaim(t, dbNS)

	f.repo.commit("drop the db namespace", map[string]string{"ns.yaml": "", "settings.yaml": ""})
	o := f.run(TriggerInterval)
	mustSucceed(t, o)
	if !namespaceLive(t, dbNS) {
		t.Fatal("a Namespace holding a hand-made PersistentVolumeClaim was deleted")
	}
	ready := apimeta.FindStatusCondition(f.sync.Status.Conditions, v1alpha1.ConditionReady)
	if o.Changes.Count(hsync.Kept) != 1 || !strings.Contains(ready.Message, "kept Namespace/"+dbNS) || !strings.Contains(ready.Message, "PersistentVolumeClaim/"+dbNS+"/data") {
		t.Fatalf("the Sync must say it kept the Namespace and why; Ready: %q\n%s", ready.Message, o.Changes)
	}
	if _, ok := configMapValue(t, dbNS, "settings"); ok {
		t.Fatal("the Sync's own ConfigMap in the kept Namespace was not pruned")
	}

	// Deleting the Sync keeps the guard.
	r := &Reconciler{Client: f.c, Runner: f.runner}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(f.sync)}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, f.sync); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if !namespaceLive(t, dbNS) {
		t.Fatal("deleting the Sync deleted a Namespace holding a hand-made PersistentVolumeClaim")
	}
	if _, ok := configMapValue(t, f.ns, "c0"); ok {
		t.Fatal("deleting the Sync did not prune its ConfigMaps")
	}
}

// Failures never push out the newest successful Snapshots, identical
// failures share one Snapshot, and a failed fetch records the commit it tried.
func TestFailuresKeepRollbackTargets(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "safety-history")
	f.update(func(s *v1alpha1.Sync) { s.Spec.History = 2 })
	var good []string
	for i := range 3 {
		f.repo.commit(fmt.Sprint("v", i), map[string]string{"a.yaml": configMapYAML("a", fmt.Sprint(i))})
		o := f.run(TriggerManual)
		mustSucceed(t, o)
		good = append(good, o.Snapshot)
	}
	// 2 x history distinct failures, then the last one three times more.
	for i := range 4 {
		f.repo.commit(fmt.Sprint("bad ", i), map[string]string{"bad.yaml": fmt.Sprintf("kind: [%d\n", i)})
		if o := f.run(TriggerInterval); o.Err == nil {
			t.Fatal("a broken commit synced")
		}
	}
	for range 3 {
		if o := f.run(TriggerInterval); o.Err == nil {
			t.Fatal("a broken commit synced")
		}
	}
	snaps, err := snapshot.List(ctx, env.Client, f.ns, "apps")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range snaps {
		names = append(names, fmt.Sprintf("%s:%s:%d", s.Name, s.Status.Result, s.Status.Count))
	}
	if len(snaps) != 5 {
		t.Fatalf("want 2 failures and 3 successes, got %v", names)
	}
	if snaps[0].Status.Count != 4 || snaps[0].Status.FirstAt == nil || snaps[0].Status.LastAt == nil || snaps[0].Status.LastAt.Before(snaps[0].Status.FirstAt) {
		t.Fatalf("the repeated failure: want count 4 with first and last time, got %v (%v .. %v)", names, snaps[0].Status.FirstAt, snaps[0].Status.LastAt)
	}
	for i, name := range good {
		if snaps[4-i].Name != name || snaps[4-i].Status.Result != v1alpha1.SnapshotSucceeded {
			t.Fatalf("successful snapshot %s was pushed out: %v", name, names)
		}
	}
	if _, err := f.runner.Rollback(ctx, f.sync, good[2]); err != nil {
		t.Fatalf("roll back after the failures: %v", err)
	}

	// A pinned commit that cannot be fetched names the commit it tried.
	missing := strings.Repeat("ab", 20)
	f.update(func(s *v1alpha1.Sync) { s.Spec.Suspend = false; s.Spec.Ref = &v1alpha1.GitRef{Commit: missing} })
	o := f.run(TriggerManual)
	if o.Reason != ReasonArtifactFailed {
		t.Fatalf("want %s, got %s: %v", ReasonArtifactFailed, o.Reason, o.Err)
	}
	var snap v1alpha1.Snapshot
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: o.Snapshot}, &snap); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(snap.Spec.Revision, missing) {
		t.Fatalf("the failed fetch's snapshot names revision %q, want %s", snap.Spec.Revision, missing)
	}
}
