package sync

import (
	"context"
	"fmt"
	gosync "sync"

	"golang.org/x/sync/errgroup"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
// sel holds the Sync's two labels; items' objects are not read (they are
// being hashed meanwhile).
func (e *Engine) listLive(ctx context.Context, items []*item, sel map[string]string) (map[string]*liveMeta, error) {
	if len(items) == 0 {
		return nil, nil
	}
	match := client.MatchingLabels{LabelSync: sel[LabelSync], LabelSyncNamespace: sel[LabelSyncNamespace]}
	kinds := map[schema.GroupVersionKind]map[string]bool{}
	sample := map[schema.GroupVersionKind]*item{}
	for _, it := range items {
		if kinds[it.ref.GVK()] == nil {
			kinds[it.ref.GVK()] = map[string]bool{}
			sample[it.ref.GVK()] = it
		}
		kinds[it.ref.GVK()][it.ref.Namespace] = true
	}
	// One list per kind, all kinds at once; none when the Engine watches.
	var mu gosync.Mutex
	out := map[string]*liveMeta{}
	add := func(gvk schema.GroupVersionKind, entries []*liveEntry) {
		mu.Lock()
		defer mu.Unlock()
		for _, le := range entries {
			ref := Ref{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: le.namespace, Name: le.name}
			out[ref.ID()] = le.meta
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for gvk, namespaces := range kinds {
		g.Go(func() error {
			if w, ok := e.watchFor(gctx, sample[gvk]); ok {
				add(gvk, w.fromCache(sel))
				return nil
			}
			items, err := e.listKind(gctx, gvk, namespaces, match)
			if err != nil {
				return err
			}
			entries := make([]*liveEntry, 0, len(items))
			for i := range items {
				o := &items[i]
				entries = append(entries, &liveEntry{namespace: o.Namespace, name: o.Name, meta: metaOf(o)})
			}
			add(gvk, entries)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// listKind lists one kind across the cluster, or, for an identity allowed
// only some namespaces (an impersonated service account), namespace by
// namespace.
func (e *Engine) listKind(ctx context.Context, gvk schema.GroupVersionKind, namespaces map[string]bool, match client.MatchingLabels) ([]metav1.PartialObjectMetadata, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	err := e.client.List(ctx, list, match)
	switch {
	case err == nil:
		return list.Items, nil
	case meta.IsNoMatchError(err):
		return nil, nil
	case !apierrors.IsForbidden(err) || namespaces[""]:
		return nil, fmt.Errorf("list %s: %w", gvk.Kind, err)
	}
	var out []metav1.PartialObjectMetadata
	for ns := range namespaces {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := e.client.List(ctx, list, match, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("list %s in %s: %w", gvk.Kind, ns, err)
		}
		out = append(out, list.Items...)
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
