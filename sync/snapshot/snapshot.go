package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render"
	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
)

// LabelSync names the Sync a Snapshot belongs to, for listing.
const LabelSync = "homeostat.dev/sync"

// Labels that let history be trimmed and failures collapsed from a
// metadata-only list.
const (
	// LabelResult is the Snapshot's result: Succeeded or Failed.
	LabelResult = "homeostat.dev/result"
	// LabelFailure is a hash of a failed attempt's revision and error:
	// consecutive attempts with the same one share a Snapshot.
	LabelFailure = "homeostat.dev/failure"
	// AnnotationCount mirrors status.count for the metadata-only list.
	AnnotationCount = "homeostat.dev/count"
)

// DefaultHistory is how many Snapshots are kept when spec.history is unset.
const DefaultHistory = 20

// KeepSucceeded is how many of the newest successful Snapshots survive
// trimming whatever spec.history says: a run of failures never leaves
// `snapshots rollback` without a target.
const KeepSucceeded = 3

// MaxChanges is how many changes a Snapshot lists; 30,000 of them would
// pass etcd's object size limit. The counts stay complete, and `snapshots
// diff` compares the recorded objects.
const MaxChanges = 1000

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

// failureKey identifies a failure for collapsing: "" for a success.
func (r Record) failureKey() string {
	if r.Err == nil {
		return ""
	}
	sum := sha256.Sum256([]byte(r.Revision + "\x00" + r.Path + "\x00" + r.Err.Error()))
	return hex.EncodeToString(sum[:12])
}

// Write records one sync attempt in one request: it creates the Snapshot,
// owned by s, with its status (Snapshots have no status subresource), or,
// when the newest Snapshot recorded the same failure, counts this attempt
// in it instead. Then it deletes Snapshots beyond spec.history, always
// keeping the newest KeepSucceeded successful ones. Snapshot names sort in
// time order: "<sync>-<yyyymmdd-hhmmss-mmm>".
func Write(ctx context.Context, c client.Client, s *v1alpha1.Sync, r Record) (*v1alpha1.Snapshot, error) {
	items, err := listMeta(ctx, c, s.Namespace, s.Name)
	if err != nil {
		return nil, err
	}
	now := metav1.Now()
	if key := r.failureKey(); key != "" && len(items) > 0 && items[0].Labels[LabelFailure] == key {
		return repeat(ctx, c, &items[0], r, now)
	}
	snap, err := build(s, r, now)
	if err != nil {
		return nil, err
	}
	if err := create(ctx, c, snap, now.Time); err != nil {
		return nil, err
	}
	history := int(s.Spec.History)
	if history <= 0 {
		history = DefaultHistory
	}
	items = append([]metav1.PartialObjectMetadata{{ObjectMeta: snap.ObjectMeta}}, items...)
	return snap, trim(ctx, c, items, history)
}

// build makes the Snapshot of an attempt.
func build(s *v1alpha1.Sync, r Record, now metav1.Time) (*v1alpha1.Snapshot, error) {
	objs, err := Encode(r.Objects)
	if err != nil {
		return nil, err
	}
	snap := &v1alpha1.Snapshot{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.Namespace,
			Labels:    map[string]string{LabelSync: s.Name, LabelResult: v1alpha1.SnapshotSucceeded},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "Sync", Name: s.Name, UID: s.UID,
			}},
		},
		Spec: v1alpha1.SnapshotSpec{Sync: s.Name, Revision: r.Revision, Message: r.Message, Author: r.Author, Path: r.Path, Trigger: r.Trigger},
		Status: v1alpha1.SnapshotStatus{
			Result:     v1alpha1.SnapshotSucceeded,
			Created:    int32(r.Changes.Count(hsync.Created)),
			Configured: int32(r.Changes.Count(hsync.Configured)),
			Unchanged:  int32(r.Changes.Count(hsync.Unchanged)),
			Pruned:     int32(r.Changes.Count(hsync.Pruned)),
			Changes:    r.Changes.API(),
			Healthy:    r.Healthy,
			Timings:    r.Timings,
			Objects:    objs,
			Count:      1,
			FirstAt:    &now,
			LastAt:     &now,
		},
	}
	st := &snap.Status
	st.Inventory, st.InventoryCompressed = hsync.EncodeInventory(r.Inventory)
	if n := len(st.Changes); n > MaxChanges {
		st.Changes, st.ChangesOmitted = st.Changes[:MaxChanges], int32(n-MaxChanges)
	}
	st.Changed = st.Created + st.Configured
	for _, h := range r.Health {
		st.Health = append(st.Health, v1alpha1.Change{Object: h.Ref.String(), Action: h.Err})
	}
	if r.Err != nil {
		st.Result, st.Error = v1alpha1.SnapshotFailed, r.Err.Error()
		snap.Labels[LabelResult] = v1alpha1.SnapshotFailed
		snap.Labels[LabelFailure] = r.failureKey()
	}
	return snap, nil
}

// create creates snap under a fresh time-ordered name. A Snapshot the API
// server refuses as too large is written again without its objects,
// changes and inventory, and its error says so: the attempt is still
// recorded, but it cannot be rolled back to.
func create(ctx context.Context, c client.Client, snap *v1alpha1.Snapshot, now time.Time) error {
	var err error
	for i := 0; ; i++ {
		stamp := now.UTC().Add(time.Duration(i) * time.Millisecond).Format("20060102-150405.000")
		snap.Name = snap.Spec.Sync + "-" + strings.Replace(stamp, ".", "-", 1)
		err = c.Create(ctx, snap)
		if tooLarge(err) && snap.Status.Objects != nil {
			st := &snap.Status
			note := fmt.Sprintf("snapshot too large for the API server (%d changes, %d objects in the inventory): its objects, changes and inventory are left out, so it cannot be rolled back to", len(st.Changes), len(st.Inventory))
			st.Objects, st.Changes, st.Inventory, st.InventoryCompressed = nil, nil, nil, nil
			st.Error = strings.TrimPrefix(st.Error+"; "+note, "; ")
			err = c.Create(ctx, snap)
		}
		if !apierrors.IsAlreadyExists(err) || i > 100 {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("create snapshot of %s/%s: %w", snap.Namespace, snap.Spec.Sync, err)
	}
	return nil
}

// tooLarge reports an API server or etcd refusal of an object's size.
func tooLarge(err error) bool {
	if err == nil {
		return false
	}
	if apierrors.IsRequestEntityTooLargeError(err) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "too large") || strings.Contains(msg, "Too long") || strings.Contains(msg, "exceeds the maximum")
}

// repeat counts one more identical failure in the newest Snapshot with one
// merge patch.
func repeat(ctx context.Context, c client.Client, newest *metav1.PartialObjectMetadata, r Record, now metav1.Time) (*v1alpha1.Snapshot, error) {
	count := 1
	if n, err := strconv.Atoi(newest.Annotations[AnnotationCount]); err == nil {
		count = n
	}
	count++
	patch := map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{AnnotationCount: strconv.Itoa(count)}},
		"status":   map[string]any{"count": count, "lastAt": now, "timings": r.Timings},
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return nil, err
	}
	snap := &v1alpha1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: newest.Namespace, Name: newest.Name}}
	if err := c.Patch(ctx, snap, client.RawPatch(types.MergePatchType, body)); err != nil {
		return nil, fmt.Errorf("count a repeated failure in snapshot %s: %w", newest.Name, err)
	}
	return snap, nil
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

// listMeta lists the metadata of a Sync's Snapshots, newest first: a
// Snapshot's recorded objects are not needed to trim or collapse.
func listMeta(ctx context.Context, c client.Client, namespace, sync string) ([]metav1.PartialObjectMetadata, error) {
	var l metav1.PartialObjectMetadataList
	l.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("SnapshotList"))
	if err := c.List(ctx, &l, client.InNamespace(namespace), client.MatchingLabels{LabelSync: sync}); err != nil {
		return nil, fmt.Errorf("list snapshots of %s/%s: %w", namespace, sync, err)
	}
	items := l.Items
	sort.Slice(items, func(i, j int) bool { return items[i].Name > items[j].Name })
	return items, nil
}

// Trim deletes a Sync's Snapshots beyond the newest keep, except the newest
// KeepSucceeded successful ones.
func Trim(ctx context.Context, c client.Client, namespace, sync string, keep int) error {
	items, err := listMeta(ctx, c, namespace, sync)
	if err != nil {
		return err
	}
	return trim(ctx, c, items, keep)
}

func trim(ctx context.Context, c client.Client, items []metav1.PartialObjectMetadata, keep int) error {
	for _, i := range Doomed(items, keep) {
		o := &items[i]
		o.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("Snapshot"))
		if err := c.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete old snapshot %s: %w", o.Name, err)
		}
	}
	return nil
}

// Doomed returns the indexes of the Snapshots (newest first) that trimming
// to keep deletes: all beyond the newest keep, but never one of the newest
// KeepSucceeded successful ones.
func Doomed(newestFirst []metav1.PartialObjectMetadata, keep int) []int {
	var out []int
	succeeded := 0
	for i, o := range newestFirst {
		ok := o.Labels[LabelResult] == v1alpha1.SnapshotSucceeded
		if ok {
			succeeded++
		}
		if i < keep || (ok && succeeded <= KeepSucceeded) {
			continue
		}
		out = append(out, i)
	}
	return out
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
