package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/operators/instance"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Authority is what `homeostat instance run` asks the API server, as its
// pod's ServiceAccount: who the primary is (the Postgres object's
// status.primary) and, from a primary, a heartbeat on its own pod. These two
// requests are all InstanceRole grants.
type Authority struct {
	c        client.Client
	key, pod client.ObjectKey
}

var _ instance.Authority = Authority{}

// NewAuthority is the Authority of instance pod in the Postgres cluster of
// namespace, through c.
func NewAuthority(c client.Client, namespace, cluster, pod string) Authority {
	return Authority{c: c, key: client.ObjectKey{Namespace: namespace, Name: cluster}, pod: client.ObjectKey{Namespace: namespace, Name: pod}}
}

// Heartbeat stamps the instance's own pod (AnnotationHeartbeat); the
// operator notes when the value last changed, so clocks need not agree.
func (a Authority) Heartbeat(ctx context.Context) error {
	patch := []byte(`{"metadata":{"annotations":{"` + AnnotationHeartbeat + `":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}}}`)
	ref := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: a.pod.Name, Namespace: a.pod.Namespace}}
	if err := a.c.Patch(ctx, ref, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("heartbeat on pod %s: %w", a.pod, refused(err))
	}
	return nil
}

// Primary is the Postgres' status.primary.
func (a Authority) Primary(ctx context.Context) (string, error) {
	var pg v1alpha1.Postgres
	if err := a.c.Get(ctx, a.key, &pg); err != nil {
		return "", fmt.Errorf("read postgres %s: %w", a.key, refused(err))
	}
	return pg.Status.Primary, nil
}

// refused marks an answer of the API server (a status such as Forbidden or
// NotFound) as instance.ErrRefused: reachable, but no answer about roles.
func refused(err error) error {
	var st apierrors.APIStatus
	if err != nil && errors.As(err, &st) && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsServiceUnavailable(err) {
		return fmt.Errorf("%w: %w", instance.ErrRefused, err)
	}
	return err
}
