package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// AnnotationScheduledAt on a scheduled Backup is the schedule time it stands
// for; the newest one is where the schedule continues from.
const AnnotationScheduledAt = "homeostat.dev/scheduled-at"

// parseSchedule reads a five-field cron expression (UTC) or a descriptor
// such as "@daily" or "@every 1h".
func parseSchedule(s string) (cron.Schedule, error) { return cron.ParseStandard(s) }

// NextBackup is when the schedule next asks for a backup after the last one
// it created (or after the cluster's creation), and whether that time has
// come; when several runs were missed, only the newest is due.
func NextBackup(sched cron.Schedule, last, now time.Time) (due time.Time, isDue bool, next time.Time) {
	next = sched.Next(last)
	if next.After(now) {
		return time.Time{}, false, next
	}
	due = next
	for n := sched.Next(due); !n.After(now); n = sched.Next(n) {
		due = n
	}
	return due, true, sched.Next(due)
}

// scheduleBackups creates a Backup when the schedule says one is due and
// asks to be reconciled again when the next one is.
func (r *PostgresReconciler) scheduleBackups(ctx context.Context, c *cluster) error {
	b := c.pg.Spec.Backup
	if b == nil || b.Schedule == "" {
		return nil
	}
	sched, err := parseSchedule(b.Schedule)
	if err != nil {
		return err
	}
	last := c.pg.CreationTimestamp.Time
	for _, bk := range c.backups {
		if t, err := time.Parse(time.RFC3339, bk.Annotations[AnnotationScheduledAt]); err == nil && t.After(last) {
			last = t
		}
	}
	now := r.now()
	due, isDue, next := NextBackup(sched, last, now)
	if isDue {
		bk := &v1alpha1.Backup{
			ObjectMeta: metav1.ObjectMeta{
				Name:        fmt.Sprintf("%s-%s", c.pg.Name, due.UTC().Format("20060102-150405")),
				Namespace:   c.pg.Namespace,
				Labels:      withLabels(commonLabels(c.pg), LabelScheduled, "true"),
				Annotations: map[string]string{AnnotationScheduledAt: due.UTC().Format(time.RFC3339)},
			},
			Spec: v1alpha1.BackupSpec{Cluster: v1alpha1.LocalObjectReference{Name: c.pg.Name}},
		}
		if err := r.createOwned(ctx, c.pg, bk); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		r.event(c.pg, "BackupScheduled", "created backup %s", bk.Name)
	}
	c.nextBackup = next
	return nil
}
