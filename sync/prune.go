package sync

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Prune deletes the objects of stale (inventory entries that left git). An
// object is deleted only if it still carries this Sync's labels, so one that
// another Sync or a human took over is left alone; one already gone is
// skipped. Namespaces and CRDs go last, after what may live in them.
func (e *Engine) Prune(ctx context.Context, t Target, stale Inventory) (ChangeSet, error) {
	var cs ChangeSet
	var first, last Inventory
	for _, r := range stale {
		if r.Kind == "Namespace" || r.Kind == "CustomResourceDefinition" {
			last = append(last, r)
		} else {
			first = append(first, r)
		}
	}
	for _, group := range []Inventory{first, last} {
		changes := make([]*Change, len(group))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(e.concurrency)
		for i, r := range group {
			g.Go(func() error {
				changes[i] = e.pruneOne(gctx, t, r)
				return nil
			})
		}
		_ = g.Wait()
		var failed []string
		for _, c := range changes {
			if c == nil {
				continue
			}
			cs.Add(*c)
			if c.Action == Failed {
				failed = append(failed, c.Ref.String()+": "+c.Err)
			}
		}
		if len(failed) > 0 {
			return cs, fmt.Errorf("prune failed for %d object(s): %s", len(failed), listSome(failed, 5))
		}
	}
	return cs, ctx.Err()
}

func (e *Engine) pruneOne(ctx context.Context, t Target, r Ref) *Change {
	e.forgetFields(r.ID())
	o := &metav1.PartialObjectMetadata{}
	o.SetGroupVersionKind(r.GVK())
	err := e.client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.Name}, o)
	if apierrors.IsNotFound(err) || isNoMatch(err) {
		return nil
	}
	if err != nil {
		return &Change{Ref: r, Action: Failed, Err: describe(err)}
	}
	if o.Labels[LabelSync] != t.Name || o.Labels[LabelSyncNamespace] != t.Namespace || !o.DeletionTimestamp.IsZero() {
		return nil
	}
	uid := o.UID
	err = e.client.Delete(ctx, o, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) {
		return &Change{Ref: r, Action: Failed, Err: describe(err)}
	}
	return &Change{Ref: r, Action: Pruned}
}
