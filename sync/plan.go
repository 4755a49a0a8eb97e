package sync

import (
	"context"
	"fmt"
	gosync "sync"

	"github.com/pmezard/go-difflib/difflib"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"homeostat.dev/homeostat/render"
)

// Plan asks the cluster, with server-side dry-run, what Apply would do, and
// writes nothing. Each created or configured change carries a unified diff
// of the object (managed fields, status and homeostat's hash left out,
// Secret values masked). With a non-nil inventory, objects that left git
// are listed as pruned.
func (e *Engine) Plan(ctx context.Context, t Target, desired []render.Object, inv Inventory) (ChangeSet, error) {
	items, err := prepare(t, desired)
	if err != nil {
		return ChangeSet{}, err
	}
	if err := e.resolve(e.kinds(), t, items); err != nil {
		return ChangeSet{}, err
	}
	e.linkLiveOwners(ctx, items)
	for _, it := range items {
		// Apply would send the hash annotation; so must the dry-run.
		if it.hash, it.body, err = hashObject(it.obj); err != nil {
			return ChangeSet{}, fmt.Errorf("%s: hash %s: %w", it.src, it.ref, err)
		}
	}
	changes := make([]Change, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.concurrency)
	for i, it := range items {
		g.Go(func() error {
			c, err := e.planOne(gctx, it)
			changes[i] = c
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return ChangeSet{}, err
	}
	cs := ChangeSet{Changes: changes}
	if inv != nil {
		var keep Inventory
		for _, it := range items {
			keep = append(keep, it.ref)
		}
		for _, r := range inv.Minus(keep) {
			cs.Add(Change{Ref: r, Action: Pruned})
		}
	}
	return cs, nil
}

// linkLiveOwners gives children the ownerReference to their parent when the
// parent already exists, so the plan does not show a spurious change.
func (e *Engine) linkLiveOwners(ctx context.Context, items []*item) {
	var mu gosync.Mutex
	uids := map[string]types.UID{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.concurrency)
	for _, it := range items {
		if it.owner != nil {
			continue
		}
		g.Go(func() error {
			if u, err := e.get(gctx, it); err == nil {
				mu.Lock()
				uids[it.ref.ID()] = u.GetUID()
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	for _, it := range items {
		if it.owner != nil {
			_ = linkOwners([]*item{it}, uids, false)
		}
	}
}

func (e *Engine) planOne(ctx context.Context, it *item) (Change, error) {
	c := Change{Ref: it.ref, Source: it.src}
	live, err := e.get(ctx, it)
	if err != nil && !apierrors.IsNotFound(err) {
		return c, fmt.Errorf("%s: %w", it.src, err)
	}
	if apierrors.IsNotFound(err) {
		live = nil
	}
	dry, err := e.patch(ctx, it, applyPreview)
	if err != nil {
		// A new object in a namespace the same change creates cannot be
		// dry-run; show what git has instead.
		if live == nil && apierrors.IsNotFound(err) {
			dry = &patchResult{object: it.obj}
		} else {
			c.Action, c.Err = Failed, describe(err)
			return c, nil
		}
	}
	if live == nil {
		c.Action = Created
	} else if equalIgnoringMeta(live, dry.object) {
		c.Action = Unchanged
		return c, nil
	} else {
		c.Action = Configured
	}
	d, err := Diff(live, dry.object)
	if err != nil {
		return c, fmt.Errorf("diff %s: %w", it.ref, err)
	}
	c.Diff = d
	return c, nil
}

// Diff returns a unified diff between the live and the desired version of an
// object (either may be nil), as YAML without the fields no human wants to
// read and with Secret values masked.
func Diff(before, after *unstructured.Unstructured) (string, error) {
	return DiffNamed(before, after, "live", "git")
}

// DiffNamed is Diff with the names of the two sides (the diff's file names
// are "<name>/<Kind/namespace/name>").
func DiffNamed(before, after *unstructured.Unstructured, beforeName, afterName string) (string, error) {
	before, after = clean(before), clean(after)
	maskSecrets(before, after)
	a, err := toYAML(before)
	if err != nil {
		return "", err
	}
	b, err := toYAML(after)
	if err != nil {
		return "", err
	}
	name := ""
	for _, u := range []*unstructured.Unstructured{after, before} {
		if u != nil {
			name = RefOf(u).String()
			break
		}
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(a), B: difflib.SplitLines(b),
		FromFile: beforeName + "/" + name, ToFile: afterName + "/" + name, Context: 3,
	})
}

func toYAML(u *unstructured.Unstructured) (string, error) {
	if u == nil {
		return "", nil
	}
	b, err := yaml.Marshal(u.Object)
	return string(b), err
}

// clean copies an object without server-set metadata, status and the hash.
func clean(u *unstructured.Unstructured) *unstructured.Unstructured {
	if u == nil {
		return nil
	}
	c := u.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(c.Object, "metadata", "annotations", AnnotationHash)
	if len(c.GetAnnotations()) == 0 {
		unstructured.RemoveNestedField(c.Object, "metadata", "annotations")
	}
	unstructured.RemoveNestedField(c.Object, "status")
	return c
}

// maskSecrets replaces Secret values with stars, keeping whether a value
// changed visible, the way `kubectl diff` does.
func maskSecrets(before, after *unstructured.Unstructured) {
	isSecret := func(u *unstructured.Unstructured) bool {
		return u != nil && u.GetKind() == "Secret" && u.GroupVersionKind().Group == ""
	}
	if !isSecret(before) && !isSecret(after) {
		return
	}
	for _, field := range []string{"data", "stringData"} {
		var bm, am map[string]any
		if before != nil {
			bm, _, _ = unstructured.NestedMap(before.Object, field)
		}
		if after != nil {
			am, _, _ = unstructured.NestedMap(after.Object, field)
		}
		for k, bv := range bm {
			av, ok := am[k]
			switch {
			case ok && fmt.Sprint(av) == fmt.Sprint(bv):
				bm[k], am[k] = "***", "***"
			case ok:
				bm[k], am[k] = "*** (before)", "*** (after)"
			default:
				bm[k] = "***"
			}
		}
		for k := range am {
			if _, ok := bm[k]; !ok {
				am[k] = "***"
			}
		}
		if bm != nil {
			_ = unstructured.SetNestedMap(before.Object, bm, field)
		}
		if am != nil {
			_ = unstructured.SetNestedMap(after.Object, am, field)
		}
	}
}
