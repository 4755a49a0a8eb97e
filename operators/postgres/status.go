package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// stalled is a configuration problem a human must fix; its reason is the
// Stalled condition's.
type stalled struct {
	reason string
	err    error
}

func (s *stalled) Error() string { return s.err.Error() }
func (s *stalled) Unwrap() error { return s.err }

// finalizeStatus writes what this reconcile observed and decided: the
// instances, the backups, the phase and the conditions.
func (r *PostgresReconciler) finalizeStatus(c *cluster, err error) {
	pg := c.pg
	pg.Status.ObservedGeneration = pg.Generation
	if c.obs != nil {
		pg.Status.Instances, pg.Status.ReadyInstances = instanceStatuses(c)
		markOutdated(pg.Status.Instances, c, SpecHash(pg, r.Options))
	}
	if c.backups != nil {
		pg.Status.LastBackup, pg.Status.FirstRecoverabilityPoint = backupTimes(c.backups)
	}
	if !c.nextBackup.IsZero() {
		if d := c.nextBackup.Sub(r.now()); d > 0 && d < c.requeue {
			c.requeue = d + 100*time.Millisecond
		}
	}
	var st *stalled
	switch {
	case errors.As(err, &st) || (err != nil && isTerminal(err)):
		reason := "InvalidSpec"
		if st != nil {
			reason = st.reason
		}
		pg.Status.Phase = PhaseStalled
		setCondition(pg, v1alpha1.ConditionStalled, metav1.ConditionTrue, reason, err.Error())
		setCondition(pg, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, err.Error())
		setCondition(pg, v1alpha1.ConditionReconciling, metav1.ConditionFalse, reason, "waiting for the spec or the secret to change")
	case err != nil:
		pg.Status.Phase = nonEmpty(c.phase, pg.Status.Phase)
		setCondition(pg, v1alpha1.ConditionStalled, metav1.ConditionFalse, "ReconcileError", "retrying")
		setCondition(pg, v1alpha1.ConditionReady, metav1.ConditionFalse, "ReconcileError", err.Error())
		setCondition(pg, v1alpha1.ConditionReconciling, metav1.ConditionTrue, "ReconcileError", err.Error())
	case c.phase == PhaseHealthy:
		pg.Status.Phase = PhaseHealthy
		msg := fmt.Sprintf("%d instances ready, primary %s", pg.Status.ReadyInstances, pg.Status.Primary)
		setCondition(pg, v1alpha1.ConditionStalled, metav1.ConditionFalse, "ReconciliationSucceeded", msg)
		setCondition(pg, v1alpha1.ConditionReady, metav1.ConditionTrue, "ReconciliationSucceeded", msg)
		setCondition(pg, v1alpha1.ConditionReconciling, metav1.ConditionFalse, "ReconciliationSucceeded", msg)
	default:
		pg.Status.Phase = c.phase
		setCondition(pg, v1alpha1.ConditionStalled, metav1.ConditionFalse, c.phase, c.message)
		setCondition(pg, v1alpha1.ConditionReady, metav1.ConditionFalse, c.phase, c.message)
		setCondition(pg, v1alpha1.ConditionReconciling, metav1.ConditionTrue, c.phase, c.message)
	}
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// instanceStatuses reports every instance with a filled volume: role from
// the pod label, readiness and positions from the instance itself, lag
// against the primary's current WAL position.
func instanceStatuses(c *cluster) ([]v1alpha1.InstanceStatus, int32) {
	primaryLSN := c.obs[c.pg.Status.Primary].Current
	var out []v1alpha1.InstanceStatus
	var n int32
	for _, name := range readyPVCs(c) {
		o := c.obs[name]
		s := v1alpha1.InstanceStatus{Name: name, Role: RoleReplica, Ready: instanceReady(c, name), Timeline: o.Timeline}
		if name == c.pg.Status.Primary {
			s.Role = RolePrimary
		}
		if s.Ready {
			n++
		}
		if d := o.Disk; d != nil {
			s.DataBytes, s.VolumeFreeBytes = d.DataBytes, &d.VolumeFreeBytes
		}
		if o.Reachable {
			s.LSN = o.Current.String()
			if s.Role == RoleReplica && primaryLSN > o.Current {
				s.LagBytes = int64(primaryLSN - o.Current)
			}
		}
		out = append(out, s)
	}
	return out, n
}

// backupsOf lists the Backups of a cluster (scheduled or made by hand).
func (r *PostgresReconciler) backupsOf(ctx context.Context, pg *v1alpha1.Postgres) ([]v1alpha1.Backup, error) {
	return ListBackups(ctx, r.Client, pg)
}

// ListBackups lists the Backup objects of pg, oldest first: what the
// operator counts for retention and `homeostat pg status` prints.
func ListBackups(ctx context.Context, c client.Reader, pg *v1alpha1.Postgres) ([]v1alpha1.Backup, error) {
	var l v1alpha1.BackupList
	if err := c.List(ctx, &l, client.InNamespace(pg.Namespace)); err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	var out []v1alpha1.Backup
	for _, b := range l.Items {
		if b.Spec.Cluster.Name == pg.Name {
			out = append(out, b)
		}
	}
	// Oldest first; creation times have one-second resolution, so names
	// (timestamped for scheduled Backups) break ties.
	sort.Slice(out, func(i, j int) bool {
		ti, tj := out[i].CreationTimestamp, out[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// backupTimes are the newest completed backup's end (lastBackup) and the
// oldest's (firstRecoverabilityPoint: a restore can target any time after a
// retained backup became consistent).
func backupTimes(backups []v1alpha1.Backup) (last, first *metav1.Time) {
	for i := range backups {
		b := &backups[i]
		if b.Status.Phase != v1alpha1.BackupCompleted || b.Status.StoppedAt == nil {
			continue
		}
		if last == nil || b.Status.StoppedAt.After(last.Time) {
			last = b.Status.StoppedAt.DeepCopy()
		}
		if first == nil || b.Status.StoppedAt.Before(first) {
			first = b.Status.StoppedAt.DeepCopy()
		}
	}
	return last, first
}
