package ci

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// TestStuckPodSaysWhyAndTimesOut: a pod that cannot start (a missing
// secret for secretEnv) shows the kubelet's reason on the Build, and once
// the pod's deadline has passed with no kubelet acting, the controller
// deletes it and fails the build.
func TestStuckPodSaysWhyAndTimesOut(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	commit := repo.commit(map[string]string{".homeostat-ci.yaml": goodSteps})
	startControllers(t, ns)
	t.Cleanup(func() { clockSkew.Store(0) })
	newPipeline(t, ns, "shop", repo.URL(), nil)
	name := BuildName("shop", "main", commit)
	waitPhase(t, ns, name, v1alpha1.BuildRunning)

	pod := getPod(t, ns, name)
	pod.Status.Phase = corev1.PodPending
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: agentName, Image: pod.Spec.Containers[0].Image,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: `secret "ci-token" not found`}}}}
	if err := env.Client.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	const want = `container agent waiting: CreateContainerConfigError: secret "ci-token" not found`
	eventually(t, "the waiting reason on the build", func() (bool, string) {
		b := getBuild(t, ns, name)
		return b.Status.Message == want, b.Status.Message
	})

	// Past the deadline (timeout 10m + 10m for pulls and clone + 1m grace).
	clockSkew.Store(int64(22 * time.Minute))
	pod = getPod(t, ns, name)
	pod.Annotations = map[string]string{"touch": "1"} // any change wakes the controller
	if err := env.Client.Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	b := waitPhase(t, ns, name, v1alpha1.BuildFailed)
	if !strings.HasPrefix(b.Status.Message, "timed out: pod "+name+" did not finish within 1200s") {
		t.Fatalf("status %+v", b.Status)
	}
	eventually(t, "the pod deleted", func() (bool, string) {
		var p corev1.Pod
		err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &p)
		return apierrors.IsNotFound(err) || !p.DeletionTimestamp.IsZero(), fmt.Sprint(err)
	})
}
