package postgres

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/operators/instance"
)

// ReasonImageVersionMismatch is the phase, Ready reason and warning event
// of a cluster whose image has PostgreSQL binaries of another major
// version than its data: the instance manager refused to start them, and
// the rolling update stops there.
const ReasonImageVersionMismatch = "ImageVersionMismatch"

// imageMismatch is why a pod's instance manager refused to start postgres
// (instance.ExitImageVersionMismatch, its termination message naming the
// binaries' and the data's major), now or in the container's last run;
// "" when it did not.
func imageMismatch(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		for _, t := range []*corev1.ContainerStateTerminated{cs.State.Terminated, cs.LastTerminationState.Terminated} {
			if t != nil && t.ExitCode == instance.ExitImageVersionMismatch {
				return nonEmpty(t.Message, "the image's binaries are of another major version than the data directory")
			}
		}
	}
	return ""
}

// refusedImage stops the workflow (EnsurePods, and so the rolling update:
// no further pod is replaced) at an instance whose pod refused its image,
// with Ready False, reason ImageVersionMismatch, naming the image. A pod
// made from an older spec than the current one is replaced instead: the
// spec may have fixed the image.
func (r *PostgresReconciler) refusedImage(ctx context.Context, c *cluster, name string) error {
	pod := c.pods[name]
	if pod == nil || !pod.DeletionTimestamp.IsZero() {
		return nil
	}
	why := imageMismatch(pod)
	if why == "" {
		return nil
	}
	if pod.Annotations[AnnotationSpecHash] != SpecHash(c.pg, r.Options) {
		err := r.Delete(ctx, pod, client.Preconditions{UID: &pod.UID})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("replace pod %s: %w", name, err)
		}
		return c.wait(PhaseRollingUpdate, "replacing %s, which refused its former image %s", name, pod.Spec.Containers[0].Image)
	}
	msg := fmt.Sprintf("instance %s does not start with image %s: %s; set spec.image to an image of the data's major version (spec.version %q); the rolling update waits, the other instances keep their pods",
		name, pod.Spec.Containers[0].Image, why, c.pg.Spec.Version)
	if c.pg.Status.Phase != ReasonImageVersionMismatch {
		r.warn(c.pg, ReasonImageVersionMismatch, "%s", msg)
	}
	return c.wait(ReasonImageVersionMismatch, "%s", msg)
}
