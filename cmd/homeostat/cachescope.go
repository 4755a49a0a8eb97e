package main

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// scopeCache keeps the manager's memory proportional to what homeostat
// made, not to the cluster around it. By default controller-runtime caches
// every object of every kind a controller watches or reads, cluster-wide:
// on a cluster with thousands of unrelated Pods and Secrets that is most of
// the controller's heap, and a cache of every Secret's data is also a
// needless copy of every credential in the cluster.
//
//   - Pods, Jobs, PersistentVolumeClaims, Services, Deployments,
//     PodDisruptionBudgets and the Postgres instances' ServiceAccounts,
//     Roles and RoleBindings are
//     cached only when labelled app.kubernetes.io/managed-by=homeostat,
//     which every object the operators and the App renderer make carries.
//   - Secrets are never cached: reads go to the API server (they are rare:
//     credentials when a workflow needs them), and the Postgres operator's
//     watch for a late S3 secret is metadata-only (see operators/postgres).
//   - Managed fields are stripped from every cached object.
func scopeCache(o ctrl.Options) ctrl.Options {
	own := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue})}
	o.Cache.ByObject = map[client.Object]cache.ByObject{
		&corev1.Pod{}:                   own,
		&batchv1.Job{}:                  own,
		&corev1.PersistentVolumeClaim{}: own,
		&corev1.Service{}:               own,
		&appsv1.Deployment{}:            own,
		&corev1.ServiceAccount{}:        own,
		&rbacv1.Role{}:                  own,
		&rbacv1.RoleBinding{}:           own,
		&policyv1.PodDisruptionBudget{}: own,
	}
	o.Cache.DefaultTransform = cache.TransformStripManagedFields()
	o.Client.Cache = &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}
	return o
}
