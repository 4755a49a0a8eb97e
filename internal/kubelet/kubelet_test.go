package kubelet

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

const image = "homeostat:test"

func start(t *testing.T) (*Kubelet, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	k, err := Start(env.Client, Options{Binary: fakeHomeostat, HomeostatImage: image, Dir: dir, Logf: t.Logf,
		Env: []string{"KUBELET_TEST_BINARY=" + self}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kubelet-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return k, ns.Name
}

// podSpec copies the "binary" into an emptyDir, as homeostat's pods do, and
// runs it from there with args.
func podSpec(args ...string) corev1.PodSpec {
	return corev1.PodSpec{
		RestartPolicy:  corev1.RestartPolicyNever,
		InitContainers: []corev1.Container{{Name: "copy", Image: image, Command: []string{"/homeostat", "copy-self", "/shared/homeostat"}, VolumeMounts: []corev1.VolumeMount{{Name: "bin", MountPath: "/shared"}}}},
		Containers: []corev1.Container{{Name: "main", Image: "busybox", Command: append([]string{"/tools/homeostat"}, args...),
			VolumeMounts: []corev1.VolumeMount{{Name: "bin", MountPath: "/tools"}, {Name: "data", MountPath: "/data"}}}},
		Volumes: []corev1.Volume{
			{Name: "bin", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}},
		},
	}
}

var podLabels = map[string]string{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue, "app": "x"}

func createPod(t *testing.T, ns, name string, spec corev1.PodSpec) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: podLabels}, Spec: spec}
	if err := env.Client.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within 60s; last: %s", what, last)
}

func podPhase(t *testing.T, ns, name string) (corev1.PodPhase, *corev1.Pod) {
	var pod corev1.Pod
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil {
		return "", nil
	}
	return pod.Status.Phase, &pod
}

func TestPodRunsWithEnvFromSecretsAndClaimDirectories(t *testing.T) {
	k, ns := start(t)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: ns}, StringData: map[string]string{"greeting": "hello"}}
	if err := env.Client.Create(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	spec := podSpec("env", "/data/out")
	spec.Containers[0].Env = []corev1.EnvVar{{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "greeting"}}}}
	createPod(t, ns, "p", spec)
	eventually(t, "pod succeeded", func() (bool, string) {
		ph, _ := podPhase(t, ns, "p")
		return ph == corev1.PodSucceeded, string(ph)
	})
	got, err := os.ReadFile(filepath.Join(k.opts.Dir, "volumes", "claims", ns+"_data", "out"))
	if err != nil || string(got) != "hello" {
		t.Fatalf("claim file = %q, %v; want the secret's value", got, err)
	}
}

func TestKilledPodFailsAndDeletedPodStops(t *testing.T) {
	k, ns := start(t)
	createPod(t, ns, "long", podSpec("sleep", "600"))
	eventually(t, "pod running and ready", func() (bool, string) {
		ph, pod := podPhase(t, ns, "long")
		return ph == corev1.PodRunning && podIsReady(pod), string(ph)
	})
	if err := k.Kill(ns, "long"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod failed", func() (bool, string) {
		ph, pod := podPhase(t, ns, "long")
		if ph != corev1.PodFailed {
			return false, string(ph)
		}
		st := pod.Status.ContainerStatuses[0].State.Terminated
		return st != nil && st.ExitCode == 137, fmt.Sprintf("%+v", pod.Status.ContainerStatuses)
	})

	createPod(t, ns, "doomed", podSpec("sleep", "600"))
	eventually(t, "pod running", func() (bool, string) {
		ph, _ := podPhase(t, ns, "doomed")
		return ph == corev1.PodRunning, string(ph)
	})
	_, pod := podPhase(t, ns, "doomed")
	if err := env.Client.Delete(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod gone and its process stopped", func() (bool, string) {
		err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "doomed"}, &corev1.Pod{})
		k.mu.Lock()
		running := k.procs["pod/"+ns+"/doomed"] != nil
		k.mu.Unlock()
		return apierrors.IsNotFound(err) && !running, fmt.Sprintf("get: %v, process running: %v", err, running)
	})
}

func TestJobsReportCompleteOrFailed(t *testing.T) {
	_, ns := start(t)
	for name, code := range map[string]string{"ok": "0", "bad": "3"} {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: podLabels},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: podSpec("exit", code)}}}
		if err := env.Client.Create(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]batchv1.JobConditionType{"ok": batchv1.JobComplete, "bad": batchv1.JobFailed} {
		eventually(t, "job "+name+" "+string(want), func() (bool, string) {
			var j batchv1.Job
			if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &j); err != nil {
				return false, err.Error()
			}
			for _, c := range j.Status.Conditions {
				if c.Type == want && c.Status == corev1.ConditionTrue {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%+v", j.Status)
		})
	}
}

func TestServiceProxyFollowsThePodLabels(t *testing.T) {
	k, ns := start(t)
	for _, name := range []string{"a", "b"} {
		spec := podSpec("serve", "--port", "8000")
		spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8000)}}}
		// Each pod its own claim, so each its own port.
		spec.Volumes[1].PersistentVolumeClaim.ClaimName = "data-" + name
		createPod(t, ns, name, spec)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"role": "primary"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if err := env.Client.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	label := func(name, role string) {
		_, pod := podPhase(t, ns, name)
		patch := client.MergeFrom(pod.DeepCopy())
		pod.Labels["role"] = role
		if err := env.Client.Patch(context.Background(), pod, patch); err != nil {
			t.Fatal(err)
		}
	}
	addr, err := k.Resolve(context.Background(), ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	// Both pods serve the same empty listing; tell them apart by port.
	backendOf := func() string {
		for _, name := range []string{"a", "b"} {
			if pa, _ := k.DirectAddr(ns, name); pa != "" {
				if _, b, _ := k.backend(context.Background(), ns, "web"); b == pa {
					return name
				}
			}
		}
		return ""
	}
	for _, primary := range []string{"a", "b"} {
		other := map[string]string{"a": "b", "b": "a"}[primary]
		label(other, "replica")
		label(primary, "primary")
		eventually(t, "service selects "+primary+" and answers", func() (bool, string) {
			_, pod := podPhase(t, ns, primary)
			if pod == nil || !podIsReady(pod) {
				return false, "not ready"
			}
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == 200 && backendOf() == primary, fmt.Sprintf("status %d, backend %s", resp.StatusCode, backendOf())
		})
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("service address %s is not on loopback", addr)
	}
}

// A Secret volume holds the items named (at their paths) and follows the
// Secret while the pod runs, as a real kubelet's sync does: how a renewed
// certificate reaches a running instance.
func TestSecretVolumeHoldsItsItemsAndFollowsTheSecret(t *testing.T) {
	k, ns := start(t)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: ns},
		StringData: map[string]string{"tls.crt": "cert-1", "tls.key": "key-1"}}
	if err := env.Client.Create(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	spec := podSpec("sleep", "600")
	spec.Containers[0].VolumeMounts = append(spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "tls", MountPath: "/etc/tls"})
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: "tls", Items: []corev1.KeyToPath{{Key: "tls.crt", Path: "server.crt"}}}}})
	createPod(t, ns, "s", spec)
	dir := filepath.Join(k.opts.Dir, "volumes", "secrets", "pod_"+ns+"_s_tls")
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return string(b)
	}
	eventually(t, "the item mounted", func() (bool, string) { return read("server.crt") == "cert-1", read("server.crt") })
	if _, err := os.Stat(filepath.Join(dir, "tls.key")); err == nil {
		t.Error("a key not among the items is mounted")
	}
	sec.StringData = map[string]string{"tls.crt": "cert-2"}
	if err := env.Client.Update(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the renewed item", func() (bool, string) { return read("server.crt") == "cert-2", read("server.crt") })
}
