package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Reconciler syncs every Sync on its interval, at once when its spec or its
// sync-at annotation changes, and never while it is suspended.
type Reconciler struct {
	Client   client.Client
	Runner   *Runner
	Recorder events.EventRecorder
}

// SetupWithManager registers the reconciler. Status updates do not trigger
// a reconcile (only spec and annotation changes do); the interval is a
// RequeueAfter.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		WithOptions(opts).
		For(&v1alpha1.Sync{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Named("sync").
		Complete(r)
}

// Reconcile runs one sync and patches the status once, however it ended.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	s := &v1alpha1.Sync{}
	if err := r.Client.Get(ctx, req.NamespacedName, s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := s.DeepCopy()
	defer func() {
		if apiequality.Semantic.DeepEqual(base.Status, s.Status) {
			return
		}
		if err := r.Client.Status().Patch(ctx, s, client.MergeFrom(base)); err != nil && retErr == nil {
			retErr = client.IgnoreNotFound(err)
		}
	}()
	if s.Spec.Suspend {
		SetSuspended(s)
		return ctrl.Result{}, nil
	}
	interval := durationOr(s.Spec.Interval, time.Minute)
	trigger, syncAt := r.trigger(s)
	o := r.Runner.Sync(ctx, s, trigger)
	ApplyStatus(s, o)
	s.Status.LastHandledSyncAt = syncAt
	record(s.Namespace, s.Name, o)
	r.event(s, o)
	log.FromContext(ctx).Info("synced", "revision", o.Revision.Name, "trigger", trigger,
		"changes", o.Changes.Summary(), "reason", o.Reason, "error", errString(o.Err))
	return ctrl.Result{RequeueAfter: interval}, nil
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
