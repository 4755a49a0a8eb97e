package postgres

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// ServiceAccountName is the ServiceAccount an instance's pods and Jobs run
// as, and the name of its Role and RoleBinding: the cluster's own name, as
// CloudNativePG does.
func ServiceAccountName(cluster string) string { return cluster }

// InstanceServiceAccount is the identity of a cluster's pods. Without one
// they would run as the namespace's `default`, which a well-run cluster
// grants nothing: `instance run` could then neither learn its role nor
// renew its heartbeat.
func InstanceServiceAccount(pg *v1alpha1.Postgres) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: ServiceAccountName(pg.Name), Namespace: pg.Namespace, Labels: commonLabels(pg)},
	}
}

// InstanceRole grants exactly the requests `homeostat instance run` makes
// (cmd/homeostat's postgresAuthority), each limited by resourceNames:
//
//   - get on this Postgres: its status.primary decides whether the instance
//     runs as the primary, follows it, or rewinds and rejoins;
//   - patch on this cluster's instance pods: the primary renews its
//     heartbeat annotation, the lease the operator waits out before it
//     promotes another.
//
// `instance init`, `instance join`, `backup restore` and `backup push`
// make no request to the API server. A cluster with no instance yet gets
// no pod rule at all: a rule with no resourceNames would cover every pod
// in the namespace.
func InstanceRole(pg *v1alpha1.Postgres, instances []string) *rbacv1.Role {
	rules := []rbacv1.PolicyRule{{
		APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"postgres"},
		Verbs: []string{"get"}, ResourceNames: []string{pg.Name},
	}}
	if len(instances) > 0 {
		names := append([]string(nil), instances...)
		sort.Strings(names)
		rules = append(rules, rbacv1.PolicyRule{
			APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"patch"}, ResourceNames: names,
		})
	}
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: ServiceAccountName(pg.Name), Namespace: pg.Namespace, Labels: commonLabels(pg)},
		Rules:      rules,
	}
}

// InstanceRoleBinding binds InstanceRole to InstanceServiceAccount.
func InstanceRoleBinding(pg *v1alpha1.Postgres) *rbacv1.RoleBinding {
	name := ServiceAccountName(pg.Name)
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: pg.Namespace, Labels: commonLabels(pg)},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: pg.Namespace}},
	}
}

// ensureAccess keeps the instances' ServiceAccount, Role and RoleBinding as
// InstanceServiceAccount, InstanceRole and InstanceRoleBinding build them,
// owned by the Postgres: a missing one is created, a hand-edited one put
// back. The Role names every instance that has a volume, so a pod's
// heartbeat is allowed before the pod exists. Nothing is written while they
// match.
func (r *PostgresReconciler) ensureAccess(ctx context.Context, c *cluster) error {
	names := make([]string, 0, len(c.pvcs))
	for name := range c.pvcs {
		names = append(names, name)
	}
	for _, want := range []client.Object{InstanceServiceAccount(c.pg), InstanceRole(c.pg, names), InstanceRoleBinding(c.pg)} {
		if err := r.ensureObject(ctx, c.pg, want); err != nil {
			return err
		}
	}
	return nil
}

// ensureObject creates want, or updates the object of its name to want's
// labels, owner and content when they differ.
func (r *PostgresReconciler) ensureObject(ctx context.Context, pg *v1alpha1.Postgres, want client.Object) error {
	have := want.DeepCopyObject().(client.Object)
	err := r.Get(ctx, client.ObjectKeyFromObject(want), have)
	if apierrors.IsNotFound(err) {
		return r.create(ctx, pg, want)
	}
	if err != nil {
		return fmt.Errorf("read %T %s: %w", want, want.GetName(), err)
	}
	if matches(pg, have, want) {
		return nil
	}
	if rb, ok := have.(*rbacv1.RoleBinding); ok && rb.RoleRef != want.(*rbacv1.RoleBinding).RoleRef {
		// roleRef cannot change: replace the binding.
		if err := r.Delete(ctx, rb); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("replace role binding %s: %w", rb.Name, err)
		}
		return r.create(ctx, pg, want)
	}
	copyContent(have, want)
	labels := have.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range want.GetLabels() {
		labels[k] = v
	}
	have.SetLabels(labels)
	if err := r.setOwner(pg, have); err != nil {
		return err
	}
	if err := r.Update(ctx, have); err != nil {
		return fmt.Errorf("restore %T %s: %w", want, want.GetName(), err)
	}
	r.event(pg, "AccessRestored", "%s %s put back as the operator builds it", want.GetObjectKind().GroupVersionKind().Kind, want.GetName())
	return nil
}

// create creates want owned by pg. An object of that name that the cache
// does not see (someone removed its managed-by label, which the
// controller's cache selects on) is replaced by want, unconditionally.
func (r *PostgresReconciler) create(ctx context.Context, pg *v1alpha1.Postgres, want client.Object) error {
	if err := controllerutil.SetControllerReference(pg, want, r.Scheme); err != nil {
		return err
	}
	err := r.Create(ctx, want)
	if apierrors.IsAlreadyExists(err) {
		err = r.Update(ctx, want)
	}
	if err != nil {
		return fmt.Errorf("create %T %s: %w", want, want.GetName(), err)
	}
	return nil
}

// setOwner makes pg the object's only controller.
func (r *PostgresReconciler) setOwner(pg *v1alpha1.Postgres, obj client.Object) error {
	refs := obj.GetOwnerReferences()[:0:0]
	for _, ref := range obj.GetOwnerReferences() {
		if ref.Controller == nil || !*ref.Controller {
			refs = append(refs, ref)
		}
	}
	obj.SetOwnerReferences(refs)
	return controllerutil.SetControllerReference(pg, obj, r.Scheme)
}

// matches says whether have is want: controlled by pg, with want's labels
// and content.
func matches(pg *v1alpha1.Postgres, have, want client.Object) bool {
	if !metav1.IsControlledBy(have, pg) {
		return false
	}
	for k, v := range want.GetLabels() {
		if have.GetLabels()[k] != v {
			return false
		}
	}
	switch w := want.(type) {
	case *rbacv1.Role:
		return equality.Semantic.DeepEqual(have.(*rbacv1.Role).Rules, w.Rules)
	case *rbacv1.RoleBinding:
		h := have.(*rbacv1.RoleBinding)
		return h.RoleRef == w.RoleRef && equality.Semantic.DeepEqual(h.Subjects, w.Subjects)
	}
	return true
}

// copyContent sets have's content (rules, subjects) to want's.
func copyContent(have, want client.Object) {
	switch w := want.(type) {
	case *rbacv1.Role:
		have.(*rbacv1.Role).Rules = w.Rules
	case *rbacv1.RoleBinding:
		have.(*rbacv1.RoleBinding).Subjects = w.Subjects
	}
}
