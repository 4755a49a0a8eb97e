package controller

import (
	"fmt"
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
)

// ApplyStatus records an Outcome in s.Status: revisions, inventory, last
// snapshot and the Ready/Reconciling/Stalled conditions. It is the only
// place a sync's result becomes status, for the controller and the CLI alike.
func ApplyStatus(s *v1alpha1.Sync, o Outcome) {
	st := &s.Status
	st.ObservedGeneration = s.Generation
	if o.Revision.Name != "" {
		st.LastAttemptedRevision = o.Revision.Name
	}
	hsync.SetSyncInventory(st, o.Inventory)
	if o.Snapshot != "" {
		st.LastSnapshot = o.Snapshot
	}
	apimeta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionReconciling)
	if o.Err == nil {
		// The message names the revision only, so a sync that changed
		// nothing leaves the status as it was (and writes nothing); the
		// counts are in the Snapshot and the event.
		st.LastAppliedRevision = o.Revision.Name
		apimeta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionStalled)
		setCondition(s, v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonSucceeded,
			fmt.Sprintf("Applied revision %s", o.Revision.Name)+keptMessage(o.Changes))
		return
	}
	setCondition(s, v1alpha1.ConditionReady, metav1.ConditionFalse, o.Reason, o.Err.Error())
	switch o.Reason {
	case ReasonRenderFailed, ReasonImmutableField, ReasonPruneRefused:
		// A bad commit needs a human and a new commit (or an opt-in): say so.
		setCondition(s, v1alpha1.ConditionStalled, metav1.ConditionTrue, o.Reason, o.Err.Error())
		return
	}
	// Anything else may pass on its own (a server back, a Deployment
	// becoming available): the next interval retries.
	apimeta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionStalled)
	setCondition(s, v1alpha1.ConditionReconciling, metav1.ConditionTrue, ReasonProgressingWithRetry, o.Err.Error())
}

// keptMessage says which objects prune left in place and why ("" when none).
func keptMessage(cs hsync.ChangeSet) string {
	var b strings.Builder
	for _, c := range cs.Sorted().Changes {
		if c.Action == hsync.Kept {
			fmt.Fprintf(&b, "; kept %s: %s", c.Ref, c.Err)
		}
	}
	return b.String()
}

// SetSuspended records that syncing is suspended, keeping a RolledBack
// reason (and its message) when a rollback suspended it.
func SetSuspended(s *v1alpha1.Sync) {
	s.Status.ObservedGeneration = s.Generation
	if c := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Reason == ReasonRolledBack {
		return
	}
	setCondition(s, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonSuspended, "Syncing is suspended (spec.suspend is true)")
}

func setCondition(s *v1alpha1.Sync, typ string, status metav1.ConditionStatus, reason, msg string) {
	if len(msg) > 32000 {
		msg = msg[:32000] + "..."
	}
	apimeta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: s.Generation,
	})
}
