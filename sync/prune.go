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
// another Sync or a human took over is left alone; one already gone, or
// annotated homeostat.dev/prune: disabled, is skipped (and leaves the
// inventory). Namespaces and CRDs go last, after what may live in them, and
// a Namespace that holds objects homeostat did not apply is kept (a Kept
// change says which), so deleting it cannot take a hand-made volume claim
// or Secret with it.
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
	if o.Annotations[AnnotationPrune] == "disabled" {
		return nil
	}
	if r.Kind == "Namespace" && r.Group == "" {
		foreign, err := e.foreignObjects(ctx, t, r.Name)
		if err != nil {
			return &Change{Ref: r, Action: Failed, Err: err.Error()}
		}
		if len(foreign) > 0 {
			return &Change{Ref: r, Action: Kept, Err: "holds objects homeostat did not apply (or kinds it cannot check): " + listSome(foreign, 3)}
		}
	}
	uid := o.UID
	err = e.client.Delete(ctx, o, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) {
		return &Change{Ref: r, Action: Failed, Err: describe(err)}
	}
	return &Change{Ref: r, Action: Pruned}
}
