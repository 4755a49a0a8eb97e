package sync

import (
	"fmt"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/engine"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/statusreaders"
	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// operatorKinds are the homeostat kinds whose health only their operator
// knows: nothing they run is in the Sync's inventory. kstatus alone calls an
// object with no status Current, so without this a sync would be healthy
// the moment a new Postgres exists, before any instance runs. An App is left
// to kstatus: its Deployment is in the inventory and waited for, and `sync
// --once` against a cluster without the controller still works for it. Sync
// is left out too: a Sync that applies itself (bootstrap) would wait for its
// own reconcile to end.
var operatorKinds = map[schema.GroupKind]bool{
	{Group: "homeostat.dev", Kind: "Postgres"}: true,
	{Group: "homeostat.dev", Kind: "Pipeline"}: true,
}

// operatorStatus is Current only once the operator has observed the
// object's generation and says Ready; Failed when it says Stalled.
func operatorStatus(u *unstructured.Unstructured) (*status.Result, error) {
	res, err := status.Compute(u)
	if err != nil || res.Status != status.CurrentStatus {
		return res, err
	}
	observed, found, err := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	if err != nil {
		return nil, fmt.Errorf("status.observedGeneration of %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	if !found || observed != u.GetGeneration() {
		return inProgress(fmt.Sprintf("waiting for the homeostat operator to observe %s generation %d", u.GetKind(), u.GetGeneration())), nil
	}
	ready := readyCondition(u)
	switch {
	case ready == nil:
		return inProgress(u.GetKind() + " has no Ready condition yet"), nil
	case ready.Status != "True":
		return inProgress(fmt.Sprintf("not Ready: %s: %s", ready.Reason, ready.Message)), nil
	}
	return res, nil
}

func inProgress(msg string) *status.Result {
	return &status.Result{Status: status.InProgressStatus, Message: msg}
}

func readyCondition(u *unstructured.Unstructured) *status.BasicCondition {
	obj, err := status.GetObjectWithConditions(u.Object)
	if err != nil {
		return nil
	}
	for i := range obj.Status.Conditions {
		if obj.Status.Conditions[i].Type == "Ready" {
			return &obj.Status.Conditions[i]
		}
	}
	return nil
}

// computeStatus is kstatus, with operatorStatus for the operator kinds.
func computeStatus(u *unstructured.Unstructured) (*status.Result, error) {
	if operatorKinds[u.GroupVersionKind().GroupKind()] {
		return operatorStatus(u)
	}
	return status.Compute(u)
}

// operatorStatusReader plugs operatorStatus into the ssa wait's poller.
type operatorStatusReader struct{ engine.StatusReader }

func newOperatorStatusReader(mapper meta.RESTMapper) engine.StatusReader {
	return operatorStatusReader{statusreaders.NewGenericStatusReader(mapper, operatorStatus)}
}

// Supports limits the reader to operatorKinds; kstatus's own readers take
// the rest.
func (operatorStatusReader) Supports(gk schema.GroupKind) bool { return operatorKinds[gk] }

var _ engine.StatusReader = operatorStatusReader{}
