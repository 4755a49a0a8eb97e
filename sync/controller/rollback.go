package controller

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
	"homeostat.dev/homeostat/sync/snapshot"
)

// AnnotationSyncAt asks for a sync now: any new value triggers one, and the
// value is echoed into status.lastHandledSyncAt once handled.
const AnnotationSyncAt = "homeostat.dev/sync-at"

// AnnotationSyncTrigger says who set AnnotationSyncAt (for example
// "webhook"); it ends up in the Snapshot's trigger.
const AnnotationSyncTrigger = "homeostat.dev/sync-trigger"

// Rollback re-applies the objects recorded in the Snapshot named snapName,
// prunes what that snapshot lacked, and suspends s so the next interval
// does not undo it; the Ready condition (reason RolledBack) says so until
// Resume. Secrets, which snapshots never hold, are left as they are.
func (r *Runner) Rollback(ctx context.Context, s *v1alpha1.Sync, snapName string) (Outcome, error) {
	var snap v1alpha1.Snapshot
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: snapName}, &snap); err != nil {
		return Outcome{}, fmt.Errorf("snapshot %s: %w", snapName, err)
	}
	if snap.Spec.Sync != s.Name {
		return Outcome{}, fmt.Errorf("snapshot %s belongs to sync %s, not %s", snapName, snap.Spec.Sync, s.Name)
	}
	if snap.Status.Result != v1alpha1.SnapshotSucceeded || len(snap.Status.Objects) == 0 {
		return Outcome{}, fmt.Errorf("snapshot %s recorded a failed sync: nothing to roll back to", snapName)
	}
	objs, err := snapshot.Decode(snap.Status.Objects)
	if err != nil {
		return Outcome{}, err
	}
	// Suspend first: a controller must not sync the newest revision over
	// the rollback while it is applied.
	base := s.DeepCopy()
	s.Spec.Suspend = true
	if err := r.Client.Patch(ctx, s, client.MergeFrom(base)); err != nil {
		return Outcome{}, fmt.Errorf("suspend sync %s/%s: %w", s.Namespace, s.Name, err)
	}
	inv, err := hsync.SyncInventory(s.Status)
	if err != nil {
		return Outcome{}, fmt.Errorf("sync %s/%s: %w", s.Namespace, s.Name, err)
	}
	o := Outcome{Trigger: TriggerRollback, Inventory: inv, objects: objs, Reason: ReasonSucceeded}
	o.before = o.Inventory
	o.Revision = Revision{Name: snap.Spec.Revision, Message: "rollback to " + snapName + ": " + snap.Spec.Message, Author: snap.Spec.Author}
	o.Timings.StartedAt = &metav1.Time{Time: time.Now()}
	start := time.Now()
	if err := r.apply(ctx, s, &o); err != nil {
		o.Reason, o.Err = ReasonApplyFailed, fmt.Errorf("apply: %w", err)
	}
	o.Timings.ApplyMillis = time.Since(start).Milliseconds()
	if o.Err == nil {
		// Secrets are not in snapshots: keep owning (not pruning) them.
		var secrets hsync.Inventory
		for _, ref := range o.Inventory {
			if ref.Kind == "Secret" && ref.Group == "" {
				secrets = append(secrets, ref)
			}
		}
		o.Changes.Add(changesFor(secrets)...)
		start = time.Now()
		if err := r.prune(ctx, s, &o); err != nil {
			o.Reason, o.Err = ReasonPruneFailed, fmt.Errorf("prune: %w", err)
		}
		o.Timings.PruneMillis = time.Since(start).Milliseconds()
	}
	o.Timings.FinishedAt = &metav1.Time{Time: time.Now()}
	r.snapshot(ctx, s, &o)

	base = s.DeepCopy()
	ApplyStatus(s, o)
	if o.Err == nil {
		setCondition(s, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonRolledBack,
			fmt.Sprintf("Rolled back to snapshot %s (revision %s); syncing is suspended until `homeostat sync resume %s`", snapName, snap.Spec.Revision, s.Name))
	}
	if err := r.Client.Status().Patch(ctx, s, client.MergeFrom(base)); err != nil {
		return o, fmt.Errorf("record rollback in %s/%s status: %w", s.Namespace, s.Name, err)
	}
	return o, o.Err
}

// changesFor lists refs as unchanged, so they stay in the inventory.
func changesFor(refs hsync.Inventory) []hsync.Change {
	out := make([]hsync.Change, 0, len(refs))
	for _, r := range refs {
		out = append(out, hsync.Change{Ref: r, Action: hsync.Unchanged})
	}
	return out
}

// Resume clears spec.suspend (and a RolledBack condition) and asks for a
// sync at once.
func Resume(ctx context.Context, c client.Client, s *v1alpha1.Sync) error {
	base := s.DeepCopy()
	s.Spec.Suspend = false
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[AnnotationSyncAt] = time.Now().UTC().Format(time.RFC3339Nano)
	s.Annotations[AnnotationSyncTrigger] = TriggerManual
	if err := c.Patch(ctx, s, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("resume sync %s/%s: %w", s.Namespace, s.Name, err)
	}
	base = s.DeepCopy()
	setCondition(s, v1alpha1.ConditionReady, metav1.ConditionUnknown, ReasonProgressing, "Resumed; syncing at once")
	if err := c.Status().Patch(ctx, s, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("resume sync %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}
