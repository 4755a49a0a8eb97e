package postgres

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// finalize applies the deletion policy: pods, Jobs, Services and disruption
// budgets go; volume claims and credential Secrets stay (so a Postgres
// re-created with the same name finds its data and passwords) unless
// spec.deletionPolicy is Delete.
func (r *PostgresReconciler) finalize(ctx context.Context, pg *v1alpha1.Postgres) error {
	if !controllerutil.ContainsFinalizer(pg, FinalizerName) {
		return nil
	}
	ns, sel := client.InNamespace(pg.Namespace), client.MatchingLabels{LabelCluster: pg.Name}
	bg := client.PropagationPolicy(metav1.DeletePropagationBackground)
	lists := []client.ObjectList{&corev1.PodList{}, &batchv1.JobList{}, &corev1.ServiceList{}, &policyv1.PodDisruptionBudgetList{}}
	if pg.Spec.DeletionPolicy == "Delete" {
		lists = append(lists, &corev1.PersistentVolumeClaimList{}, &corev1.SecretList{})
	}
	// One delete per object rather than DeleteAllOf: the controller's role
	// needs no deletecollection.
	for _, l := range lists {
		if err := r.List(ctx, l, ns, sel); err != nil {
			return fmt.Errorf("list %T of %s: %w", l, pg.Name, err)
		}
		err := meta.EachListItem(l, func(o runtime.Object) error {
			obj := o.(client.Object)
			if err := r.Delete(ctx, obj, bg); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("delete %T %s: %w", obj, obj.GetName(), err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	controllerutil.RemoveFinalizer(pg, FinalizerName)
	if err := r.Update(ctx, pg); err != nil {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	r.event(pg, "Deleted", "deletion policy %s applied", nonEmpty(pg.Spec.DeletionPolicy, "Retain"))
	return nil
}

// SetupWithManager watches Postgres objects and what the controller creates
// for them: a pod turning ready or failing, a Job ending, a Backup
// completing each wake the cluster up.
func (r *PostgresReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Scheme == nil {
		r.Scheme = mgr.GetScheme()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	byCluster := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
		name := o.GetLabels()[LabelCluster]
		if b, ok := o.(*v1alpha1.Backup); ok {
			name = b.Spec.Cluster.Name
		}
		if name == "" {
			return nil
		}
		return []ctrl.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("postgres").
		For(&v1alpha1.Postgres{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Pod{}, byCluster).
		Watches(&batchv1.Job{}, byCluster).
		Watches(&corev1.PersistentVolumeClaim{}, byCluster).
		Watches(&v1alpha1.Backup{}, byCluster).
		// A hand edit of the instances' identity or of a disruption
		// budget is put back at once.
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		// A Stalled cluster waits for its S3 secret: creating or fixing it
		// wakes the cluster up. Metadata is all the mapping needs, so the
		// data of the cluster's Secrets is never held in the cache.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.postgresForSecret), builder.OnlyMetadata).
		Complete(r)
}

// postgresForSecret lists the clusters whose backup or bootstrap store names
// the secret.
func (r *PostgresReconciler) postgresForSecret(ctx context.Context, o client.Object) []ctrl.Request {
	var l v1alpha1.PostgresList
	if err := r.List(ctx, &l, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []ctrl.Request
	for _, pg := range l.Items {
		b, bs := pg.Spec.Backup, pg.Spec.Bootstrap
		if (b != nil && b.S3.SecretRef.Name == o.GetName()) ||
			(bs != nil && bs.FromBackup != nil && bs.FromBackup.S3.SecretRef.Name == o.GetName()) {
			out = append(out, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&pg)})
		}
	}
	return out
}
