package postgres

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// HostnameKey is the node label the default spread is over: one node, one
// failure domain.
const HostnameKey = "kubernetes.io/hostname"

// placement is where an instance pod may run: spec.affinity as given, and
// spec.topologySpreadConstraints, or by default a spread of the cluster's
// instances over nodes (DefaultSpread).
func placement(pg *v1alpha1.Postgres) (*corev1.Affinity, []corev1.TopologySpreadConstraint) {
	var aff *corev1.Affinity
	if pg.Spec.Affinity != nil {
		aff = pg.Spec.Affinity.DeepCopy()
	}
	if len(pg.Spec.TopologySpreadConstraints) > 0 {
		out := make([]corev1.TopologySpreadConstraint, len(pg.Spec.TopologySpreadConstraints))
		for i := range pg.Spec.TopologySpreadConstraints {
			pg.Spec.TopologySpreadConstraints[i].DeepCopyInto(&out[i])
		}
		return aff, out
	}
	return aff, DefaultSpread(pg)
}

// instanceSelector selects the cluster's instance pods (they carry a role;
// the pods of its Jobs do not).
func instanceSelector(pg *v1alpha1.Postgres) *metav1.LabelSelector {
	return &metav1.LabelSelector{
		MatchLabels:      map[string]string{LabelCluster: pg.Name},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: LabelRole, Operator: metav1.LabelSelectorOpExists}},
	}
}

// DefaultSpread spreads a cluster's instances over nodes: at most one more
// on any node than on the least loaded one (maxSkew 1), a node failure so
// takes out one instance where there are nodes enough. It is a preference
// (ScheduleAnyway), not a rule: a one-node development cluster, or a
// cluster with fewer nodes than instances, still schedules every instance;
// a user who wants the rule sets spec.topologySpreadConstraints with
// DoNotSchedule (or a required pod anti-affinity in spec.affinity).
func DefaultSpread(pg *v1alpha1.Postgres) []corev1.TopologySpreadConstraint {
	return []corev1.TopologySpreadConstraint{{
		MaxSkew:           1,
		TopologyKey:       HostnameKey,
		WhenUnsatisfiable: corev1.ScheduleAnyway,
		LabelSelector:     instanceSelector(pg),
	}}
}
