package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// shell is a container running a /bin/sh script with OUT naming a file on
// the pod's claim.
func shell(name, script string) corev1.Container {
	return corev1.Container{Name: name, Image: "busybox", Command: []string{"/bin/sh", "-c", script},
		Env: []corev1.EnvVar{{Name: "OUT", Value: "/data/events"}}, VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}
}

func sidecarPod(side, main string) corev1.PodSpec {
	always := corev1.ContainerRestartPolicyAlways
	spec := podSpec()
	s := shell("side", side)
	s.RestartPolicy = &always
	spec.InitContainers = append(spec.InitContainers, s)
	spec.Containers = []corev1.Container{shell("main", main)}
	return spec
}

// waitFor is a shell loop that waits up to 10s for a line in $OUT.
func waitFor(line string) string {
	return `for i in $(seq 100); do grep -qx ` + line + ` "$OUT" && break; sleep 0.1; done; grep -qx ` + line + ` "$OUT" && `
}

func events(t *testing.T, k *Kubelet, ns string) string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(k.opts.Dir, "volumes", "claims", ns+"_data", "events"))
	return string(b)
}

func TestSidecarStartsBeforeAndStopsAfterTheMainContainer(t *testing.T) {
	k, ns := start(t)
	side := `echo started >> "$OUT"; trap 'echo stopped >> "$OUT"; exit 0' TERM; while :; do sleep 0.1; done`
	createPod(t, ns, "p", sidecarPod(side, waitFor("started")+`echo main >> "$OUT"`))
	eventually(t, "pod succeeded", func() (bool, string) {
		ph, _ := podPhase(t, ns, "p")
		return ph == corev1.PodSucceeded, string(ph) + " " + events(t, k, ns)
	})
	// The phase is final only once the sidecar has stopped.
	if got := events(t, k, ns); got != "started\nmain\nstopped\n" {
		t.Fatalf("events %q, want started, main, stopped", got)
	}
}

func TestSidecarThatExitsIsRestarted(t *testing.T) {
	k, ns := start(t)
	side := `echo run >> "$OUT"; exit 1`
	createPod(t, ns, "p", sidecarPod(side, `for i in $(seq 100); do [ "$(grep -c run "$OUT")" -ge 2 ] && exit 0; sleep 0.1; done; exit 1`))
	eventually(t, "pod succeeded", func() (bool, string) {
		ph, _ := podPhase(t, ns, "p")
		return ph == corev1.PodSucceeded, string(ph) + " " + events(t, k, ns)
	})
}

func TestTerminationMessageAndDownwardAPI(t *testing.T) {
	_, ns := start(t)
	spec := podSpec()
	main := shell("main", `for i in $(seq 100); do [ "$(cat /etc/podinfo/resume)" = true ] && break; sleep 0.1; done; cat /etc/podinfo/resume > /dev/termination-log`)
	// Paths inside a script are not mapped; give the script the mapped ones.
	main.Command = []string{"/bin/sh", "-c", `for i in $(seq 100); do [ "$(cat "$1")" = true ] && break; sleep 0.1; done; cat "$1" > "$2"`, "sh",
		"/etc/podinfo/resume", "/dev/termination-log"}
	main.VolumeMounts = append(main.VolumeMounts, corev1.VolumeMount{Name: "podinfo", MountPath: "/etc/podinfo"})
	spec.Containers = []corev1.Container{main}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
		Items: []corev1.DownwardAPIVolumeFile{{Path: "resume", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['x/resume']"}}}}}})
	createPod(t, ns, "p", spec)
	eventually(t, "pod running", func() (bool, string) {
		ph, _ := podPhase(t, ns, "p")
		return ph == corev1.PodRunning, string(ph)
	})
	// The annotation set after the start reaches the file, as the kubelet's
	// downward-API refresh does.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"}}
	if err := env.Client.Patch(context.Background(), pod, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"annotations":{"x/resume":"true"}}}`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod succeeded with the termination message", func() (bool, string) {
		ph, p := podPhase(t, ns, "p")
		if ph != corev1.PodSucceeded {
			return false, string(ph)
		}
		st := p.Status.ContainerStatuses[0].State.Terminated
		return st != nil && strings.TrimSpace(st.Message) == "true", st.String()
	})
}
