package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render"
)

// AnnotationRecreate on an object lets homeostat delete and re-create it
// when the API server refuses a change to one of its immutable fields (a
// Deployment's selector, a Job's template). Without it (or the Sync's
// spec.force) such a change fails the sync and names the field.
const AnnotationRecreate = "homeostat.dev/recreate"

// Refusal is one object the API server refused in the dry-run.
type Refusal struct {
	Ref    Ref
	Source render.Source
	// Message is the API server's own message (the admission policy's,
	// the field's validation).
	Message string
	// ImmutableField names the field when the refusal is a change to an
	// immutable field ("spec.selector"); empty otherwise.
	ImmutableField string
}

// String is "FILE:LINE: Kind/namespace/name: message", plus a hint for an
// immutable field.
func (r Refusal) String() string {
	s := fmt.Sprintf("%s: %s: %s", r.Source, r.Ref, r.Message)
	if r.ImmutableField != "" {
		s += fmt.Sprintf(" (field %s is immutable: to delete and re-create the object, set the annotation %s: \"true\" on it, or spec.force: true on the Sync)",
			r.ImmutableField, AnnotationRecreate)
	}
	return s
}

// RefusedError is a revision the API server refused in the dry-run before
// anything was written.
type RefusedError struct {
	Refusals []Refusal
}

func (e *RefusedError) Error() string {
	msgs := make([]string, 0, len(e.Refusals))
	for _, r := range e.Refusals {
		msgs = append(msgs, r.String())
	}
	return fmt.Sprintf("the API server refused %d object(s), nothing was written: %s", len(e.Refusals), listSome(msgs, 5))
}

// Immutable reports whether a refusal is a change to an immutable field:
// retrying the same revision cannot succeed.
func (e *RefusedError) Immutable() bool {
	for _, r := range e.Refusals {
		if r.ImmutableField != "" {
			return true
		}
	}
	return false
}

// validate decides which of items must be written and dry-runs exactly
// those; one refusal fails with nothing written. Children are decided after
// their parents, linked to the UIDs the parents have now (placeholders for
// parents still to be created); uids collects those UIDs.
func (e *Engine) validate(ctx context.Context, items []*item, inv Inventory, uids map[string]types.UID, opts ApplyOptions, cs *ChangeSet) error {
	var parents, children []*item
	for _, it := range items {
		if it.owner != nil {
			children = append(children, it)
		} else {
			parents = append(parents, it)
		}
	}
	if err := e.decide(ctx, parents, inv); err != nil {
		return err
	}
	for _, it := range parents {
		if it.live != nil {
			uids[it.ref.ID()] = it.live.uid
		}
	}
	if len(children) > 0 {
		if err := linkOwners(children, uids, true); err != nil {
			return err
		}
		if err := e.decide(ctx, children, inv); err != nil {
			return err
		}
	}
	refusals := e.dryRun(ctx, items, opts.Force)
	if len(refusals) == 0 {
		return ctx.Err()
	}
	for _, r := range refusals {
		cs.Add(Change{Ref: r.Ref, Source: r.Source, Action: Failed, Err: r.Message})
	}
	return &RefusedError{Refusals: refusals}
}

// dryRun sends every object marked for writing as a server-side dry-run
// and returns the refusals. An immutable-field refusal of an object that
// opted in (or under force) is no refusal: the object is marked to be
// re-created. Twice as many dry-runs as writes are in flight: they wait
// on no etcd commit, and more of them keep the API server busier.
func (e *Engine) dryRun(ctx context.Context, items []*item, force bool) []Refusal {
	out := make([]*Refusal, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2 * e.concurrency)
	for i, it := range items {
		if !it.send {
			continue
		}
		g.Go(func() error {
			res, err := e.patch(gctx, it, applyCheck)
			if err == nil {
				it.creates = res.created
				return nil
			}
			field := immutableField(err)
			if field != "" && (force || it.obj.GetAnnotations()[AnnotationRecreate] == "true") {
				it.recreate = true
				return nil
			}
			out[i] = &Refusal{Ref: it.ref, Source: it.src, Message: describe(err), ImmutableField: field}
			return nil
		})
	}
	_ = g.Wait()
	var refusals []Refusal
	for _, r := range out {
		if r != nil {
			refusals = append(refusals, *r)
		}
	}
	return refusals
}

// statusError turns an error response into the API server's own Status,
// message and causes included; the REST client's generic error ("the
// server rejected our request due to an error in our request") is kept
// only when the body holds no Status.
func statusError(body []byte, err error) error {
	var se *apierrors.StatusError
	if errors.As(err, &se) && se.ErrStatus.Message != "" && !strings.HasPrefix(se.ErrStatus.Message, "the server rejected our request") {
		return err
	}
	var st metav1.Status
	if len(body) == 0 || json.Unmarshal(body, &st) != nil || st.Kind != "Status" || st.Message == "" {
		return err
	}
	return &apierrors.StatusError{ErrStatus: st}
}

// immutableField names the field an Invalid error says may not change, or
// returns "".
func immutableField(err error) string {
	var se *apierrors.StatusError
	if !errors.As(err, &se) || se.ErrStatus.Reason != metav1.StatusReasonInvalid {
		return ""
	}
	immutable := func(msg string) bool {
		return strings.Contains(msg, "immutable") || strings.Contains(msg, "may not change once set")
	}
	if d := se.ErrStatus.Details; d != nil {
		for _, c := range d.Causes {
			if immutable(c.Message) {
				if c.Field != "" {
					return c.Field
				}
				return "(unnamed)"
			}
		}
	}
	if immutable(se.ErrStatus.Message) {
		return "(unnamed)"
	}
	return ""
}

// deleteForRecreate deletes an object that must be re-created and waits
// until it is gone (its finalizers done), so the apply that follows
// creates it afresh.
func (e *Engine) deleteForRecreate(ctx context.Context, it *item) error {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(it.ref.GVK())
	obj.SetNamespace(it.ref.Namespace)
	obj.SetName(it.ref.Name)
	opts := []client.DeleteOption{client.PropagationPolicy(metav1.DeletePropagationBackground)}
	if it.live != nil && it.live.uid != "" {
		uid := it.live.uid
		opts = append(opts, client.Preconditions{UID: &uid})
	}
	if err := e.client.Delete(ctx, obj, opts...); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s to re-create it: %s", it.ref, describe(err))
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		err := e.client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return fmt.Errorf("wait for %s to be deleted before re-creating it: %w", it.ref, err)
	}
	return nil
}

// undoDefinitions deletes the CRDs and Namespaces this apply created, when
// objects that needed them were refused: a refused revision leaves nothing
// behind. err is returned, joined with any failure to undo.
func (e *Engine) undoDefinitions(ctx context.Context, defs []*item, err error) error {
	var errs []error
	for _, it := range defs {
		if !it.creates {
			continue
		}
		obj := &metav1.PartialObjectMetadata{}
		obj.SetGroupVersionKind(it.ref.GVK())
		obj.SetName(it.ref.Name)
		if derr := e.client.Delete(ctx, obj); derr != nil && !apierrors.IsNotFound(derr) {
			errs = append(errs, fmt.Errorf("undo the creation of %s: %w", it.ref, derr))
		}
	}
	if len(errs) > 0 {
		return errors.Join(append([]error{err}, errs...)...)
	}
	return err
}
