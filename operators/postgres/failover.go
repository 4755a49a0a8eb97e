package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// defaultFailoverDelay applies when spec.failoverDelay is unset.
const defaultFailoverDelay = 30 * time.Second

// failover watches the primary. While it answers, nothing happens (unless a
// switchover was asked for: then it is stopped cleanly, which lets its WAL
// senders hand every record to the replicas). Once it is lost for longer than
// spec.failoverDelay, or at once for a switchover, the old primary is fenced
// (its pod deleted), the replica that received the most WAL is promoted, the
// pods are relabelled so the Services follow, and the old primary's volume
// is removed so ScaleReplicas clones a fresh replica in its place.
func (r *PostgresReconciler) failover(ctx context.Context, c *cluster) error {
	primary := c.pg.Status.Primary
	if primary == "" {
		return nil
	}
	target, switchover := c.pg.Annotations[AnnotationSwitchover]
	pod, o := c.pods[primary], c.obs[primary]
	healthy := pod != nil && podReady(pod) && o.Reachable && !o.InRecovery
	if !healthy && pod != nil && podReady(pod) && o.AuthFailed {
		return r.refusedPassword(c, primary)
	}
	if healthy && !switchover {
		setCondition(c.pg, ConditionPrimaryAvailable, metav1.ConditionTrue, "PrimaryReady", primary+" accepts connections")
		return nil
	}
	best := r.chooseTarget(c, target)
	if best == "" {
		if !healthy {
			setCondition(c.pg, ConditionPrimaryAvailable, metav1.ConditionFalse, "PrimaryUnreachable", primary+" does not answer and no replica is ready to take over")
		}
		// Nothing to promote: EnsurePods restores the primary's own pod.
		return nil
	}
	if healthy {
		setCondition(c.pg, ConditionPrimaryAvailable, metav1.ConditionFalse, "Switchover", "stopping "+primary+" to promote "+best)
		if err := r.annotate(ctx, c.pg, AnnotationSwitchoverLSN, o.Current.String()); err != nil {
			return err
		}
		if err := r.Delete(ctx, pod); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("stop primary %s: %w", primary, err)
		}
		return c.wait(PhaseSwitchingOver, "stopping primary %s to promote %s", primary, best)
	}
	setCondition(c.pg, ConditionPrimaryAvailable, metav1.ConditionFalse, "PrimaryUnreachable", primary+" does not answer")
	if !switchover {
		since := meta.FindStatusCondition(c.pg.Status.Conditions, ConditionPrimaryAvailable).LastTransitionTime.Time
		if left := since.Add(failoverDelay(c.pg)).Sub(r.now()); left > 0 {
			c.requeue = min(c.requeue, left+100*time.Millisecond)
			return c.wait(PhaseFailingOver, "primary %s unreachable; failover to %s in %s", primary, best, left.Round(time.Second))
		}
	}
	if pod != nil && !podFailed(pod) {
		// Fence first: the old primary must be gone before another takes
		// writes.
		if err := r.Delete(ctx, pod, client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("fence primary %s: %w", primary, err)
		}
		return c.wait(PhaseFailingOver, "fencing primary %s", primary)
	}
	if switchover {
		if err := r.switchoverCaughtUp(c, best); err != nil {
			return err
		}
	}
	return r.promote(ctx, c, primary, best, switchover)
}

// switchoverCaughtUp holds a switchover's promotion until the chosen replica
// has received the WAL the old primary had written when it was asked to stop
// (its clean shutdown sends the rest). Should no replica get there, for
// example because it lost its connection, the switchover goes on after
// failoverDelay plus 30s, as a failover would.
func (r *PostgresReconciler) switchoverCaughtUp(c *cluster, best string) error {
	need, err := ParseLSN(c.pg.Annotations[AnnotationSwitchoverLSN])
	if err != nil || c.obs[best].Received >= need {
		return nil
	}
	since := meta.FindStatusCondition(c.pg.Status.Conditions, ConditionPrimaryAvailable).LastTransitionTime.Time
	if r.now().Sub(since) > failoverDelay(c.pg)+30*time.Second {
		r.event(c.pg, "SwitchoverBehind", "promoting %s at %s, short of the old primary's %s", best, c.obs[best].Received, need)
		return nil
	}
	c.requeue = min(c.requeue, time.Second)
	return c.wait(PhaseSwitchingOver, "waiting for %s to receive WAL up to %s (has %s)", best, need, c.obs[best].Received)
}

// annotate sets one annotation on the Postgres with a merge patch of its
// own, leaving the object being reconciled (and its status) untouched; a
// nil-valued JSON patch removes it again.
func (r *PostgresReconciler) annotate(ctx context.Context, pg *v1alpha1.Postgres, key, value string) error {
	v, _ := json.Marshal(value)
	patch := []byte(`{"metadata":{"annotations":{"` + key + `":` + string(v) + `}}}`)
	ref := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: pg.Name, Namespace: pg.Namespace}}
	if err := r.Patch(ctx, ref, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("annotate %s %s: %w", pg.Name, key, err)
	}
	return nil
}

// promote makes best the primary and retires the old one.
func (r *PostgresReconciler) promote(ctx context.Context, c *cluster, old, best string, switchover bool) error {
	addr, err := r.resolver()(ctx, c.pg.Namespace, best)
	if err != nil {
		return err
	}
	if err := promote(ctx, addr, c.password); err != nil {
		return err
	}
	c.pg.Status.Primary = best
	if err := r.setRole(ctx, c.pods[best], RolePrimary); err != nil {
		return err
	}
	reason := "FailedOver"
	if switchover {
		reason = "SwitchedOver"
		patch := []byte(`{"metadata":{"annotations":{"` + AnnotationSwitchover + `":null,"` + AnnotationSwitchoverLSN + `":null}}}`)
		ref := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: c.pg.Name, Namespace: c.pg.Namespace}}
		if err := r.Patch(ctx, ref, client.RawPatch(types.MergePatchType, patch)); err != nil {
			return fmt.Errorf("clear switchover request: %w", err)
		}
	}
	setCondition(c.pg, ConditionPrimaryAvailable, metav1.ConditionTrue, reason, best+" promoted")
	r.event(c.pg, reason, "promoted %s in place of %s", best, old)
	_ = r.removeInstance(ctx, c, old, PhaseFailingOver)
	c.requeue = time.Second
	return c.wait(PhaseFailingOver, "promoted %s in place of %s", best, old)
}

// chooseTarget is the replica to promote: the requested one if it is ready,
// else the most advanced ready replica.
func (r *PostgresReconciler) chooseTarget(c *cluster, requested string) string {
	var cands []Candidate
	for _, name := range readyPVCs(c) {
		o, pod := c.obs[name], c.pods[name]
		if name == c.pg.Status.Primary || pod == nil || !podReady(pod) || !o.Reachable || !o.InRecovery {
			continue
		}
		if name == requested {
			return name
		}
		cands = append(cands, Candidate{Name: name, Ready: true, Received: o.Received, Timeline: o.Timeline})
	}
	return ChoosePromotion(cands)
}

func failoverDelay(pg *v1alpha1.Postgres) time.Duration {
	if pg.Spec.FailoverDelay != nil {
		return pg.Spec.FailoverDelay.Duration
	}
	return defaultFailoverDelay
}

// refusedPassword holds the workflow while the primary answers but refuses
// the superuser password: failing over would fence a working primary (and
// the replicas, holding the same roles, refuse it alike). The fix is the
// secret restored, or the primary's pod restarted: `instance run` sets the
// passwords from the secrets it starts with.
func (r *PostgresReconciler) refusedPassword(c *cluster, primary string) error {
	msg := fmt.Sprintf("%s accepts connections but refuses the superuser password in secret %s: restore the secret, or delete pod %s so that it starts with the secrets' passwords",
		primary, SecretName(c.pg.Name, SecretSuperuser), primary)
	if prev := meta.FindStatusCondition(c.pg.Status.Conditions, ConditionPrimaryAvailable); prev == nil || prev.Reason != ReasonAuthenticationFailed {
		r.warn(c.pg, ReasonAuthenticationFailed, "%s", msg)
	}
	setCondition(c.pg, ConditionPrimaryAvailable, metav1.ConditionTrue, ReasonAuthenticationFailed, msg)
	return c.wait(ReasonAuthenticationFailed, "%s", msg)
}
