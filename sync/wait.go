package sync

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Wait waits up to timeout until every object of refs is healthy as kstatus
// understands it (Deployments available, Jobs complete), and the Postgres
// and Pipeline kinds Ready for the generation applied (see operatorStatus). On
// timeout it returns the objects that were not healthy, each with its
// status, and an error.
func (e *Engine) Wait(ctx context.Context, refs Inventory, timeout time.Duration) ([]Change, error) {
	set := make(object.ObjMetadataSet, 0, len(refs))
	for _, r := range refs {
		set = append(set, object.ObjMetadata{Namespace: r.Namespace, Name: r.Name, GroupKind: r.GVK().GroupKind()})
	}
	err := e.rm.WaitForSetWithContext(ctx, set, ssa.WaitOptions{Interval: 500 * time.Millisecond, Timeout: timeout})
	if err == nil {
		return nil, nil
	}
	unhealthy := e.health(context.WithoutCancel(ctx), refs)
	if len(unhealthy) == 0 {
		return nil, fmt.Errorf("wait for health: %w", err)
	}
	return unhealthy, fmt.Errorf("%d object(s) not healthy after %s: %s", len(unhealthy), timeout, unhealthy[0])
}

// health lists the objects of refs that computeStatus does not call Current.
func (e *Engine) health(ctx context.Context, refs Inventory) []Change {
	var out []Change
	for _, r := range refs {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(r.GVK())
		if err := e.client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.Name}, u); err != nil {
			if apierrors.IsNotFound(err) {
				out = append(out, Change{Ref: r, Action: Failed, Err: "not found"})
			}
			continue
		}
		res, err := computeStatus(u)
		if err != nil {
			out = append(out, Change{Ref: r, Action: Failed, Err: err.Error()})
			continue
		}
		if res.Status != status.CurrentStatus {
			out = append(out, Change{Ref: r, Action: Failed, Err: fmt.Sprintf("%s: %s", res.Status, res.Message)})
		}
	}
	return out
}

func isNoMatch(err error) bool { return err != nil && meta.IsNoMatchError(err) }
