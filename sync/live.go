package sync

import (
	"context"
	"fmt"
	gosync "sync"

	"golang.org/x/sync/errgroup"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// liveMeta is what the no-op check needs to know of a live object.
type liveMeta struct {
	uid             types.UID
	resourceVersion string
	hash            string
	fieldsHash      string
	// touchedByOthers is true when another manager wrote the object (outside
	// its status) at or after homeostat's last apply.
	touchedByOthers bool
}

// listLive lists, per kind, the metadata of the live objects carrying the
// Sync's labels: one cheap read per kind instead of a request per object.
func (e *Engine) listLive(ctx context.Context, items []*item) (map[string]*liveMeta, error) {
	if len(items) == 0 {
		return nil, nil
	}
	sel := items[0].obj.GetLabels()
	match := client.MatchingLabels{LabelSync: sel[LabelSync], LabelSyncNamespace: sel[LabelSyncNamespace]}
	kinds := map[schema.GroupVersionKind]bool{}
	for _, it := range items {
		kinds[it.ref.GVK()] = true
	}
	// One list per kind, all kinds at once.
	var mu gosync.Mutex
	out := map[string]*liveMeta{}
	g, gctx := errgroup.WithContext(ctx)
	for gvk := range kinds {
		g.Go(func() error {
			list := &metav1.PartialObjectMetadataList{}
			list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
			if err := e.client.List(gctx, list, match); err != nil {
				if meta.IsNoMatchError(err) {
					return nil
				}
				return fmt.Errorf("list %s: %w", gvk.Kind, err)
			}
			mu.Lock()
			defer mu.Unlock()
			for i := range list.Items {
				o := &list.Items[i]
				ref := Ref{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: o.Namespace, Name: o.Name}
				out[ref.ID()] = metaOf(o)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

func metaOf(o *metav1.PartialObjectMetadata) *liveMeta {
	lm := &liveMeta{uid: o.UID, resourceVersion: o.ResourceVersion, hash: o.Annotations[AnnotationHash]}
	lm.fieldsHash = ownFieldsHash(o.ManagedFields)
	var ours *metav1.Time
	for _, m := range o.ManagedFields {
		if m.Manager == FieldManager && m.Operation == metav1.ManagedFieldsOperationApply && m.Subresource == "" {
			ours = m.Time
		}
	}
	for _, m := range o.ManagedFields {
		if m.Manager == FieldManager || m.Subresource != "" {
			continue
		}
		if ours == nil || m.Time == nil || !m.Time.Before(ours) {
			lm.touchedByOthers = true
		}
	}
	return lm
}
