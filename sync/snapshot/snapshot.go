package snapshot

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render"
	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
)

// LabelSync names the Sync a Snapshot belongs to, for listing.
const LabelSync = "homeostat.dev/sync"

// DefaultHistory is how many Snapshots are kept when spec.history is unset.
const DefaultHistory = 20

// Record is what one sync attempt did, as the loop saw it.
type Record struct {
	Revision, Message, Author, Path, Trigger string
	Changes                                  hsync.ChangeSet
	Inventory                                hsync.Inventory
	// Healthy is false when the wait found unhealthy objects (Health).
	Healthy bool
	Health  []hsync.Change
	Timings v1alpha1.SnapshotTimings
	// Err is why the sync failed; nil for a success.
	Err error
	// Objects is the rendered desired set (nil when rendering failed).
	Objects []render.Object
}

// Write creates the Snapshot of one sync attempt, owned by s, then deletes
// the oldest Snapshots beyond spec.history. Snapshot names sort in time
// order: "<sync>-<yyyymmdd-hhmmss-mmm>".
func Write(ctx context.Context, c client.Client, s *v1alpha1.Sync, r Record) (*v1alpha1.Snapshot, error) {
	objs, err := Encode(r.Objects)
	if err != nil {
		return nil, err
	}
	snap := &v1alpha1.Snapshot{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.Namespace,
			Labels:    map[string]string{LabelSync: s.Name},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "Sync", Name: s.Name, UID: s.UID,
			}},
		},
		Spec: v1alpha1.SnapshotSpec{Sync: s.Name, Revision: r.Revision, Message: r.Message, Author: r.Author, Path: r.Path, Trigger: r.Trigger},
	}
	status := v1alpha1.SnapshotStatus{
		Result:     v1alpha1.SnapshotSucceeded,
		Created:    int32(r.Changes.Count(hsync.Created)),
		Configured: int32(r.Changes.Count(hsync.Configured)),
		Unchanged:  int32(r.Changes.Count(hsync.Unchanged)),
		Pruned:     int32(r.Changes.Count(hsync.Pruned)),
		Changes:    r.Changes.API(),
		Inventory:  r.Inventory.API(),
		Healthy:    r.Healthy,
		Timings:    r.Timings,
		Objects:    objs,
	}
	status.Changed = status.Created + status.Configured
	for _, h := range r.Health {
		status.Health = append(status.Health, v1alpha1.Change{Object: h.Ref.String(), Action: h.Err})
	}
	if r.Err != nil {
		status.Result, status.Error = v1alpha1.SnapshotFailed, r.Err.Error()
	}
	now := time.Now().UTC()
	for i := 0; ; i++ {
		stamp := now.Add(time.Duration(i) * time.Millisecond).Format("20060102-150405.000")
		snap.Name = s.Name + "-" + strings.Replace(stamp, ".", "-", 1)
		err = c.Create(ctx, snap)
		if !apierrors.IsAlreadyExists(err) || i > 100 {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create snapshot of %s/%s: %w", s.Namespace, s.Name, err)
	}
	snap.Status = status
	if err := c.Status().Update(ctx, snap); err != nil {
		return nil, fmt.Errorf("write snapshot %s status: %w", snap.Name, err)
	}
	history := int(s.Spec.History)
	if history <= 0 {
		history = DefaultHistory
	}
	return snap, Trim(ctx, c, s.Namespace, s.Name, history)
}

// List returns a Sync's Snapshots, newest first.
func List(ctx context.Context, c client.Client, namespace, sync string) ([]v1alpha1.Snapshot, error) {
	var l v1alpha1.SnapshotList
	if err := c.List(ctx, &l, client.InNamespace(namespace), client.MatchingLabels{LabelSync: sync}); err != nil {
		return nil, fmt.Errorf("list snapshots of %s/%s: %w", namespace, sync, err)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name > l.Items[j].Name })
	return l.Items, nil
}

// Trim deletes all but the newest keep Snapshots of a Sync. It lists
// metadata only: a Snapshot's recorded objects are not needed to delete it.
func Trim(ctx context.Context, c client.Client, namespace, sync string, keep int) error {
	var l metav1.PartialObjectMetadataList
	l.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("SnapshotList"))
	if err := c.List(ctx, &l, client.InNamespace(namespace), client.MatchingLabels{LabelSync: sync}); err != nil {
		return fmt.Errorf("list snapshots of %s/%s: %w", namespace, sync, err)
	}
	items := l.Items
	sort.Slice(items, func(i, j int) bool { return items[i].Name > items[j].Name })
	for i := keep; i < len(items); i++ {
		if err := c.Delete(ctx, &items[i]); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete old snapshot %s: %w", items[i].Name, err)
		}
	}
	return nil
}

// ObjectDiff is how one object differs between two snapshots.
type ObjectDiff struct {
	Ref hsync.Ref
	// Action is created (only in B), pruned (only in A) or configured.
	Action hsync.Action
	Diff   string
}

// Compare lists, object by object, what changed from snapshot a to b.
func Compare(a, b *v1alpha1.Snapshot) ([]ObjectDiff, error) {
	ao, err := Decode(a.Status.Objects)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Name, err)
	}
	bo, err := Decode(b.Status.Objects)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name, err)
	}
	index := func(objs []render.Object) map[string]*unstructured.Unstructured {
		m := map[string]*unstructured.Unstructured{}
		for _, o := range objs {
			m[hsync.RefOf(o.Object).ID()] = o.Object
		}
		return m
	}
	am, bm := index(ao), index(bo)
	ids := map[string]bool{}
	for id := range am {
		ids[id] = true
	}
	for id := range bm {
		ids[id] = true
	}
	var out []ObjectDiff
	for id := range ids {
		x, y := am[id], bm[id]
		d := ObjectDiff{Action: hsync.Configured}
		switch {
		case x == nil:
			d.Action, d.Ref = hsync.Created, hsync.RefOf(y)
		case y == nil:
			d.Action, d.Ref = hsync.Pruned, hsync.RefOf(x)
		default:
			d.Ref = hsync.RefOf(y)
		}
		diff, err := hsync.DiffNamed(x, y, a.Name, b.Name)
		if err != nil {
			return nil, err
		}
		if diff == "" {
			continue
		}
		d.Diff = diff
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref.String() < out[j].Ref.String() })
	return out, nil
}
