package controller

import (
	"context"
	"testing"

	"homeostat.dev/homeostat/sync/snapshot"
)

func TestSnapshotHistoryKeepsNewest(t *testing.T) {
	f := newFixture(t, "sync-history")
	f.sync.Spec.History = 2
	if err := env.Client.Update(context.Background(), f.sync); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i, v := range []string{"1", "2", "3", "4"} {
		f.repo.commit("v"+v, map[string]string{"a.yaml": configMapYAML("a", v)})
		o := f.run(TriggerInterval)
		mustSucceed(t, o)
		if o.Snapshot == "" {
			t.Fatalf("sync %d of a new revision wrote no snapshot", i)
		}
		names = append(names, o.Snapshot)
	}
	snaps, err := snapshot.List(context.Background(), env.Client, f.ns, "apps")
	if err != nil {
		t.Fatal(err)
	}
	// history 2, but the newest three successes are rollback targets: kept.
	if len(snaps) != 3 || snaps[0].Name != names[3] || snaps[1].Name != names[2] || snaps[2].Name != names[1] {
		got := []string{}
		for _, s := range snaps {
			got = append(got, s.Name)
		}
		t.Fatalf("want the newest three %v, got %v", names[1:], got)
	}
	if snaps[0].Spec.Message != "v4" || snaps[0].OwnerReferences[0].UID != f.sync.UID {
		t.Fatalf("newest snapshot: %+v owners %+v", snaps[0].Spec, snaps[0].OwnerReferences)
	}
}
