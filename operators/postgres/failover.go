package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/operators/instance"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// defaultFailoverDelay applies when spec.failoverDelay is unset.
const defaultFailoverDelay = 30 * time.Second

// ReasonFailoverUnsafe is the phase, Ready reason and warning event of a
// cluster that will not promote on its own: no reachable replica is sure to
// hold every acknowledged commit, or a switchover's target is behind.
// `homeostat pg promote NAME --force` decides.
const ReasonFailoverUnsafe = "FailoverUnsafe"

// failover watches the primary. While it answers, nothing happens (unless a
// switchover or a forced promotion was asked for: then it is stopped
// cleanly, which lets its WAL senders hand every record to the replicas).
// Once it is lost for longer than spec.failoverDelay, or at once for a
// switchover, the old primary is fenced, the replica on the newest timeline
// with the most WAL is made synchronous and promoted, and the pods are
// relabelled so the Services follow. The old primary keeps its volume: its
// pod comes back as a replica and rejoins (instance run rewinds it).
func (r *PostgresReconciler) failover(ctx context.Context, c *cluster) error {
	primary := c.pg.Status.Primary
	if primary == "" {
		return nil
	}
	target, switchover := c.pg.Annotations[AnnotationSwitchover]
	forced, force := c.pg.Annotations[AnnotationForcePromote]
	if force {
		target = forced
	}
	if switchover || force {
		if err := r.requestStillOpen(ctx, c); err != nil {
			return err
		}
	}
	pod, o := c.pods[primary], c.obs[primary]
	healthy := pod != nil && podRunning(pod) && o.Reachable && !o.InRecovery
	if settled, err := r.primarySettled(ctx, c, o, healthy, switchover || force); settled {
		return err
	}
	if held, err := r.plannedRestart(ctx, c, healthy || switchover || force); held {
		return err
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
		return r.stopForSwitchover(ctx, c, primary, best)
	}
	setCondition(c.pg, ConditionPrimaryAvailable, metav1.ConditionFalse, "PrimaryUnreachable", primary+" does not answer")
	if !switchover && !force {
		if err := r.failoverDue(c, pod, best); err != nil {
			return err
		}
	}
	if err := r.fence(ctx, c, pod, switchover); err != nil {
		return err
	}
	if !force {
		if err := r.safeToPromote(c, best, switchover); err != nil {
			return err
		}
	}
	return r.promote(ctx, c, primary, best, switchover || force)
}

// primarySettled handles the states of the primary in which nothing is to
// be chosen: a promotion recorded but not carried out (finished), a primary
// that refuses the operator's password (alive: no failover), and a healthy
// primary nobody asked to move. requested is a switchover or a forced
// promotion.
func (r *PostgresReconciler) primarySettled(ctx context.Context, c *cluster, o Observation, healthy, requested bool) (bool, error) {
	primary := c.pg.Status.Primary
	pod := c.pods[primary]
	up := pod != nil && podRunning(pod) && o.Reachable
	switch {
	case up && o.InRecovery && c.pg.Status.Phase == PhaseFailingOver:
		return true, r.promote(ctx, c, primary, primary, requested)
	case !healthy && pod != nil && podRunning(pod) && o.AuthFailed:
		return true, r.refusedPassword(c, primary)
	case healthy && !requested:
		setCondition(c.pg, ConditionPrimaryAvailable, metav1.ConditionTrue, "PrimaryReady", primary+" accepts connections")
		return true, nil
	}
	return false, nil
}

// failoverDue holds a failover until it is safe in time. A primary whose
// pod has ended (the kubelet saw its process die) is promoted away from
// after failoverDelay. One whose state is unknown (pod still running, but
// unreachable: a partition, or only the operator cut off) may still take
// writes, so the operator waits until its heartbeat and the operator's own
// observations have been silent for fenceWait: by then its instance
// manager has shut it down unless it still reaches the API server (then
// its heartbeat goes on and no failover happens) or a replica (which then
// is not a candidate's rival: see docs/postgres.md).
func (r *PostgresReconciler) failoverDue(c *cluster, pod *corev1.Pod, best string) error {
	primary := c.pg.Status.Primary
	since := meta.FindStatusCondition(c.pg.Status.Conditions, ConditionPrimaryAvailable).LastTransitionTime.Time
	due := since.Add(failoverDelay(c.pg))
	why := "unreachable"
	if pod != nil && !podFailed(pod) {
		due = r.lastSeen(c.pg.Namespace, primary).Add(fenceWait(c.pg))
		why = "unreachable but its pod runs; waiting for it to fence itself"
	}
	if left := due.Sub(r.now()); left > 0 {
		c.requeue = min(c.requeue, left+100*time.Millisecond)
		return c.wait(PhaseFailingOver, "primary %s %s; failover to %s in %s", primary, why, best, left.Round(time.Second))
	}
	return nil
}

// fenceWait is how long a primary whose fate is unknown must have been
// silent before a replica is promoted: its fencing bound (failoverDelay,
// given to `instance run --fence-after`), plus two of its check intervals
// (the last check may run just under a bound late, and the shutdown takes
// a moment), plus a second for the operator's own observation.
func fenceWait(pg *v1alpha1.Postgres) time.Duration {
	f := failoverDelay(pg)
	return f + 2*instance.CheckInterval(f) + time.Second
}

// stopForSwitchover asks the healthy primary to stop (a clean, fast
// shutdown hands every WAL record to the replicas) and records how far it
// had written, which the promoted replica must have received.
func (r *PostgresReconciler) stopForSwitchover(ctx context.Context, c *cluster, primary, best string) error {
	setCondition(c.pg, ConditionPrimaryAvailable, metav1.ConditionFalse, "Switchover", "stopping "+primary+" to promote "+best)
	if err := r.annotate(ctx, c.pg, AnnotationSwitchoverLSN, c.obs[primary].Current.String()); err != nil {
		return err
	}
	if err := r.Delete(ctx, c.pods[primary]); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("stop primary %s: %w", primary, err)
	}
	c.requeue = min(c.requeue, time.Second)
	return c.wait(PhaseSwitchingOver, "stopping primary %s to promote %s", primary, best)
}

// requestStillOpen reads the Postgres past the cache before a switchover
// or forced promotion goes on: a reconcile woken by a promotion's own pod
// relabel can see the switchover request that promotion has just cleared
// (and stop the new primary too), or the old primary in status (and
// promote a second replica).
func (r *PostgresReconciler) requestStillOpen(ctx context.Context, c *cluster) error {
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	live := &v1alpha1.Postgres{}
	if err := reader.Get(ctx, client.ObjectKeyFromObject(c.pg), live); err != nil {
		return fmt.Errorf("read %s: %w", c.pg.Name, err)
	}
	_, switchover := live.Annotations[AnnotationSwitchover]
	_, force := live.Annotations[AnnotationForcePromote]
	if (switchover || force) && live.Status.Primary == c.pg.Status.Primary {
		return nil
	}
	c.requeue = min(c.requeue, time.Second)
	return c.wait(PhaseSwitchingOver, "switchover request already carried out (primary %s); waiting for the cache", live.Status.Primary)
}

// fence makes sure a switchover's old primary has shut down cleanly before
// another takes writes. A failover's old primary is not deleted: deleting
// the pod of a node that is cut off stops nothing there; its own instance
// manager fences it (failoverDue waited for that).
func (r *PostgresReconciler) fence(_ context.Context, c *cluster, pod *corev1.Pod, switchover bool) error {
	if pod == nil || podFailed(pod) || !switchover || pod.DeletionTimestamp.IsZero() {
		return nil
	}
	c.requeue = min(c.requeue, time.Second)
	return c.wait(PhaseSwitchingOver, "waiting for primary %s to shut down", pod.Name)
}

// safeToPromote holds a promotion that could lose acknowledged commits: a
// failover when too few replicas answer (FailoverSafe), a switchover whose
// target has not received what the old primary wrote.
func (r *PostgresReconciler) safeToPromote(c *cluster, best string, switchover bool) error {
	if switchover {
		return r.switchoverCaughtUp(c, best)
	}
	var replicas []string
	reachable := map[string]bool{}
	for _, name := range readyPVCs(c) {
		if name == c.pg.Status.Primary {
			continue
		}
		replicas = append(replicas, name)
		o, pod := c.obs[name], c.pods[name]
		reachable[name] = pod != nil && podRunning(pod) && o.Reachable && o.InRecovery
	}
	if ok, why := FailoverSafe(int(c.pg.Spec.Synchronous), replicas, reachable); !ok {
		return r.unsafe(c, "primary %s lost and no automatic failover: %s; `homeostat pg promote %s --force` promotes %s anyway",
			c.pg.Status.Primary, why, c.pg.Name, best)
	}
	return nil
}

// unsafe reports FailoverUnsafe (once as a warning event) and holds the
// workflow until a human decides or the missing replicas come back.
func (r *PostgresReconciler) unsafe(c *cluster, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if c.pg.Status.Phase != ReasonFailoverUnsafe {
		r.warn(c.pg, ReasonFailoverUnsafe, "%s", msg)
	}
	return c.wait(ReasonFailoverUnsafe, "%s", msg)
}

// switchoverCaughtUp holds a switchover's promotion until the chosen replica
// has received the WAL the old primary had written when it was asked to stop
// (its clean shutdown sends the rest). Should it not get there within
// failoverDelay plus 30s, for example because it lost its connection, the
// switchover stops as FailoverUnsafe: promoting it could lose commits.
func (r *PostgresReconciler) switchoverCaughtUp(c *cluster, best string) error {
	need, err := ParseLSN(c.pg.Annotations[AnnotationSwitchoverLSN])
	if err != nil || c.obs[best].Received >= need {
		return nil
	}
	since := meta.FindStatusCondition(c.pg.Status.Conditions, ConditionPrimaryAvailable).LastTransitionTime.Time
	if r.now().Sub(since) > failoverDelay(c.pg)+30*time.Second {
		return r.unsafe(c, "switchover target %s has received WAL up to %s, short of the old primary's %s; `homeostat pg promote %s --force` promotes it anyway",
			best, c.obs[best].Received, need, c.pg.Name)
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

// promote makes best the primary, synchronous before it takes a write: its
// slots for the other members and synchronous_standby_names (ANY k of them)
// are set while it is still a standby, then it is promoted, and only then
// relabelled so that NAME-rw points at it. The old primary keeps its volume
// and rejoins as a replica.
func (r *PostgresReconciler) promote(ctx context.Context, c *cluster, old, best string, requested bool) error {
	addr, err := r.resolver()(ctx, c.pg.Namespace, best)
	if err != nil {
		return err
	}
	var others []string
	for _, name := range readyPVCs(c) {
		if name != best {
			others = append(others, name)
		}
	}
	if err := syncStandbySlots(ctx, addr, c.login(best), instance.SlotName(c.pg.Name+"-"), memberPositions(c, best)); err != nil {
		return err
	}
	names := SynchronousStandbyNames(int(c.pg.Spec.Synchronous), others)
	if err := setSyncStandbyNames(ctx, addr, c.login(best), names); err != nil {
		return err
	}
	// The decision is recorded before it is carried out: the promoted
	// instance's manager must find itself named, or it fences itself as
	// deposed; should the promotion fail, the next reconcile finishes it.
	if err := r.recordPrimary(ctx, c, best); err != nil {
		return err
	}
	if err := promote(ctx, addr, c.login(best)); err != nil {
		return err
	}
	if err := r.setRole(ctx, c.pods[best], RolePrimary); err != nil {
		return err
	}
	reason := "FailedOver"
	if requested {
		reason = "SwitchedOver"
	}
	patch := []byte(`{"metadata":{"annotations":{"` + AnnotationSwitchover + `":null,"` + AnnotationSwitchoverLSN + `":null,"` + AnnotationForcePromote + `":null}}}`)
	ref := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: c.pg.Name, Namespace: c.pg.Namespace}}
	if err := r.Patch(ctx, ref, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("clear switchover request: %w", err)
	}
	setCondition(c.pg, ConditionPrimaryAvailable, metav1.ConditionTrue, reason, best+" promoted")
	r.event(c.pg, reason, "promoted %s in place of %s, synchronous_standby_names = %q; %s rejoins as a replica", best, old, names, old)
	c.requeue = time.Second
	return c.wait(PhaseFailingOver, "promoted %s in place of %s", best, old)
}

// recordPrimary writes status.primary at once, ahead of the status patch
// that ends the reconcile.
func (r *PostgresReconciler) recordPrimary(ctx context.Context, c *cluster, name string) error {
	patch := []byte(`{"status":{"primary":"` + name + `"}}`)
	ref := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: c.pg.Name, Namespace: c.pg.Namespace}}
	if err := r.Status().Patch(ctx, ref, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("record %s as primary: %w", name, err)
	}
	c.pg.Status.Primary = name
	return nil
}

// chooseTarget is the replica to promote: the requested one if it is ready,
// else the most advanced ready replica.
func (r *PostgresReconciler) chooseTarget(c *cluster, requested string) string {
	var cands []Candidate
	for _, name := range readyPVCs(c) {
		o, pod := c.obs[name], c.pods[name]
		if name == c.pg.Status.Primary || pod == nil || !podRunning(pod) || !o.Reachable || !o.InRecovery {
			continue
		}
		if name == requested {
			return name
		}
		cands = append(cands, Candidate{Name: name, Ready: true, Received: o.Received, Timeline: max(o.Timeline, lastTimeline(c.pg, name))})
	}
	return ChoosePromotion(cands)
}

// lastTimeline is the timeline an instance reported in the last status: a
// replica whose WAL receiver stopped may report an older one than it follows.
func lastTimeline(pg *v1alpha1.Postgres, name string) int64 {
	for _, s := range pg.Status.Instances {
		if s.Name == name {
			return s.Timeline
		}
	}
	return 0
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
