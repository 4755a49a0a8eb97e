package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
)

// Reconciler syncs every Sync on its interval, at once when its spec or its
// sync-at annotation changes, and never while it is suspended.
type Reconciler struct {
	Client   client.Client
	Runner   *Runner
	Recorder events.EventRecorder
	// Leases, when set, is an uncached client through which each sync
	// takes its Sync's Lease (see Lock) and re-reads the Sync, so a CLI
	// sync or rollback and the controller never write one Sync at once.
	Leases client.Client
	// Holder names this controller in Leases; Holder("controller") when empty.
	Holder string
}

// SetupWithManager registers the reconciler. Status updates do not trigger
// a reconcile (only spec and annotation changes do); the interval is a
// RequeueAfter.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		WithOptions(opts).
		For(&v1alpha1.Sync{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{},
			predicate.AnnotationChangedPredicate{}, deleting))).
		Named("sync").
		Complete(r)
}

// Reconcile runs one sync and patches the status once, however it ended.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	s := &v1alpha1.Sync{}
	if err := r.Client.Get(ctx, req.NamespacedName, s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	unlock, res, err := r.lock(ctx, s)
	if unlock == nil {
		return res, err
	}
	defer unlock() // after the status patch below
	base := s.DeepCopy()
	defer func() {
		if apiequality.Semantic.DeepEqual(base.Status, s.Status) {
			return
		}
		// Optimistic locking against the version this reconcile last read
		// or wrote itself: a status written meanwhile by another writer (a
		// CLI sync) is not overwritten; the conflict requeues.
		base.ResourceVersion = s.ResourceVersion
		patch := client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
		if err := r.Client.Status().Patch(ctx, s, patch); err != nil && retErr == nil {
			retErr = client.IgnoreNotFound(err)
		}
	}()
	if !s.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, s)
	}
	if err := r.ensureFinalizer(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	if s.Spec.Suspend {
		SetSuspended(s)
		return ctrl.Result{}, nil
	}
	if err := checkDependencies(ctx, r.Client, s); err != nil {
		SetDependencyNotReady(s, err)
		return ctrl.Result{RequeueAfter: dependencyRetry}, nil
	}
	interval := durationOr(s.Spec.Interval, time.Minute)
	trigger, syncAt := r.trigger(s)
	o := r.Runner.Sync(ctx, s, trigger)
	if o.Skipped {
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	if apierrors.IsConflict(o.Err) {
		// Someone else wrote the Sync meanwhile: record nothing, retry soon
		// with what they wrote.
		s.Status = base.Status
		return ctrl.Result{}, o.Err
	}
	ApplyStatus(s, o)
	s.Status.LastHandledSyncAt = syncAt
	record(s.Namespace, s.Name, o)
	r.event(s, o)
	log.FromContext(ctx).Info("synced", "revision", o.Revision.Name, "trigger", trigger,
		"changes", o.Changes.Summary(), "reason", o.Reason, "error", errString(o.Err))
	return ctrl.Result{RequeueAfter: interval}, nil
}

// busyRetry is how soon a Sync whose Lease another writer holds is tried again.
const busyRetry = 5 * time.Second

// lock takes the Sync's Lease and re-reads the Sync from the API server,
// so the sync starts from what the last writer left. A nil unlock means
// do not sync now: res and err say when to come back.
func (r *Reconciler) lock(ctx context.Context, s *v1alpha1.Sync) (unlock func(), res ctrl.Result, err error) {
	if r.Leases == nil {
		return func() {}, ctrl.Result{}, nil
	}
	holder := r.Holder
	if holder == "" {
		holder = Holder("controller")
	}
	unlock, err = Lock(ctx, r.Leases, s, holder, 0)
	var busy *BusyError
	if errors.As(err, &busy) {
		log.FromContext(ctx).Info("sync busy, retrying", "holder", busy.Holder)
		return nil, ctrl.Result{RequeueAfter: busyRetry}, nil
	}
	if err != nil {
		return nil, ctrl.Result{}, err
	}
	if err := r.Leases.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
		unlock()
		return nil, ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return unlock, ctrl.Result{}, nil
}

// FinalizerPrune holds a deleted Sync until the objects it applied are
// pruned (unless spec.prune is false or it is suspended).
const FinalizerPrune = "homeostat.dev/prune"

// deleting lets the start of a Sync's deletion through to Reconcile.
var deleting = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	return !e.ObjectNew.GetDeletionTimestamp().IsZero()
}}

// ensureFinalizer adds FinalizerPrune before the first sync.
func (r *Reconciler) ensureFinalizer(ctx context.Context, s *v1alpha1.Sync) error {
	if controllerutil.ContainsFinalizer(s, FinalizerPrune) {
		return nil
	}
	patch := client.MergeFrom(s.DeepCopy())
	controllerutil.AddFinalizer(s, FinalizerPrune)
	return r.Client.Patch(ctx, s, patch)
}

// finalize prunes what a deleted Sync applied, then lets it go. A Sync with
// prune: false, or a suspended one, leaves its objects in place.
func (r *Reconciler) finalize(ctx context.Context, s *v1alpha1.Sync) error {
	if !controllerutil.ContainsFinalizer(s, FinalizerPrune) {
		return nil
	}
	if (s.Spec.Prune == nil || *s.Spec.Prune) && !s.Spec.Suspend {
		eng, err := r.Runner.engine(s)
		if err != nil {
			return err
		}
		inv, err := hsync.SyncInventory(s.Status)
		if err != nil {
			return err
		}
		cs, err := eng.Prune(ctx, target(s), inv)
		if err != nil {
			return fmt.Errorf("prune objects of deleted sync %s/%s: %w", s.Namespace, s.Name, err)
		}
		log.FromContext(ctx).Info("deleted sync pruned", "changes", cs.Summary())
	}
	patch := client.MergeFrom(s.DeepCopy())
	controllerutil.RemoveFinalizer(s, FinalizerPrune)
	return client.IgnoreNotFound(r.Client.Patch(ctx, s, patch))
}

// trigger tells an asked-for sync from a periodic one.
func (r *Reconciler) trigger(s *v1alpha1.Sync) (trigger, syncAt string) {
	syncAt = s.Annotations[AnnotationSyncAt]
	if syncAt == "" || syncAt == s.Status.LastHandledSyncAt {
		return TriggerInterval, s.Status.LastHandledSyncAt
	}
	if t := s.Annotations[AnnotationSyncTrigger]; t != "" {
		return t, syncAt
	}
	return TriggerManual, syncAt
}

// event reports a sync that did something or failed; an idle one is silent.
func (r *Reconciler) event(s *v1alpha1.Sync, o Outcome) {
	if r.Recorder == nil {
		return
	}
	switch {
	case o.Err != nil:
		r.Recorder.Eventf(s, nil, corev1.EventTypeWarning, o.Reason, "Sync", "%s: %s", o.Revision.Name, o.Err)
	case o.Changes.Changed() || o.Snapshot != "":
		r.Recorder.Eventf(s, nil, corev1.EventTypeNormal, ReasonSucceeded, "Sync", "%s: %s", o.Revision.Name, o.Changes.Summary())
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
