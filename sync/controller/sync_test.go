package controller

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
	"homeostat.dev/homeostat/sync/snapshot"
)

func TestFirstSyncUpdateAndPrune(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "sync-lifecycle")
	f.repo.commit("two apps", map[string]string{
		"apps/web.yaml":    appYAML("web", f.ns, "nginx:1"),
		"apps/worker.yaml": appYAML("worker", f.ns, "busybox:1"),
		"config/a.yaml":    configMapYAML("a", "1"),
	})

	// First sync: everything created, children owned by their App.
	o := f.run(TriggerManual)
	mustSucceed(t, o)
	if got := o.Changes.Count(hsync.Created); got != 7 {
		t.Fatalf("want 7 created (2 apps x 3 + 1 ConfigMap), got\n%s", o.Changes)
	}
	var app v1alpha1.App
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "web"}, &app); err != nil {
		t.Fatal(err)
	}
	var dep appsv1.Deployment
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "web"}, &dep); err != nil {
		t.Fatal(err)
	}
	if refs := dep.OwnerReferences; len(refs) != 1 || refs[0].UID != app.UID || refs[0].Kind != "App" {
		t.Fatalf("Deployment web: want an ownerReference to App web (%s), got %+v", app.UID, refs)
	}
	if v, _ := configMapValue(t, f.ns, "a"); v != "1" {
		t.Fatalf("ConfigMap a: got %q", v)
	}
	s := f.sync
	if len(s.Status.Inventory) != 7 || s.Status.LastAppliedRevision == "" || s.Status.LastSnapshot == "" {
		t.Fatalf("status not recorded: %+v", s.Status)
	}

	// An update: only the changed App's Deployment (and the App) change.
	f.writes.reset()
	f.repo.commit("bump web", map[string]string{"apps/web.yaml": appYAML("web", f.ns, "nginx:2")})
	o = f.run(TriggerInterval)
	mustSucceed(t, o)
	if o.Changes.Count(hsync.Configured) != 2 || o.Changes.Count(hsync.Created) != 0 {
		t.Fatalf("update: want App and Deployment web configured, got\n%s", o.Changes)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "web"}, &dep); err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != "nginx:2" {
		t.Fatalf("Deployment web image: %s", img)
	}

	// An object outside the inventory (made by hand, same namespace, even
	// with homeostat's managed-by label) must survive every prune.
	bystander := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "by-hand", Namespace: f.ns,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "homeostat"}}}
	if err := env.Client.Create(ctx, bystander); err != nil {
		t.Fatal(err)
	}

	// Removing an app prunes its objects and nothing else.
	f.repo.commit("remove worker", map[string]string{"apps/worker.yaml": ""})
	o = f.run(TriggerInterval)
	mustSucceed(t, o)
	if o.Changes.Count(hsync.Pruned) != 3 {
		t.Fatalf("want worker's 3 objects pruned, got\n%s", o.Changes)
	}
	for _, obj := range []client.Object{&v1alpha1.App{}, &appsv1.Deployment{}, &corev1.Service{}} {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "worker"}, obj)
		if client.IgnoreNotFound(err) != nil || err == nil {
			t.Fatalf("%T worker still exists after prune (err %v)", obj, err)
		}
	}
	if _, ok := configMapValue(t, f.ns, "by-hand"); !ok {
		t.Fatal("an object outside the inventory was deleted")
	}
	if len(f.sync.Status.Inventory) != 4 {
		t.Fatalf("inventory after prune: %d entries", len(f.sync.Status.Inventory))
	}
	snaps, err := snapshot.List(ctx, env.Client, f.ns, "apps")
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 3 || snaps[0].Status.Pruned != 3 || snaps[0].Spec.Message != "remove worker" {
		t.Fatalf("want 3 snapshots, newest recording the prune, got %d (newest %+v)", len(snaps), snaps[0].Spec)
	}
}

func TestNoOpSyncWritesNothing(t *testing.T) {
	f := newFixture(t, "sync-noop")
	f.repo.commit("apps", map[string]string{
		"apps/web.yaml": appYAML("web", f.ns, "nginx:1"),
		"config/a.yaml": configMapYAML("a", "1"),
	})
	mustSucceed(t, f.run(TriggerManual))
	mustSucceed(t, f.run(TriggerInterval))
	before := *f.sync.Status.DeepCopy()
	f.writes.reset()
	o := f.run(TriggerInterval)
	mustSucceed(t, o)
	if o.Changes.Changed() || o.Snapshot != "" {
		t.Fatalf("no-op sync changed something: %s (snapshot %q)", o.Changes, o.Snapshot)
	}
	// run patches the status like the CLI; an unchanged status patch is an
	// empty "{}", the one request allowed here. Nothing else may write.
	var others []string
	for _, p := range f.writes.paths {
		if p != "PATCH /apis/homeostat.dev/v1alpha1/namespaces/"+f.ns+"/syncs/apps/status" {
			others = append(others, p)
		}
	}
	if len(others) != 0 {
		t.Fatalf("a no-op sync wrote: %v", others)
	}
	if !apiequality.Semantic.DeepEqual(before, f.sync.Status) {
		t.Fatalf("a no-op sync changed the status:\nbefore %+v\nafter  %+v", before, f.sync.Status)
	}
}

func TestPruneFalseKeepsRemovedObjects(t *testing.T) {
	f := newFixture(t, "sync-noprune")
	f.repo.commit("a and b", map[string]string{"a.yaml": configMapYAML("a", "1"), "b.yaml": configMapYAML("b", "1")})
	mustSucceed(t, f.run(TriggerManual))
	f.sync.Spec.Prune = new(false)
	if err := env.Client.Update(context.Background(), f.sync); err != nil {
		t.Fatal(err)
	}
	f.repo.commit("drop b", map[string]string{"b.yaml": ""})
	o := f.run(TriggerManual)
	mustSucceed(t, o)
	if o.Changes.Count(hsync.Pruned) != 0 {
		t.Fatalf("prune: false pruned:\n%s", o.Changes)
	}
	if _, ok := configMapValue(t, f.ns, "b"); !ok {
		t.Fatal("b was deleted although prune is false")
	}
	if len(f.sync.Status.Inventory) != 2 {
		t.Fatalf("b must stay in the inventory so a later prune removes it: %v", f.sync.Status.Inventory)
	}
}
