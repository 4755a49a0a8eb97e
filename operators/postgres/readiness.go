package postgres

import (
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"

	corev1 "k8s.io/api/core/v1"

	"homeostat.dev/homeostat/operators/instance"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// healthPort is where an instance manager serves GET /readyz.
const healthPort = 8000

// readinessProbe asks the instance manager whether its server does its
// job (instance run --health-addr): a primary that accepts writes, a
// replica that streams from the current primary within the lag bound. A
// TCP dial would call a replica ready that streams from nobody, and a
// primary ready that cannot take a write. Generous timeouts: a probe that
// times out on a busy node must not empty the Services.
func readinessProbe() *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("health")}},
		PeriodSeconds:    2,
		TimeoutSeconds:   5,
		FailureThreshold: 3,
	}
}

// maxLag is spec.probes.readiness.maximumLag in bytes, for --max-lag (the
// instance manager's default when unset).
func maxLag(pg *v1alpha1.Postgres) string {
	if p := pg.Spec.Probes; p != nil && p.Readiness != nil && p.Readiness.MaximumLag != "" {
		if q, err := resource.ParseQuantity(p.Readiness.MaximumLag); err == nil {
			return q.String()
		}
	}
	return resource.NewQuantity(instance.DefaultMaxLag, resource.BinarySI).String()
}
