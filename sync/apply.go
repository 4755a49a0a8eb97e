package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	gosync "sync"
	"time"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"homeostat.dev/homeostat/render"
)

// item is one desired object on its way to the cluster.
type item struct {
	obj     *unstructured.Unstructured
	src     render.Source
	owner   *render.OwnerRef
	mapping *meta.RESTMapping
	ref     Ref
	hash    string
	body    []byte // the apply request body, hash included

	live  *liveMeta // the live object's metadata; nil when it does not exist
	send  bool      // decided: the object is written
	drift bool      // someone else changed (or deleted) it since homeostat applied it
	// creates is set by the dry-run: the object does not exist yet.
	creates bool
	// recreate is set by the dry-run: an immutable field changed and the
	// object (or the Sync) opted in to delete and re-create it.
	recreate bool
}

// Stages, applied in order; each waits for the one before it.
const (
	stageDefinitions = iota // CRDs and Namespaces
	stageCluster            // other cluster-scoped objects
	stageObjects            // namespaced objects, high-level ones included
	stageChildren           // objects rendered from a high-level object
)

// ApplyOptions tune one Apply.
type ApplyOptions struct {
	// Force re-creates every object whose change the API server refuses
	// because an immutable field changed, as if each carried
	// AnnotationRecreate (a Sync's spec.force).
	Force bool
	// BeforeWrite, when set, is called with the objects about to be written
	// once the dry-run passed, before the first write of the definitions and
	// before the first write of objects whose namespace or kind those
	// definitions bring. The caller records them as owned (the inventory
	// intent), so a process killed at any later point leaves no object it
	// does not know about. An error stops the apply there.
	BeforeWrite func(ctx context.Context, refs Inventory) error
}

// Apply is ApplyWith without options.
func (e *Engine) Apply(ctx context.Context, t Target, desired []render.Object, inv Inventory) (ChangeSet, error) {
	return e.ApplyWith(ctx, t, desired, inv, ApplyOptions{})
}

// ApplyWith makes the cluster hold desired, all or nothing: first every
// object that will be created or changed is sent as a server-side dry-run,
// and one refusal (an admission policy, a webhook, a quota, an invalid or
// immutable field) fails the apply with nothing written. Then it writes in
// stages: CRDs and Namespaces (then waiting for CRDs to be established),
// other cluster-scoped objects, namespaced objects, and last the children of
// high-level objects, which get an ownerReference to their parent. Objects
// that can only be dry-run once those definitions exist (kinds a CRD of the
// same set brings, objects in a new Namespace) are dry-run right after the
// definitions are written and before anything else is; if one is refused,
// the definitions this apply created are deleted again.
//
// Within a stage objects are written concurrently. An object whose hash
// annotation matches and whose fields were not taken by another manager is
// neither dry-run nor sent; one changed by hand is applied again and
// reported as drift. inv is the Sync's inventory before this apply (it
// tells a deleted-by-hand object from a new one).
//
// The returned ChangeSet lists every desired object; on error it holds what
// was done so far, and failed objects carry their error.
func (e *Engine) ApplyWith(ctx context.Context, t Target, desired []render.Object, inv Inventory, opts ApplyOptions) (ChangeSet, error) {
	var cs ChangeSet
	items, err := prepare(t, desired)
	if err != nil {
		return cs, err
	}
	defs, rest := splitDefinitions(items)
	// Kinds neither the cluster nor a CRD of this set defines fail before
	// anything is written.
	kinds := e.kinds()
	if err := kinds.check(defs, rest); err != nil {
		return cs, err
	}
	if err := e.resolve(kinds, t, defs); err != nil {
		return cs, err
	}
	uids := map[string]types.UID{}
	if err := e.validate(ctx, defs, inv, uids, opts, &cs); err != nil {
		return cs, err
	}
	ready, later := kinds.splitReady(t, rest, createdNamespaces(defs))
	if err := e.resolve(kinds, t, ready); err != nil {
		return cs, err
	}
	if err := duplicates(append(append([]*item(nil), defs...), ready...)); err != nil {
		return cs, err
	}
	if err := e.validate(ctx, ready, inv, uids, opts, &cs); err != nil {
		return cs, err
	}
	if err := e.beforeWrite(ctx, opts, defs, ready); err != nil {
		return cs, err
	}
	if err := e.writeStage(ctx, defs, inv, uids, &cs); err != nil {
		return cs, err
	}
	if err := e.waitEstablished(ctx, defs); err != nil {
		return cs, err
	}
	if len(later) > 0 {
		if err := e.validateLater(ctx, t, defs, ready, later, inv, uids, opts, &cs); err != nil {
			return cs, err
		}
	}
	stages := byStage(append(ready, later...))
	for s := stageCluster; s <= stageChildren; s++ {
		if s == stageChildren {
			if err := relinkChildren(stages[s], uids); err != nil {
				return cs, err
			}
		}
		if err := e.writeStage(ctx, stages[s], inv, uids, &cs); err != nil {
			return cs, err
		}
	}
	return cs, nil
}

// validateLater resolves, decides and dry-runs the objects that needed this
// set's definitions to exist; on a refusal it deletes the definitions this
// apply created, so the revision leaves nothing behind.
func (e *Engine) validateLater(ctx context.Context, t Target, defs, ready, later []*item, inv Inventory, uids map[string]types.UID, opts ApplyOptions, cs *ChangeSet) error {
	// The CRDs just written define new kinds: look them up afresh.
	if err := e.resolve(e.kinds(), t, later); err != nil {
		return e.undoDefinitions(ctx, defs, err)
	}
	all := append(append(append([]*item(nil), defs...), ready...), later...)
	if err := duplicates(all); err != nil {
		return e.undoDefinitions(ctx, defs, err)
	}
	if err := e.validate(ctx, later, inv, uids, opts, cs); err != nil {
		return e.undoDefinitions(ctx, defs, err)
	}
	return e.beforeWrite(ctx, opts, nil, later)
}

// beforeWrite hands the objects about to be written to opts.BeforeWrite.
func (e *Engine) beforeWrite(ctx context.Context, opts ApplyOptions, groups ...[]*item) error {
	if opts.BeforeWrite == nil {
		return nil
	}
	var refs Inventory
	for _, g := range groups {
		for _, it := range g {
			if it.send {
				refs = append(refs, it.ref)
			}
		}
	}
	if len(refs) == 0 {
		return nil
	}
	if err := opts.BeforeWrite(ctx, refs); err != nil {
		return fmt.Errorf("record the inventory before writing: %w", err)
	}
	return nil
}

// splitDefinitions separates CRDs and Namespaces from the rest.
func splitDefinitions(items []*item) (defs, rest []*item) {
	for _, it := range items {
		if isDefinition(it.obj) {
			defs = append(defs, it)
		} else {
			rest = append(rest, it)
		}
	}
	return defs, rest
}

// byStage sorts resolved non-definition objects into their stages.
func byStage(items []*item) [][]*item {
	stages := make([][]*item, stageChildren+1)
	for _, it := range items {
		s := stageObjects
		switch {
		case it.owner != nil:
			s = stageChildren
		case it.mapping.Scope.Name() != meta.RESTScopeNameNamespace:
			s = stageCluster
		}
		stages[s] = append(stages[s], it)
	}
	return stages
}

// splitReady separates the objects the cluster can judge now from those
// that need this set's definitions first: kinds the cluster does not serve
// yet, and objects in a Namespace the set creates.
func (k *kindCache) splitReady(t Target, items []*item, newNamespaces map[string]bool) (ready, later []*item) {
	for _, it := range items {
		m, err := k.mapping(it.obj.GroupVersionKind())
		if err != nil {
			later = append(later, it)
			continue
		}
		ns := it.obj.GetNamespace()
		if ns == "" {
			ns = t.DefaultNamespace
		}
		if m.Scope.Name() == meta.RESTScopeNameNamespace && newNamespaces[ns] {
			later = append(later, it)
			continue
		}
		ready = append(ready, it)
	}
	return ready, later
}

// createdNamespaces are the Namespaces among defs that the dry-run found
// missing: nothing can be dry-run in them before they exist.
func createdNamespaces(defs []*item) map[string]bool {
	out := map[string]bool{}
	for _, it := range defs {
		if it.ref.Kind == "Namespace" && it.creates {
			out[it.ref.Name] = true
		}
	}
	return out
}

// prepare copies the desired objects and labels them as the Sync's (a
// Target without a name, as a diff without a Sync uses, adds no labels).
func prepare(t Target, desired []render.Object) ([]*item, error) {
	items := make([]*item, 0, len(desired))
	for _, d := range desired {
		if d.Object == nil {
			continue
		}
		u := ownCopy(d.Object)
		if t.Name != "" {
			labels := u.GetLabels()
			if labels == nil {
				labels = map[string]string{}
			}
			for k, v := range t.labels() {
				labels[k] = v
			}
			u.SetLabels(labels)
		}
		items = append(items, &item{obj: u, src: d.Source, owner: d.Owner})
	}
	return items, nil
}

// ownCopy copies a rendered object as far as an apply changes it: only its
// metadata (labels, namespace, the hash annotation, owner references). The
// rest (spec, data) is shared with the rendered object and only read; a
// whole deep copy of 30,000 objects cost a quarter of a no-op sync's CPU.
func ownCopy(u *unstructured.Unstructured) *unstructured.Unstructured {
	obj := make(map[string]any, len(u.Object))
	for k, v := range u.Object {
		obj[k] = v
	}
	if md, ok := u.Object["metadata"].(map[string]any); ok {
		obj["metadata"] = k8sruntime.DeepCopyJSONValue(md)
	}
	return &unstructured.Unstructured{Object: obj}
}

// resolve looks up each object's resource and gives namespaced objects
// without a namespace the default one.
func (e *Engine) resolve(k *kindCache, t Target, items []*item) error {
	var errs []error
	for _, it := range items {
		gvk := it.obj.GroupVersionKind()
		m, err := k.mapping(gvk)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s %s: %w", it.src, gvk.Kind, it.obj.GetName(), err))
			continue
		}
		it.mapping = m
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if it.obj.GetNamespace() == "" {
				it.obj.SetNamespace(t.DefaultNamespace)
			}
		} else {
			it.obj.SetNamespace("")
		}
		it.ref = RefOf(it.obj)
	}
	return errors.Join(errs...)
}

// check fails for objects whose kind the cluster does not serve and no
// CRD among defs defines.
func (k *kindCache) check(defs, rest []*item) error {
	defined := map[schema.GroupKind]bool{}
	for _, d := range defs {
		if d.obj.GetKind() == "CustomResourceDefinition" {
			defined[crdGroupKind(d.obj)] = true
		}
	}
	var errs []error
	for _, it := range rest {
		gvk := it.obj.GroupVersionKind()
		if defined[gvk.GroupKind()] {
			continue
		}
		if _, err := k.mapping(gvk); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s %s: %w", it.src, gvk.Kind, it.obj.GetName(), err))
		}
	}
	if len(errs) > 5 {
		return fmt.Errorf("%w; and %d more", errors.Join(errs[:5]...), len(errs)-5)
	}
	return errors.Join(errs...)
}

// kindCache memoizes the REST mappings of one apply by kind: each object
// asks for its kind's mapping three times, and a lookup through the
// mapper's layers costs about 10 µs, a second per sync of 30,000 objects.
// Failures are not kept, and an apply looks kinds up afresh once the CRDs
// it wrote are established. Not safe for concurrent use.
type kindCache struct {
	mapper meta.RESTMapper
	found  map[schema.GroupVersionKind]*meta.RESTMapping
}

func (e *Engine) kinds() *kindCache {
	return &kindCache{mapper: e.mapper, found: map[schema.GroupVersionKind]*meta.RESTMapping{}}
}

func (k *kindCache) mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	if m, ok := k.found[gvk]; ok {
		return m, nil
	}
	m, err := k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err == nil {
		k.found[gvk] = m
	}
	return m, err
}

// crdGroupKind is the kind a CustomResourceDefinition defines.
func crdGroupKind(crd *unstructured.Unstructured) schema.GroupKind {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
	return schema.GroupKind{Group: group, Kind: kind}
}

// mapsCRDKind says whether the mapper resolves the kind crd defines in one
// of its served versions.
func (e *Engine) mapsCRDKind(crd *unstructured.Unstructured) bool {
	gk := crdGroupKind(crd)
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		m, _ := v.(map[string]any)
		name, _ := m["name"].(string)
		if served, _ := m["served"].(bool); !served || name == "" {
			continue
		}
		if _, err := e.mapper.RESTMapping(gk, name); err == nil {
			return true
		}
	}
	return false
}

// duplicates rejects a desired set that names one object twice: which of
// the two would win is not something to leave to chance.
func duplicates(items []*item) error {
	seen := make(map[string]*item, len(items))
	var errs []error
	for _, it := range items {
		if prev, ok := seen[it.ref.ID()]; ok {
			errs = append(errs, fmt.Errorf("%s: %s is also defined in %s", it.src, it.ref, prev.src))
			continue
		}
		seen[it.ref.ID()] = it
	}
	return errors.Join(errs...)
}

// placeholderUID stands for the UID of a parent that does not exist yet
// while its children are dry-run; the write links the real one.
const placeholderUID = types.UID("00000000-0000-0000-0000-000000000000")

// linkOwners points each child at its parent, which an earlier stage
// applied. With planned set, a parent not applied yet gets placeholderUID.
func linkOwners(items []*item, uids map[string]types.UID, planned bool) error {
	var errs []error
	for _, it := range items {
		gv, err := schema.ParseGroupVersion(it.owner.APIVersion)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: owner of %s: %w", it.src, it.ref, err))
			continue
		}
		ns := it.owner.Namespace
		if ns == "" {
			ns = it.ref.Namespace
		}
		parent := Ref{Group: gv.Group, Kind: it.owner.Kind, Namespace: ns, Name: it.owner.Name}
		uid, ok := uids[parent.ID()]
		if !ok && planned {
			uid, ok = placeholderUID, true
		}
		if !ok {
			errs = append(errs, fmt.Errorf("%s: owner %s of %s was not applied", it.src, parent, it.ref))
			continue
		}
		it.obj.SetOwnerReferences([]metav1.OwnerReference{{
			APIVersion: it.owner.APIVersion, Kind: it.owner.Kind, Name: it.owner.Name, UID: uid,
			Controller: new(true),
		}})
	}
	return errors.Join(errs...)
}

// relinkChildren links children to their parents' real UIDs and hashes
// again those whose parent's UID changed (a parent created or re-created by
// this apply); such a child is written even if the dry-run planned it
// unchanged. The others are as they were decided.
func relinkChildren(items []*item, uids map[string]types.UID) error {
	planned := make([]types.UID, len(items))
	for i, it := range items {
		if refs := it.obj.GetOwnerReferences(); len(refs) == 1 {
			planned[i] = refs[0].UID
		}
	}
	if err := linkOwners(items, uids, false); err != nil {
		return err
	}
	for i, it := range items {
		if refs := it.obj.GetOwnerReferences(); it.hash != "" && len(refs) == 1 && refs[0].UID == planned[i] {
			continue
		}
		h, body, err := hashObject(it.obj)
		if err != nil {
			return fmt.Errorf("%s: hash %s: %w", it.src, it.ref, err)
		}
		it.hash, it.body = h, body
		if it.live == nil || it.live.hash != h {
			it.send = true
		}
	}
	return nil
}

// hashPlaceholder stands for the hash while the object is hashed, so the
// body is marshalled once: hash the bytes, then write the hash in place.
const hashPlaceholder = "000000000000000000000000"

// hashObject hashes the object as it will be applied (with a placeholder
// for the hash annotation) and returns the request body with the hash
// written in; the object's annotation is set to the hash as well.
func hashObject(u *unstructured.Unstructured) (string, []byte, error) {
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationHash] = hashPlaceholder
	u.SetAnnotations(ann)
	body, err := json.Marshal(u.Object) // maps marshal with sorted keys: stable
	if err != nil {
		return "", nil, err
	}
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:12])
	field := `"` + AnnotationHash + `":"`
	body = bytes.Replace(body, []byte(field+hashPlaceholder+`"`), []byte(field+h+`"`), 1)
	ann[AnnotationHash] = h
	u.SetAnnotations(ann)
	return h, body, nil
}

// decide hashes items, reads their live metadata (one list per kind, or
// the watch cache) and marks those that must be written: missing, changed
// in git, or drifted.
func (e *Engine) decide(ctx context.Context, items []*item, inv Inventory) error {
	if len(items) == 0 {
		return nil
	}
	// The live metadata is read while the objects are hashed: the lists
	// wait on the network, the hashing on the CPU.
	sel := items[0].obj.GetLabels()
	sel = map[string]string{LabelSync: sel[LabelSync], LabelSyncNamespace: sel[LabelSyncNamespace]}
	var live map[string]*liveMeta
	listed := make(chan error, 1)
	go func() {
		var err error
		live, err = e.listLive(ctx, items, sel)
		listed <- err
	}()
	hashErr := hashAll(items)
	if err := errors.Join(<-listed, hashErr); err != nil {
		return err
	}
	owned := inv.IDs()
	errs := make([]error, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.concurrency)
	for i, it := range items {
		it.live = live[it.ref.ID()]
		g.Go(func() error {
			errs[i] = e.decideOne(gctx, it, owned)
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// hashAll hashes items (and makes their request bodies) on every core.
func hashAll(items []*item) error {
	workers := min(runtime.GOMAXPROCS(0), len(items))
	errs := make([]error, workers)
	var wg gosync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(items); i += workers {
				it := items[i]
				h, body, err := hashObject(it.obj)
				if err != nil {
					errs[w] = fmt.Errorf("%s: hash %s: %w", it.src, it.ref, err)
					return
				}
				it.hash, it.body = h, body
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// decideOne decides whether one object needs writing; owned is the IDs of
// the inventory before this apply.
func (e *Engine) decideOne(ctx context.Context, it *item, owned map[string]bool) error {
	switch lv := it.live; {
	case lv == nil:
		// Missing although we applied it before: deleted by hand.
		it.send, it.drift = true, owned[it.ref.ID()]
	case lv.hash != it.hash:
		// Git changed (or the object is not yet ours).
		it.send = true
	default:
		d, err := e.hasDrifted(ctx, it, lv)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", it.src, it.ref, err)
		}
		it.send, it.drift = d, d
	}
	return nil
}

// writeStage writes one stage's objects concurrently and records the
// results (and the UIDs children need) into cs and uids.
func (e *Engine) writeStage(ctx context.Context, items []*item, inv Inventory, uids map[string]types.UID, cs *ChangeSet) error {
	if len(items) == 0 {
		return nil
	}
	changes := make([]Change, len(items))
	newUIDs := make([]types.UID, len(items))
	sent := make([]string, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.concurrency)
	for i, it := range items {
		g.Go(func() error {
			changes[i], newUIDs[i], sent[i] = e.writeOne(gctx, it)
			return nil
		})
	}
	_ = g.Wait()
	e.catchUp(ctx, items, sent)
	var failed []string
	for i, c := range changes {
		cs.Add(c)
		if c.Action == Failed {
			failed = append(failed, c.Ref.String()+": "+c.Err)
			continue
		}
		uids[items[i].ref.ID()] = newUIDs[i]
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("apply failed for %d object(s): %s", len(failed), listSome(failed, 5))
	}
	return nil
}

// catchUp lets the watches see the writes just made, so the next sync,
// which reads the cluster from them, does not take its own writes for drift.
func (e *Engine) catchUp(ctx context.Context, items []*item, sent []string) {
	if e.meta == nil {
		return
	}
	var objs []written
	for i, rv := range sent {
		if n, err := strconv.ParseUint(rv, 10, 64); err == nil {
			key := items[i].ref.Name
			if items[i].ref.Namespace != "" {
				key = items[i].ref.Namespace + "/" + key
			}
			objs = append(objs, written{gvk: items[i].ref.GVK(), key: key, rv: n})
		}
	}
	e.caughtUp(ctx, objs)
}

// listSome joins the first n messages and counts the rest, so that a
// thousand failures make a readable condition message.
func listSome(msgs []string, n int) string {
	if len(msgs) <= n {
		return strings.Join(msgs, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(msgs[:n], "; "), len(msgs)-n)
}

// writeOne sends an object decide marked (re-creating it first when the
// dry-run said so); it returns the change, the object's UID and, if it was
// sent, the resourceVersion the server answered with.
func (e *Engine) writeOne(ctx context.Context, it *item) (Change, types.UID, string) {
	c := Change{Ref: it.ref, Source: it.src}
	if !it.send {
		c.Action = Unchanged
		return c, it.live.uid, ""
	}
	lv := it.live
	if it.recreate {
		if err := e.deleteForRecreate(ctx, it); err != nil {
			c.Action, c.Err = Failed, err.Error()
			return c, "", ""
		}
		lv = nil
	}
	res, err := e.patchWithRetry(ctx, it)
	if err != nil {
		c.Action, c.Err = Failed, describe(err)
		return c, "", ""
	}
	e.rememberFields(it.ref.ID(), res.fieldsHash)
	c.Drift, c.Recreated = it.drift, it.recreate
	switch {
	case res.created:
		c.Action = Created
	case lv != nil && lv.resourceVersion == res.resourceVersion:
		c.Action, c.Drift = Unchanged, false
	default:
		c.Action = Configured
	}
	return c, res.uid, res.resourceVersion
}

// hasDrifted tells whether fields homeostat applied were changed by someone
// else. When this Engine remembers homeostat's managed fields from its own
// last apply it compares those (no request); otherwise only an object that
// another manager touched after homeostat is checked with a server-side
// dry-run.
func (e *Engine) hasDrifted(ctx context.Context, it *item, lv *liveMeta) (bool, error) {
	if known, ok := e.knownFields(it.ref.ID()); ok {
		return known != lv.fieldsHash, nil
	}
	if lv.fieldsHash != "" && !lv.touchedByOthers {
		e.rememberFields(it.ref.ID(), lv.fieldsHash)
		return false, nil
	}
	live, err := e.get(ctx, it)
	if err != nil {
		return false, err
	}
	dry, err := e.patch(ctx, it, applyPreview)
	if err != nil {
		return false, fmt.Errorf("dry-run: %w", err)
	}
	if equalIgnoringMeta(live, dry.object) {
		e.rememberFields(it.ref.ID(), lv.fieldsHash)
		return false, nil
	}
	return true, nil
}

// equalIgnoringMeta compares two objects without managedFields and resourceVersion.
func equalIgnoringMeta(a, b *unstructured.Unstructured) bool {
	strip := func(u *unstructured.Unstructured) map[string]any {
		c := u.DeepCopy()
		unstructured.RemoveNestedField(c.Object, "metadata", "managedFields")
		unstructured.RemoveNestedField(c.Object, "metadata", "resourceVersion")
		unstructured.RemoveNestedField(c.Object, "metadata", "generation")
		return c.Object
	}
	x, _ := json.Marshal(strip(a))
	y, _ := json.Marshal(strip(b))
	return string(x) == string(y)
}

// patchResult is what one apply request returned.
type patchResult struct {
	created         bool
	uid             types.UID
	resourceVersion string
	fieldsHash      string
	object          *unstructured.Unstructured // set for applyPreview only
}

// path is the REST path of an object.
func objectPath(m *meta.RESTMapping, ns, name string) string {
	gvr := m.Resource
	var b strings.Builder
	if gvr.Group == "" {
		b.WriteString("/api/" + gvr.Version)
	} else {
		b.WriteString("/apis/" + gvr.Group + "/" + gvr.Version)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		b.WriteString("/namespaces/" + ns)
	}
	b.WriteString("/" + gvr.Resource + "/" + name)
	return b.String()
}

// applyMode is what an apply request is for, and so what its answer must
// hold.
type applyMode int

const (
	// applyWrite writes; its answer is read for the UID, resourceVersion
	// and managed fields only.
	applyWrite applyMode = iota
	// applyCheck is a dry-run that only asks whether the API server accepts
	// the object (and whether it would create it).
	applyCheck
	// applyPreview is a dry-run whose resulting object is compared with the
	// live one (drift, plan): the whole object is read.
	applyPreview
)

// metadataOnly asks the API server to answer with the object's metadata
// alone (any kind, custom resources included): the server encodes, and the
// client decodes, a few hundred bytes instead of the whole object.
const metadataOnly = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

// patch sends one server-side apply request. It talks REST directly, not
// through a typed client, to read the status code (201 means created) and to
// ask for, and decode, no more of the answer than mode needs.
func (e *Engine) patch(ctx context.Context, it *item, mode applyMode) (*patchResult, error) {
	body := it.body
	if body == nil {
		var err error
		if body, err = json.Marshal(it.obj.Object); err != nil {
			return nil, err
		}
	}
	req := e.rest.Patch(types.ApplyPatchType).
		AbsPath(objectPath(it.mapping, it.ref.Namespace, it.ref.Name)).
		Param("fieldManager", FieldManager).Param("force", "true").
		Body(body)
	if mode != applyPreview {
		req = req.SetHeader("Accept", metadataOnly)
	}
	if mode != applyWrite {
		req = req.Param("dryRun", "All")
	}
	var code int
	raw, err := req.Do(ctx).StatusCode(&code).Raw()
	if err != nil {
		return nil, statusError(raw, err)
	}
	res := &patchResult{created: code == http.StatusCreated}
	if mode == applyCheck {
		return res, nil
	}
	var out struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decode apply response for %s: %w", it.ref, err)
	}
	res.uid, res.resourceVersion = out.Metadata.UID, out.Metadata.ResourceVersion
	res.fieldsHash = ownFieldsHash(out.Metadata.ManagedFields)
	if mode == applyPreview {
		res.object = &unstructured.Unstructured{}
		if err := json.Unmarshal(raw, &res.object.Object); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// patchWithRetry applies, retrying what a busy API server answers with
// "later" (429, 5xx timeouts) a few times with backoff.
func (e *Engine) patchWithRetry(ctx context.Context, it *item) (*patchResult, error) {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		res, err := e.patch(ctx, it, applyWrite)
		if err == nil || attempt == 4 || !transient(err) {
			return res, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(delay):
		}
		delay *= 3
	}
}

// transient reports errors worth a retry: the server was busy, not wrong.
func transient(err error) bool {
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) ||
		apierrors.IsTimeout(err) || apierrors.IsServiceUnavailable(err)
}

// get reads the full live object.
func (e *Engine) get(ctx context.Context, it *item) (*unstructured.Unstructured, error) {
	raw, err := e.rest.Get().AbsPath(objectPath(it.mapping, it.ref.Namespace, it.ref.Name)).Do(ctx).Raw()
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", it.ref, err)
	}
	u := &unstructured.Unstructured{}
	return u, json.Unmarshal(raw, &u.Object)
}

// describe shortens an API error to its message.
func describe(err error) string {
	var se *apierrors.StatusError
	if errors.As(err, &se) {
		return se.ErrStatus.Message
	}
	return err.Error()
}

// ownFieldsHash hashes the fields homeostat holds by apply; another manager
// taking one of them (kubectl edit, a hand patch) changes it.
func ownFieldsHash(mf []metav1.ManagedFieldsEntry) string {
	for _, m := range mf {
		if m.Manager == FieldManager && m.Operation == metav1.ManagedFieldsOperationApply && m.Subresource == "" && m.FieldsV1 != nil {
			sum := sha256.Sum256(m.FieldsV1.GetRawBytes())
			return hex.EncodeToString(sum[:8])
		}
	}
	return ""
}

// isDefinition reports whether an object must exist before others can be
// applied: CRDs and Namespaces.
func isDefinition(u *unstructured.Unstructured) bool {
	gk := u.GroupVersionKind().GroupKind()
	return gk == (schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}) ||
		gk == (schema.GroupKind{Kind: "Namespace"})
}

// waitEstablished waits until the CRDs among items are served: Established,
// and their kinds found by the REST mapper. Discovery can lag a moment
// behind the Established condition, and the objects of the next stage are
// resolved through the mapper.
func (e *Engine) waitEstablished(ctx context.Context, items []*item) error {
	for _, it := range items {
		if it.ref.Kind != "CustomResourceDefinition" {
			continue
		}
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			u, err := e.get(ctx, it)
			if err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return e.mapsCRDKind(u), nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("wait for %s to be established: %w", it.ref, err)
		}
	}
	return nil
}
