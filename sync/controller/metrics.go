package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	hsync "homeostat.dev/homeostat/sync"
)

// Prometheus metrics, served by the manager's metrics endpoint.
var (
	syncDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "homeostat_sync_duration_seconds",
		Help:    "Duration of one sync (fetch, render, apply, prune, wait), by result.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, []string{"namespace", "name", "result"})
	objectsApplied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "homeostat_sync_objects_total",
		Help: "Objects a sync created, configured, pruned or failed on, by action.",
	}, []string{"namespace", "name", "action"})
	syncFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "homeostat_sync_failures_total",
		Help: "Failed syncs, by condition reason.",
	}, []string{"namespace", "name", "reason"})
)

func init() {
	metrics.Registry.MustRegister(syncDuration, objectsApplied, syncFailures)
}

// record adds one sync's Outcome to the metrics.
func record(ns, name string, o Outcome) {
	result := "success"
	if o.Err != nil {
		result = "failure"
		syncFailures.WithLabelValues(ns, name, o.Reason).Inc()
	}
	if o.Timings.StartedAt != nil && o.Timings.FinishedAt != nil {
		syncDuration.WithLabelValues(ns, name, result).Observe(o.Timings.FinishedAt.Sub(o.Timings.StartedAt.Time).Seconds())
	}
	for _, a := range []hsync.Action{hsync.Created, hsync.Configured, hsync.Pruned, hsync.Failed} {
		if n := o.Changes.Count(a); n > 0 {
			objectsApplied.WithLabelValues(ns, name, string(a)).Add(float64(n))
		}
	}
}
