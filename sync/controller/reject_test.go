package controller

import (
	"context"
	"strings"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
	"homeostat.dev/homeostat/sync/snapshot"
)

func TestBadCommitIsRejectedWhole(t *testing.T) {
	f := newFixture(t, "sync-reject")
	f.repo.commit("good", map[string]string{"a.yaml": configMapYAML("a", "1"), "b.yaml": configMapYAML("b", "1")})
	mustSucceed(t, f.run(TriggerManual))
	good := f.sync.Status.LastAppliedRevision

	// One commit changes a, removes b and breaks an App: nothing of it may land.
	f.writes.reset()
	f.repo.commit("bad", map[string]string{
		"a.yaml":        configMapYAML("a", "2"),
		"b.yaml":        "",
		"apps/bad.yaml": "apiVersion: homeostat.dev/v1alpha1\nkind: App\nmetadata:\n  name: bad\nspec:\n  image: nginx\n  replicas: lots\n",
	})
	o := f.run(TriggerInterval)
	if o.Err == nil || o.Reason != ReasonRenderFailed {
		t.Fatalf("want a render failure, got reason %q err %v", o.Reason, o.Err)
	}
	if !strings.Contains(o.Err.Error(), "apps/bad.yaml") {
		t.Fatalf("the error must name the file: %v", o.Err)
	}
	if v, _ := configMapValue(t, f.ns, "a"); v != "1" {
		t.Fatalf("a was changed by a rejected revision: %q", v)
	}
	if _, ok := configMapValue(t, f.ns, "b"); !ok {
		t.Fatal("b was pruned by a rejected revision")
	}
	for _, p := range f.writes.paths {
		if strings.Contains(p, "/configmaps/") {
			t.Fatalf("a rejected revision wrote %s", p)
		}
	}
	s := f.sync
	if s.Status.LastAppliedRevision != good || s.Status.LastAttemptedRevision == good {
		t.Fatalf("revisions: applied %s (want %s), attempted %s", s.Status.LastAppliedRevision, good, s.Status.LastAttemptedRevision)
	}
	if !apimeta.IsStatusConditionTrue(s.Status.Conditions, v1alpha1.ConditionStalled) ||
		!apimeta.IsStatusConditionFalse(s.Status.Conditions, v1alpha1.ConditionReady) {
		t.Fatalf("want Ready=False and Stalled=True, got %+v", s.Status.Conditions)
	}
	if len(s.Status.Inventory) != 2 {
		t.Fatalf("inventory changed by a rejected revision: %v", s.Status.Inventory)
	}
	snaps, err := snapshot.List(context.Background(), env.Client, f.ns, "apps")
	if err != nil {
		t.Fatal(err)
	}
	if snaps[0].Status.Result != v1alpha1.SnapshotFailed || !strings.Contains(snaps[0].Status.Error, "apps/bad.yaml") || len(snaps[0].Status.Objects) != 0 {
		t.Fatalf("the failed attempt's snapshot: %+v", snaps[0].Status)
	}

	// Fixing the commit recovers, and the removed b is pruned then.
	f.repo.commit("fix", map[string]string{"apps/bad.yaml": ""})
	o = f.run(TriggerInterval)
	mustSucceed(t, o)
	if o.Changes.Count(hsync.Pruned) != 1 || o.Changes.Count(hsync.Configured) != 1 {
		t.Fatalf("after the fix: %s", o.Changes)
	}
	if apimeta.FindStatusCondition(f.sync.Status.Conditions, v1alpha1.ConditionStalled) != nil {
		t.Fatal("Stalled must clear after a good sync")
	}
}
