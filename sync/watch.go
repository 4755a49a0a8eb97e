package sync

import (
	"context"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
)

// Annotations a watched object's slim copy carries in the Engine's cache
// (never on the cluster): what metaOf would compute from its managed fields.
const (
	cacheFields  = "cache.homeostat.dev/fields"
	cacheTouched = "cache.homeostat.dev/touched"
)

// kindWatch is a metadata informer over every object of one kind that
// carries LabelSync (any Sync's), kept slim.
type kindWatch struct {
	informer cache.SharedIndexInformer
	stop     context.CancelFunc
	failed   bool // never synced (not allowed to list?): list instead
}

// watchFor returns the synced watch of a kind, starting it on first use;
// false when watching is off or the kind cannot be watched (then the
// caller lists).
func (e *Engine) watchFor(ctx context.Context, it *item) (*kindWatch, bool) {
	if e.meta == nil {
		return nil, false
	}
	gvk := it.ref.GVK()
	e.wmu.Lock()
	w, ok := e.watches[gvk]
	if !ok {
		inf := metadatainformer.NewFilteredMetadataInformer(e.meta, it.mapping.Resource, metav1.NamespaceAll, 0,
			cache.Indexers{}, func(o *metav1.ListOptions) { o.LabelSelector = LabelSync }).Informer()
		_ = inf.SetTransform(slim)
		wctx, stop := context.WithCancel(e.life)
		w = &kindWatch{informer: inf, stop: stop}
		e.watches[gvk] = w
		go inf.RunWithContext(wctx)
	}
	failed := w.failed
	e.wmu.Unlock()
	if failed {
		return nil, false
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), w.informer.HasSynced) {
		if ctx.Err() == nil {
			e.wmu.Lock()
			w.failed = true
			w.stop()
			e.wmu.Unlock()
		}
		return nil, false
	}
	return w, true
}

// slim keeps of a watched object only what the no-op check reads. It is
// idempotent, as client-go asks: an informer's streamed initial list
// (WatchListClient) passes every object through it twice, and a second
// pass over a slim copy must not lose what the first computed from the
// managed fields (it would make every object look unknown, costing a GET
// and a dry-run each on the first sync after a restart).
func slim(obj any) (any, error) {
	o, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	if _, done := o.Annotations[cacheFields]; done && len(o.ManagedFields) == 0 {
		return o, nil
	}
	lm := metaOf(o)
	s := &metav1.PartialObjectMetadata{TypeMeta: o.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: o.Name, Namespace: o.Namespace, UID: o.UID, ResourceVersion: o.ResourceVersion,
		Labels:      map[string]string{LabelSync: o.Labels[LabelSync], LabelSyncNamespace: o.Labels[LabelSyncNamespace]},
		Annotations: map[string]string{AnnotationHash: lm.hash, cacheFields: lm.fieldsHash},
	}}
	if lm.touchedByOthers {
		s.Annotations[cacheTouched] = "true"
	}
	return s, nil
}

// fromCache lists a Sync's objects of one kind from its watch.
func (w *kindWatch) fromCache(labels map[string]string) []*liveEntry {
	var out []*liveEntry
	for _, obj := range w.informer.GetStore().List() {
		o, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok || o.Labels[LabelSync] != labels[LabelSync] || o.Labels[LabelSyncNamespace] != labels[LabelSyncNamespace] {
			continue
		}
		out = append(out, &liveEntry{namespace: o.Namespace, name: o.Name, meta: &liveMeta{
			uid: o.UID, resourceVersion: o.ResourceVersion, hash: o.Annotations[AnnotationHash],
			fieldsHash: o.Annotations[cacheFields], touchedByOthers: o.Annotations[cacheTouched] == "true",
		}})
	}
	return out
}

// liveEntry is one object found live.
type liveEntry struct {
	namespace, name string
	meta            *liveMeta
}

// written is one object this Engine just wrote, at resourceVersion rv.
type written struct {
	gvk schema.GroupVersionKind
	key string // namespace/name, the informer's key
	rv  uint64
}

// caughtUp waits (briefly) until the watches hold the versions this Engine
// just wrote, so the next sync reads its own writes from the cache.
// Versions that are not numbers are not waited for.
func (e *Engine) caughtUp(ctx context.Context, objs []written) {
	deadline := time.Now().Add(10 * time.Second)
	for _, o := range objs {
		e.wmu.Lock()
		w := e.watches[o.gvk]
		e.wmu.Unlock()
		if w == nil || w.failed {
			continue
		}
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if cached, ok, _ := w.informer.GetStore().GetByKey(o.key); ok {
				m, _ := cached.(*metav1.PartialObjectMetadata)
				if seen, err := strconv.ParseUint(m.ResourceVersion, 10, 64); err != nil || seen >= o.rv {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}
