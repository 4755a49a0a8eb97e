package postgres

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// TestInstancePodsSpreadOverNodesUnlessTheSpecSaysOtherwise: by default a
// soft spread over hostnames that selects only the cluster's instance
// pods; spec.affinity is passed through, spec.topologySpreadConstraints
// replace the default.
func TestInstancePodsSpreadOverNodesUnlessTheSpecSaysOtherwise(t *testing.T) {
	zone := corev1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.DoNotSchedule,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelCluster: "db"}}}
	ssd := &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"ssd"}}}}}}}}
	for _, tc := range []struct {
		name     string
		mutate   func(*v1alpha1.PostgresSpec)
		affinity *corev1.Affinity
		keys     []string
		when     corev1.UnsatisfiableConstraintAction
	}{
		{"default", func(*v1alpha1.PostgresSpec) {}, nil, []string{HostnameKey}, corev1.ScheduleAnyway},
		{"affinity kept beside the default spread", func(s *v1alpha1.PostgresSpec) { s.Affinity = ssd }, ssd, []string{HostnameKey}, corev1.ScheduleAnyway},
		{"own constraints replace the default", func(s *v1alpha1.PostgresSpec) {
			s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{zone}
		}, nil, []string{"topology.kubernetes.io/zone"}, corev1.DoNotSchedule},
	} {
		pg := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "web"}, Spec: v1alpha1.PostgresSpec{Instances: 3}}
		tc.mutate(&pg.Spec)
		pod := InstancePod(pg, "db-2", RoleReplica, Options{})
		if !reflect.DeepEqual(pod.Spec.Affinity, tc.affinity) {
			t.Errorf("%s: affinity %+v, want %+v", tc.name, pod.Spec.Affinity, tc.affinity)
		}
		var keys []string
		for _, c := range pod.Spec.TopologySpreadConstraints {
			keys = append(keys, c.TopologyKey)
			if c.WhenUnsatisfiable != tc.when || c.MaxSkew != 1 {
				t.Errorf("%s: constraint %+v", tc.name, c)
			}
		}
		if !reflect.DeepEqual(keys, tc.keys) {
			t.Errorf("%s: spread over %v, want %v", tc.name, keys, tc.keys)
		}
	}
	// The default counts instance pods, not the pods of the cluster's Jobs.
	pg := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "web"}, Spec: v1alpha1.PostgresSpec{Instances: 3}}
	sel, err := metav1.LabelSelectorAsSelector(DefaultSpread(pg)[0].LabelSelector)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(InstancePod(pg, "db-1", RolePrimary, Options{}).Labels)) {
		t.Error("the default spread does not count the instance pods")
	}
	if sel.Matches(labels.Set(JoinJob(pg, "db-2", Options{}).Spec.Template.Labels)) {
		t.Error("the default spread counts a join Job's pod")
	}
}

// TestDisruptionBudgets: replicas may go one at a time, the primary not at
// all, each selected by role; one instance gets none.
func TestDisruptionBudgets(t *testing.T) {
	pg := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "web"}, Spec: v1alpha1.PostgresSpec{Instances: 1}}
	if got := DisruptionBudgets(pg); got != nil {
		t.Errorf("one instance: %d budgets, want none", len(got))
	}
	pg.Spec.Instances = 3
	got := DisruptionBudgets(pg)
	if len(got) != 2 {
		t.Fatalf("%d budgets, want 2", len(got))
	}
	for i, want := range []struct {
		name, role  string
		unavailable int
	}{{"db-primary", RolePrimary, 0}, {"db-replicas", RoleReplica, 1}} {
		b := got[i]
		if b.Name != want.name || b.Spec.MaxUnavailable.IntValue() != want.unavailable || b.Spec.MinAvailable != nil ||
			!reflect.DeepEqual(b.Spec.Selector.MatchLabels, map[string]string{LabelCluster: "db", LabelRole: want.role}) {
			t.Errorf("budget %d = %s %+v, want %s maxUnavailable %d for role %s", i, b.Name, b.Spec, want.name, want.unavailable, want.role)
		}
	}
}
