package snapshot

import (
	"encoding/json"
	"fmt"
	"testing"
	"testing/fstest"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/render"
	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
)

// etcdLimit is etcd's default request size limit, which bounds an object.
const etcdLimit = 1536 * 1024

// The Snapshot of a first sync of 10,000 Apps (30,000 objects, every one
// created) fits in one etcd object, with its objects for rollback.
func TestSnapshotOf30000ObjectsFitsEtcd(t *testing.T) {
	fsys := fstest.MapFS{}
	for i := range 10000 {
		fsys[fmt.Sprintf("apps/app-%05d.yaml", i)] = &fstest.MapFile{Data: fmt.Appendf(nil,
			"apiVersion: homeostat.dev/v1alpha1\nkind: App\nmetadata:\n  name: app-%05d\n  namespace: team-%d\nspec:\n  image: registry.example.com/app-%05d:v1\n  port: 8080\n",
			i, i%20, i)}
	}
	objs, problems := render.Render(fsys)
	if len(problems) > 0 || len(objs) != 30000 {
		t.Fatalf("render: %d objects, %v", len(objs), problems)
	}
	var cs hsync.ChangeSet
	for _, o := range objs {
		cs.Add(hsync.Change{Ref: hsync.RefOf(o.Object), Action: hsync.Created})
	}
	s := &v1alpha1.Sync{ObjectMeta: metav1.ObjectMeta{Name: "apps", Namespace: "ns", UID: "u"}}
	snap, err := build(s, Record{Revision: "main@sha1:abc", Changes: cs, Inventory: cs.Inventory(), Objects: objs}, metav1.Now())
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Snapshot of 30,000 objects: %d bytes (objects %d, compressed inventory %d, %d changes listed, %d omitted)",
		len(body), len(snap.Status.Objects), len(snap.Status.InventoryCompressed), len(snap.Status.Changes), snap.Status.ChangesOmitted)
	if len(body) > etcdLimit {
		t.Fatalf("a Snapshot of 30,000 objects takes %d bytes, over etcd's %d", len(body), etcdLimit)
	}
	if snap.Status.ChangesOmitted != 29000 || len(snap.Status.Objects) == 0 {
		t.Fatalf("changes: %d listed, %d omitted; objects %d bytes", len(snap.Status.Changes), snap.Status.ChangesOmitted, len(snap.Status.Objects))
	}
}
