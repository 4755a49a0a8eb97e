package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestHTTPReadinessProbeFollowsTheEndpoint: a pod whose container declares
// a port and listens on it (":9000", given a loopback port of its own) is
// ready exactly while its httpGet probe answers 2xx: the file server
// answers 404 until the probed file exists, 200 while it does.
func TestHTTPReadinessProbeFollowsTheEndpoint(t *testing.T) {
	k, ns := start(t)
	spec := podSpec("serve", "--listen", ":9000")
	spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "health", ContainerPort: 9000}}
	spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{
		HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("health")}}}
	createPod(t, ns, "web", spec)
	ready := func(want bool) {
		t.Helper()
		eventually(t, fmt.Sprintf("pod ready = %v", want), func() (bool, string) {
			phase, pod := podPhase(t, ns, "web")
			if pod == nil {
				return false, "no pod"
			}
			return phase == corev1.PodRunning && podIsReady(pod) == want, fmt.Sprintf("phase %s, conditions %v", phase, pod.Status.Conditions)
		})
	}
	ready(false)
	// The server runs in the pod's directory: the probed file is there.
	probed := filepath.Join(k.opts.Dir, "volumes", "pods", "pod_"+ns+"_web", "readyz")
	if err := os.WriteFile(probed, []byte("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	ready(true)
	if err := os.Remove(probed); err != nil {
		t.Fatal(err)
	}
	ready(false)
	// The declared port is not the one in the spec: every pod has its own.
	local, err := k.declaredPort(workload{kind: "pod", ns: ns, name: "web"}, 9000)
	if err != nil || local == 9000 {
		t.Errorf("declared port 9000 maps to %d (%v)", local, err)
	}
}
