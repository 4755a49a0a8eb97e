package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// AnnotationSpecHash on an instance's pod is SpecHash of the spec the pod
// was made from; a pod whose hash differs from the current one is replaced
// by the rolling update.
const AnnotationSpecHash = "homeostat.dev/spec-hash"

// Phases of a rolling update, in status.phase.
const (
	// PhaseRollingUpdate: instances are outdated and being replaced, one at
	// a time, replicas first.
	PhaseRollingUpdate = "RollingUpdate"
	// PhaseWaitingForSwitchover: every replica is updated and the primary
	// is outdated, but spec.primaryUpdateStrategy is supervised: `homeostat
	// pg switchover` finishes the rollout.
	PhaseWaitingForSwitchover = "WaitingForSwitchover"
)

// Values of spec.primaryUpdateStrategy.
const (
	PrimaryUpdateUnsupervised = "unsupervised"
	PrimaryUpdateSupervised   = "supervised"
)

// outdatedTemplate is the Outdated reason of a pod made from another spec.
const outdatedTemplate = "pod template"

// restartSettings are the settings PostgreSQL reads only at server start
// (pg_settings.context = 'postmaster') in the versions homeostat runs (15
// to 17): a change to one in spec.parameters changes SpecHash, so the
// rolling update begins in the same reconcile that sees the new spec (a
// Sync's health wait never sees the cluster Ready in between). Settings of
// extensions (pg_stat_statements.max) are not known here; their change is
// caught by pg_settings.pending_restart once the reload has happened.
var restartSettings = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`archive_mode autovacuum_freeze_max_age autovacuum_max_workers
		autovacuum_multixact_freeze_max_age bonjour bonjour_name cluster_name commit_timestamp_buffers config_file data_directory
		data_sync_retry debug_io_direct dynamic_shared_memory_type event_source external_pid_file hba_file hot_standby
		huge_page_size huge_pages ident_file ignore_invalid_pages jit_provider listen_addresses logging_collector max_connections
		max_files_per_process max_locks_per_transaction max_logical_replication_workers max_notify_queue_pages
		max_pred_locks_per_transaction max_prepared_transactions max_replication_slots max_wal_senders
		max_worker_processes min_dynamic_shared_memory multixact_member_buffers multixact_offset_buffers notify_buffers
		old_snapshot_threshold port recovery_target recovery_target_action recovery_target_inclusive
		recovery_target_lsn recovery_target_name recovery_target_time recovery_target_timeline recovery_target_xid
		reserved_connections serializable_buffers shared_buffers shared_memory_type shared_preload_libraries
		subtransaction_buffers superuser_reserved_connections track_activity_query_size track_commit_timestamp
		transaction_buffers unix_socket_directories unix_socket_group unix_socket_permissions wal_buffers
		wal_decode_buffer_size wal_level wal_log_hints`) {
		restartSettings[k] = true
	}
}

// SpecHash is what an instance's pod is made from, hashed: the rendered
// pod (InstancePod, so whatever the pod template gains is covered without a
// list to keep up) without what differs from one instance to the next (its
// name, its role, its volume), plus spec.parameters that take effect only
// at a restart. Two pods with the same hash run the same thing.
func SpecHash(pg *v1alpha1.Postgres, o Options) string {
	// Every instance renders the same with the same placeholder name and
	// role; labels and annotations go in too, minus the identity labels.
	pod := InstancePod(pg, "instance", RoleReplica, o)
	labels := withLabels(pod.Labels)
	delete(labels, LabelInstance)
	delete(labels, LabelRole)
	restart := map[string]string{}
	for k, v := range lowerKeys(pg.Spec.Parameters) {
		if restartSettings[k] {
			restart[k] = v
		}
	}
	// encoding/json sorts map keys: the same input always hashes the same.
	b, err := json.Marshal(struct {
		Labels, Annotations, Restart map[string]string
		Spec                         any
	}{labels, pod.Annotations, restart, pod.Spec})
	if err != nil {
		// A pod spec always marshals; should it not, every pod counts as
		// current rather than being replaced in a loop.
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// outdatedReason says why an instance must be replaced: its pod was made
// from another spec, or its server waits for a restart to apply settings.
// Empty when it is current (or has no pod to judge).
func outdatedReason(c *cluster, name, want string) string {
	pod := c.pods[name]
	if pod == nil || !pod.DeletionTimestamp.IsZero() {
		return ""
	}
	if pod.Annotations[AnnotationSpecHash] != want {
		return outdatedTemplate
	}
	if p := c.obs[name].PendingRestart; len(p) > 0 {
		return "pending restart: " + strings.Join(p, ",")
	}
	return ""
}

// outdatedInstances are the instances to replace, with the reason for each.
func outdatedInstances(c *cluster, want string) map[string]string {
	out := map[string]string{}
	for _, name := range readyPVCs(c) {
		if why := outdatedReason(c, name, want); why != "" {
			out[name] = why
		}
	}
	return out
}

// markOutdated fills status.instances[].outdated.
func markOutdated(statuses []v1alpha1.InstanceStatus, c *cluster, want string) {
	for i := range statuses {
		statuses[i].Outdated = outdatedReason(c, statuses[i].Name, want)
	}
}

// rolloutAction is what the rolling update does next.
type rolloutAction int

const (
	rolloutDone           rolloutAction = iota
	rolloutWait                         // an instance is not ready yet
	rolloutReplace                      // delete the pod of target; EnsurePods makes it anew
	rolloutSwitchover                   // ask for a switchover to target
	rolloutSupervised                   // wait for `homeostat pg switchover`
	rolloutRestartPrimary               // restart the primary in place, before the replicas
)

// rolloutStep is the next move of a rolling update and the instance it
// concerns.
type rolloutStep struct {
	action rolloutAction
	target string
}

// rolloutView is what planRollout decides from: the instances in serial
// order, which are ready, which outdated.
type rolloutView struct {
	primary    string
	members    []string
	ready      map[string]bool
	outdated   map[string]string
	supervised bool
	// advanced is the up-to-date replica to switch over to.
	advanced string
	// lowered are the hot-standby settings the spec lowers: the primary
	// goes first, restarted in place.
	lowered []string
}

// planRollout is the rolling update's decision, CloudNativePG's order:
// replicas one at a time, each ready (streaming) again before the next;
// then the primary, by a switchover to an updated replica (or, alone, by a
// restart). An outdated replica that is not ready is replaced at once: it
// serves nothing, and a pod made from a broken spec only gets better from
// a new one (while the primary is ready: a replica waiting for its
// primary is not broken).
//
// Lowering a hot-standby setting reverses the order (CloudNativePG does
// the same): a standby with a lower value than its primary's does not
// start, so the outdated primary is restarted first, in place, and the
// replicas follow.
func planRollout(v rolloutView) rolloutStep {
	if len(v.outdated) == 0 {
		return rolloutStep{action: rolloutDone}
	}
	if len(v.lowered) > 0 && v.outdated[v.primary] != "" {
		if !v.ready[v.primary] {
			return rolloutStep{rolloutWait, v.primary}
		}
		return rolloutStep{rolloutRestartPrimary, v.primary}
	}
	for _, m := range v.members {
		if v.ready[v.primary] && m != v.primary && v.outdated[m] != "" && !v.ready[m] {
			return rolloutStep{rolloutReplace, m}
		}
	}
	for _, m := range v.members {
		if !v.ready[m] {
			return rolloutStep{rolloutWait, m}
		}
	}
	for _, m := range v.members {
		if m != v.primary && v.outdated[m] != "" {
			return rolloutStep{rolloutReplace, m}
		}
	}
	switch {
	case len(v.members) == 1:
		return rolloutStep{rolloutReplace, v.primary}
	case v.supervised:
		return rolloutStep{rolloutSupervised, v.primary}
	case v.advanced == "":
		return rolloutStep{rolloutWait, v.primary}
	}
	return rolloutStep{rolloutSwitchover, v.advanced}
}

// rollingUpdate replaces the instances whose pods are outdated (see
// planRollout). It runs last, so it only moves a cluster the other steps
// found settled, and the cluster is never Healthy (Ready) while an
// instance is outdated.
func (r *PostgresReconciler) rollingUpdate(ctx context.Context, c *cluster) error {
	v := r.rolloutView(c)
	if len(v.outdated) > 0 {
		if cond := meta.FindStatusCondition(c.pg.Status.Conditions, ConditionParametersApplied); cond != nil && cond.Reason == "ParametersRefused" {
			return c.wait(PhaseRollingUpdate, "rolling update held until spec.parameters are fixed: %s", cond.Message)
		}
	}
	step := planRollout(v)
	left := describeOutdated(v)
	switch step.action {
	case rolloutDone:
		return nil
	case rolloutWait:
		return c.wait(PhaseRollingUpdate, "waiting for %s to be ready; outdated: %s", step.target, left)
	case rolloutReplace:
		return r.replacePod(ctx, c, step.target, v.outdated[step.target], left)
	case rolloutRestartPrimary:
		return r.restartPrimary(ctx, c, v, left)
	case rolloutSupervised:
		return c.wait(PhaseWaitingForSwitchover, "every replica is updated; primary %s is outdated (%s) and waits for `homeostat pg switchover %s -n %s` (spec.primaryUpdateStrategy: supervised)",
			step.target, v.outdated[step.target], c.pg.Name, c.pg.Namespace)
	}
	primary := c.pg.Status.Primary
	if err := r.annotate(ctx, c.pg, AnnotationSwitchover, step.target); err != nil {
		return err
	}
	r.event(c.pg, "RollingUpdate", "switching over from outdated primary %s (%s) to updated replica %s", primary, v.outdated[primary], step.target)
	c.requeue = min(c.requeue, time.Second)
	return c.wait(PhaseRollingUpdate, "switching over from %s to updated replica %s; outdated: %s", primary, step.target, left)
}

// rolloutView reads the cluster for planRollout.
func (r *PostgresReconciler) rolloutView(c *cluster) rolloutView {
	v := rolloutView{primary: c.pg.Status.Primary, members: readyPVCs(c), ready: map[string]bool{},
		outdated: outdatedInstances(c, SpecHash(c.pg, r.Options)), supervised: c.pg.Spec.PrimaryUpdateStrategy == PrimaryUpdateSupervised}
	var cands []Candidate
	for _, m := range v.members {
		pod := c.pods[m]
		v.ready[m] = pod != nil && podReady(pod) && instanceReady(c, m)
		if m != v.primary && v.ready[m] && v.outdated[m] == "" {
			o := c.obs[m]
			cands = append(cands, Candidate{Name: m, Ready: true, Received: o.Received, Timeline: o.Timeline})
		}
	}
	v.advanced = ChoosePromotion(cands)
	v.lowered = loweredHotStandby(c.pg.Spec.Parameters, c.obs[v.primary].HotStandby)
	return v
}

// replacePod deletes an outdated instance's pod; EnsurePods creates it
// anew from the current spec, on the same volume (a restart, not a clone).
func (r *PostgresReconciler) replacePod(ctx context.Context, c *cluster, name, why, left string) error {
	// Only the pod judged outdated: from a lagging cache, the name may be
	// its replacement's already.
	pod := c.pods[name]
	err := r.Delete(ctx, pod, client.Preconditions{UID: &pod.UID})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return c.wait(PhaseRollingUpdate, "%s was replaced already; outdated: %s", name, left)
	}
	if err != nil {
		return fmt.Errorf("replace pod %s: %w", name, err)
	}
	r.event(c.pg, "RollingUpdate", "replacing %s (%s)", name, why)
	c.requeue = min(c.requeue, time.Second)
	return c.wait(PhaseRollingUpdate, "replacing %s (%s); outdated: %s", name, why, left)
}

// describeOutdated lists the outdated instances, by serial, for messages.
func describeOutdated(v rolloutView) string {
	var out []string
	for _, m := range v.members {
		if why := v.outdated[m]; why != "" {
			out = append(out, m+" ("+why+")")
		}
	}
	return strings.Join(out, ", ")
}
