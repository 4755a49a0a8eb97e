package postgres

import (
	"context"
	"fmt"

	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// PrimaryPDBName is the PodDisruptionBudget that keeps a voluntary
// disruption (a node drain's eviction) from taking the primary: it moves
// only by switchover.
func PrimaryPDBName(cluster string) string { return cluster + "-primary" }

// ReplicasPDBName is the PodDisruptionBudget that lets a drain evict the
// replicas one at a time.
func ReplicasPDBName(cluster string) string { return cluster + "-replicas" }

// DisruptionBudgets builds a cluster's PodDisruptionBudgets, which select
// pods by the role label the operator keeps current, so they follow a
// failover or switchover at once:
//   - NAME-primary allows no eviction of the primary (maxUnavailable 0):
//     a drain of its node waits until `homeostat pg switchover` has moved
//     the primary away, since evicting it would be an unplanned failover;
//   - NAME-replicas lets the replicas go one at a time (maxUnavailable 1).
//
// A cluster of one instance gets neither: there is no replica to switch
// over to, so a budget could only block a node drain for ever; its drain
// restarts the instance (with its volume) elsewhere, the downtime any
// maintenance of a single instance has.
func DisruptionBudgets(pg *v1alpha1.Postgres) []*policyv1.PodDisruptionBudget {
	if instances(pg) < 2 {
		return nil
	}
	pdb := func(name, role string, maxUnavailable int) *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{
			TypeMeta: metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
			ObjectMeta: metav1.ObjectMeta{
				Name:      name,
				Namespace: pg.Namespace,
				Labels:    withLabels(commonLabels(pg), LabelRole, role),
			},
			Spec: policyv1.PodDisruptionBudgetSpec{
				MaxUnavailable: ptrIntOrString(maxUnavailable),
				Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{LabelCluster: pg.Name, LabelRole: role}},
			},
		}
	}
	return []*policyv1.PodDisruptionBudget{
		pdb(PrimaryPDBName(pg.Name), RolePrimary, 0),
		pdb(ReplicasPDBName(pg.Name), RoleReplica, 1),
	}
}

func ptrIntOrString(n int) *intstr.IntOrString {
	v := intstr.FromInt32(int32(n))
	return &v
}

// ensureDisruptionBudgets creates, corrects or removes the cluster's
// PodDisruptionBudgets to match DisruptionBudgets: a scale to one instance
// removes them, a scale up brings them back, and a budget edited by hand is
// set back.
func (r *PostgresReconciler) ensureDisruptionBudgets(ctx context.Context, c *cluster) error {
	want := map[string]*policyv1.PodDisruptionBudget{}
	for _, p := range DisruptionBudgets(c.pg) {
		want[p.Name] = p
	}
	for _, name := range []string{PrimaryPDBName(c.pg.Name), ReplicasPDBName(c.pg.Name)} {
		var cur policyv1.PodDisruptionBudget
		err := r.Get(ctx, client.ObjectKey{Namespace: c.pg.Namespace, Name: name}, &cur)
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("read pod disruption budget %s: %w", name, err)
		}
		if err := r.syncBudget(ctx, c, want[name], &cur, err == nil); err != nil {
			return err
		}
	}
	return nil
}

// syncBudget brings one budget (cur, when exists) to want (nil: none).
// A budget of the same name that the Postgres does not own is left alone.
func (r *PostgresReconciler) syncBudget(ctx context.Context, c *cluster, want, cur *policyv1.PodDisruptionBudget, exists bool) error {
	switch {
	case exists && !metav1.IsControlledBy(cur, c.pg):
		return nil
	case want == nil && exists:
		if err := r.Delete(ctx, cur); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete pod disruption budget %s: %w", cur.Name, err)
		}
		r.event(c.pg, "DisruptionBudgetRemoved", "removed %s: a single instance has no replica to switch over to", cur.Name)
	case want != nil && !exists:
		if err := controllerutil.SetControllerReference(c.pg, want, r.Scheme); err != nil {
			return err
		}
		if err := r.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create pod disruption budget %s: %w", want.Name, err)
		}
	case want != nil && !equality.Semantic.DeepEqual(cur.Spec, want.Spec):
		cur.Spec = want.Spec
		if err := r.Update(ctx, cur); err != nil {
			return fmt.Errorf("update pod disruption budget %s: %w", cur.Name, err)
		}
	}
	return nil
}
