package controller

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hsync "homeostat.dev/homeostat/sync"
)

// editByHand changes a ConfigMap the way kubectl edit does (an update by
// another field manager).
func editByHand(t *testing.T, ns, name, value string) {
	t.Helper()
	ctx := context.Background()
	var cm corev1.ConfigMap
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["value"] = value
	if err := env.Client.Update(ctx, &cm, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
}

func TestDriftIsPutBackAndReported(t *testing.T) {
	f := newFixture(t, "sync-drift")
	f.repo.commit("a b c", map[string]string{"a.yaml": configMapYAML("a", "1"), "b.yaml": configMapYAML("b", "1"), "c.yaml": configMapYAML("c", "1")})
	mustSucceed(t, f.run(TriggerManual))

	// Edited and deleted by hand, found by the Engine that applied them.
	editByHand(t, f.ns, "a", "by hand")
	cm := &corev1.ConfigMap{}
	cm.Namespace, cm.Name = f.ns, "b"
	if err := env.Client.Delete(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	o := f.run(TriggerInterval)
	mustSucceed(t, o)
	assertDrift(t, o, "ConfigMap/"+f.ns+"/a", hsync.Configured)
	assertDrift(t, o, "ConfigMap/"+f.ns+"/b", hsync.Created)
	if o.Snapshot == "" {
		t.Fatal("a sync that corrected drift must be recorded in a snapshot")
	}
	for _, name := range []string{"a", "b"} {
		if v, _ := configMapValue(t, f.ns, name); v != "1" {
			t.Fatalf("%s not put back: %q", name, v)
		}
	}

	// Edited by hand and found by a fresh Engine (homeostat sync --once),
	// which has no memory of its last apply.
	editByHand(t, f.ns, "c", "by hand")
	eng, err := hsync.New(env.Config, hsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.runner.Engine = eng
	o = f.run(TriggerInterval)
	mustSucceed(t, o)
	assertDrift(t, o, "ConfigMap/"+f.ns+"/c", hsync.Configured)
	if o.Changes.Count(hsync.Configured) != 1 {
		t.Fatalf("only c drifted: %s", o.Changes)
	}
	if v, _ := configMapValue(t, f.ns, "c"); v != "1" {
		t.Fatalf("c not put back: %q", v)
	}
}

func assertDrift(t *testing.T, o Outcome, object string, want hsync.Action) {
	t.Helper()
	for _, c := range o.Changes.Changes {
		if c.Ref.String() == object {
			if c.Action != want || !c.Drift {
				t.Fatalf("%s: want %s with drift, got %s", object, want, c)
			}
			return
		}
	}
	t.Fatalf("%s not in the change set:\n%s", object, o.Changes)
}
