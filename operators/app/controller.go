// Package app keeps an App's status in step with what it rendered to: the
// Deployment's ready replicas decide Ready, and the URL is where users reach
// it. Sync applies the App and its children; this controller only observes,
// so `kubectl get apps` and `kubectl wait --for=condition=Ready app/NAME`
// tell the truth.
package app

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Condition reasons, stable for users who grep them.
const (
	ReasonDeploymentReady     = "DeploymentReady"
	ReasonDeploymentMissing   = "DeploymentMissing"
	ReasonRollingOut          = "RollingOut"
	ReasonReplicasUnavailable = "ReplicasUnavailable"
)

// Reconciler writes App status from the App's Deployment.
type Reconciler struct {
	Client client.Client
}

// SetupWithManager watches Apps and the Deployments named after them.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("app").
		For(&v1alpha1.App{}).
		// A Deployment belongs to the App of the same name (render names every
		// child after its App), so map by name rather than by ownerReference,
		// which sync sets only after the first apply.
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(sameName)).
		Complete(r)
}

func sameName(_ context.Context, o client.Object) []ctrl.Request {
	return []ctrl.Request{{NamespacedName: client.ObjectKeyFromObject(o)}}
}

// Reconcile observes the App's Deployment and patches the App's status once.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var app v1alpha1.App
	if err := r.Client.Get(ctx, req.NamespacedName, &app); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var dep appsv1.Deployment
	err := r.Client.Get(ctx, req.NamespacedName, &dep)
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	patch := client.MergeFrom(app.DeepCopy())
	Observe(&app, deploymentOrNil(&dep, err))
	return ctrl.Result{}, r.Client.Status().Patch(ctx, &app, patch)
}

func deploymentOrNil(d *appsv1.Deployment, getErr error) *appsv1.Deployment {
	if getErr != nil {
		return nil
	}
	return d
}

// Observe sets app's status from its Deployment (nil when there is none yet).
// It is pure, so every case is a table test.
func Observe(app *v1alpha1.App, dep *appsv1.Deployment) {
	st := &app.Status
	st.ObservedGeneration = app.Generation
	st.URL = URL(app)
	ready, reason, msg := readiness(dep)
	st.ReadyReplicas = 0
	if dep != nil {
		st.ReadyReplicas = dep.Status.ReadyReplicas
	}
	status := metav1.ConditionFalse
	if ready {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: app.Generation,
	})
	reconciling := metav1.ConditionFalse
	if !ready && reason != ReasonDeploymentMissing {
		reconciling = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReconciling, Status: reconciling, Reason: reason, Message: msg,
		ObservedGeneration: app.Generation,
	})
}

// readiness follows kubectl rollout status: the newest generation observed,
// every replica updated, and all of them available.
func readiness(dep *appsv1.Deployment) (bool, string, string) {
	if dep == nil {
		return false, ReasonDeploymentMissing, "the App's Deployment does not exist yet"
	}
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	s := dep.Status
	switch {
	case s.ObservedGeneration < dep.Generation:
		return false, ReasonRollingOut, "waiting for the Deployment's new generation to be observed"
	case s.UpdatedReplicas < want:
		return false, ReasonRollingOut, fmt.Sprintf("%d of %d replicas updated", s.UpdatedReplicas, want)
	case s.AvailableReplicas < want:
		return false, ReasonReplicasUnavailable, fmt.Sprintf("%d of %d replicas available", s.AvailableReplicas, want)
	}
	return true, ReasonDeploymentReady, fmt.Sprintf("%d of %d replicas ready", s.ReadyReplicas, want)
}

// URL is where an App is reached: its first domain (https when TLS is set),
// else its Service inside the cluster.
func URL(app *v1alpha1.App) string {
	if len(app.Spec.Domains) > 0 {
		scheme := "http"
		if app.Spec.TLS != nil {
			scheme = "https"
		}
		return scheme + "://" + app.Spec.Domains[0]
	}
	ns := app.Namespace
	if ns == "" {
		ns = "default"
	}
	return fmt.Sprintf("http://%s.%s.svc", app.Name, ns)
}
