package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	gosync "sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hsync "homeostat.dev/homeostat/sync"
)

// One writer per Sync: a second holder waits for the Lease or is refused,
// and a controller finding it held syncs nothing and comes back later.
func TestLeaseAllowsOneWriterPerSync(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "lease-one-writer")
	f.repo.commit("a", map[string]string{"a.yaml": configMapYAML("a", "1")})
	unlock, err := Lock(ctx, f.c, f.sync, "cli test", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Lock(ctx, f.c, f.sync, "another", 0)
	var busy *BusyError
	if !errors.As(err, &busy) || busy.Holder != "cli test" || !strings.Contains(err.Error(), "being synced by cli test") {
		t.Fatalf("want a BusyError naming the holder, got %v", err)
	}
	r := &Reconciler{Client: f.c, Runner: f.runner, Leases: f.c, Holder: "controller test"}
	res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(f.sync)})
	if err != nil || res.RequeueAfter != busyRetry {
		t.Fatalf("a busy Sync: want a retry in %s, got %+v %v", busyRetry, res, err)
	}
	if _, ok := configMapValue(t, f.ns, "a"); ok || snapshotCount(t, f.ns) != 0 {
		t.Fatal("the controller synced a Sync whose Lease the CLI held")
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		unlock()
	}()
	unlock2, err := Lock(ctx, f.c, f.sync, "another", 30*time.Second)
	if err != nil {
		t.Fatalf("waiting for the Lease: %v", err)
	}
	unlock2()
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(f.sync)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := configMapValue(t, f.ns, "a"); !ok {
		t.Fatal("the controller did not sync once the Lease was free")
	}
}

// A CLI sync racing the controller over a run of commits never loses an
// object from the inventory: at the end everything labelled as the Sync's
// is in it, and a removal commit prunes every one.
func TestCLIRacingTheControllerKeepsTheInventory(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "lease-race")
	f.sync.Spec.PruneLimit = new(int32(1000))
	if err := env.Client.Update(ctx, f.sync); err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{Client: f.c, Runner: f.runner, Leases: f.c, Holder: "controller test"}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(f.sync)}
	cli := &Runner{Client: f.c, Engine: f.runner.Engine, Source: f.runner.Source}
	files := map[string]string{}
	batch := func(name string) {
		for i := range 5 {
			files[fmt.Sprintf("%s-%d.yaml", name, i)] = configMapYAML(fmt.Sprintf("%s-%d", name, i), "1")
		}
		f.repo.commit(name, files)
	}
	for round := range 6 {
		batch(fmt.Sprint("r", round))
		var wg gosync.WaitGroup
		// A second commit lands while both writers sync: they see
		// different revisions.
		wg.Go(func() {
			time.Sleep(time.Duration(20*round) * time.Millisecond)
			batch(fmt.Sprint("late", round))
		})
		wg.Go(func() {
			for range 3 {
				_, _ = r.Reconcile(ctx, req)
			}
		})
		wg.Go(func() {
			s := f.sync.DeepCopy()
			if _, err := cli.SyncLocked(ctx, s, TriggerManual, "cli test", time.Minute); err != nil {
				t.Errorf("cli sync: %v", err)
			}
		})
		wg.Wait()
	}
	if err := env.Client.Get(ctx, req.NamespacedName, f.sync); err != nil {
		t.Fatal(err)
	}
	inv := hsync.InventoryFromAPI(f.sync.Status.Inventory)
	var labelled corev1.ConfigMapList
	if err := env.Client.List(ctx, &labelled, client.InNamespace(f.ns), client.MatchingLabels{hsync.LabelSync: "apps"}); err != nil {
		t.Fatal(err)
	}
	if len(labelled.Items) < 30 {
		t.Fatalf("want at least 30 ConfigMaps applied, got %d", len(labelled.Items))
	}
	for _, cm := range labelled.Items {
		if !inv.Contains(hsync.Ref{Kind: "ConfigMap", Namespace: f.ns, Name: cm.Name}) {
			t.Fatalf("ConfigMap %s was applied but is in no inventory", cm.Name)
		}
	}
	gone := map[string]string{"keep.yaml": configMapYAML("keep", "1")}
	for name := range files {
		gone[name] = ""
	}
	f.repo.commit("remove the rounds", gone)
	if _, err := cli.SyncLocked(ctx, f.sync, TriggerManual, "cli test", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.List(ctx, &labelled, client.InNamespace(f.ns), client.MatchingLabels{hsync.LabelSync: "apps"}); err != nil {
		t.Fatal(err)
	}
	if len(labelled.Items) != 1 {
		t.Fatalf("orphans after the removal: %d ConfigMaps left", len(labelled.Items))
	}
}
