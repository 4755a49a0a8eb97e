package ci

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/operators/ci/agent"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// TestCollectExplainsEveryEnd: how each way a build pod can end becomes the
// Build's result.
func TestCollectExplainsEveryEnd(t *testing.T) {
	deadline := int64(1200)
	terminated := func(name string, code int32, msg string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: "Error", Message: msg}}}
	}
	passed := string(agent.Encode(agent.Result{Phase: v1alpha1.BuildSucceeded, Steps: []v1alpha1.StepStatus{{Name: "test", Phase: agent.StepSucceeded}}}, agent.MaxResultSize))
	cases := []struct {
		name      string
		status    corev1.PodStatus
		wantPhase string
		wantMsg   string
		wantSteps int
	}{
		{"the agent's result", corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{terminated("agent", 0, passed)}},
			v1alpha1.BuildSucceeded, "", 1},
		{"no readable result", corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{terminated("agent", 137, "")}},
			v1alpha1.BuildFailed, "the agent ended (exit 137, Error) without a readable result: decode agent result: unexpected end of JSON input", 0},
		{"the clone failed", corev1.PodStatus{Phase: corev1.PodFailed, InitContainerStatuses: []corev1.ContainerStatus{terminated("install", 0, ""), terminated("clone", 1, "clone: git ref not found")}},
			v1alpha1.BuildFailed, "init container clone failed (exit 1): clone: git ref not found", 0},
		{"the deadline passed", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "DeadlineExceeded", Message: "Pod was active on the node longer than the specified deadline",
			ContainerStatuses: []corev1.ContainerStatus{terminated("agent", 137, "")}},
			v1alpha1.BuildFailed, "timed out: pod shop-main-0123456 ran past its deadline of 1200s", 0},
		{"evicted", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "The node was low on resource: ephemeral-storage."},
			v1alpha1.BuildFailed, "build pod shop-main-0123456: The node was low on resource: ephemeral-storage.", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &v1alpha1.Build{}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shop-main-0123456"}, Spec: corev1.PodSpec{ActiveDeadlineSeconds: &deadline}, Status: c.status}
			collect(b, pod)
			if b.Status.Phase != c.wantPhase || b.Status.Message != c.wantMsg || len(b.Status.Steps) != c.wantSteps {
				t.Fatalf("status %+v", b.Status)
			}
		})
	}
}
