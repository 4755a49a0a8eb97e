package kubelet

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A partitioned instance keeps running and answers a client on its own
// side, but Service traffic, its pod address and its own way to the API
// server are cut until the partition heals; another instance is not
// touched.
func TestPartitionCutsAnInstanceOffWhileItRuns(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	k, err := Start(env.Client, Options{Binary: fakeHomeostat, HomeostatImage: image, Dir: dir, Logf: t.Logf,
		Env: []string{"KUBELET_TEST_BINARY=" + self}, Kubeconfig: env.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kubelet-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		spec := podSpec("serve", "--port", "8000")
		spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8000)}}}
		spec.Volumes[1].PersistentVolumeClaim.ClaimName = name
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name, Labels: map[string]string{}}, Spec: spec}
		for k, v := range podLabels {
			pod.Labels[k] = v
		}
		pod.Labels["role"] = map[string]string{"a": "primary", "b": "replica"}[name]
		if err := env.Client.Create(context.Background(), pod); err != nil {
			t.Fatal(err)
		}
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns.Name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"role": "primary"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if err := env.Client.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	httpc := &http.Client{Timeout: 2 * time.Second}
	get := func(addr string) bool {
		resp, err := httpc.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	addrOf := func(name string) string {
		a, err := k.Resolve(context.Background(), ns.Name, name)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	// Each instance's processes reach the API server through the
	// kubeconfig the kubelet wrote for it.
	apiOf := func(instance string) func() bool {
		cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfigs", ns.Name+"_"+instance+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Timeout = 2 * time.Second
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return func() bool { _, err := dc.ServerVersion(); return err == nil }
	}
	eventually(t, "a serves through the Service", func() (bool, string) {
		var pod corev1.Pod
		_ = env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns.Name, Name: "a"}, &pod)
		return podIsReady(&pod) && get(addrOf("web")), "not yet"
	})
	eventually(t, "b running", func() (bool, string) {
		_, err := k.DirectAddr(ns.Name, "b")
		return err == nil, "not yet"
	})
	apiA, apiB := apiOf("a"), apiOf("b")
	direct, err := k.DirectAddr(ns.Name, "a")
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, want map[string]bool) {
		t.Helper()
		got := map[string]bool{"service": get(addrOf("web")), "pod address": get(addrOf("a")), "direct": get(direct),
			"a's API server": apiA(), "b's API server": apiB()}
		for what, ok := range want {
			if got[what] != ok {
				t.Errorf("%s: %s reachable = %v, want %v", when, what, got[what], ok)
			}
		}
	}
	check("before", map[string]bool{"service": true, "pod address": true, "direct": true, "a's API server": true, "b's API server": true})
	k.Partition(ns.Name, "a")
	check("partitioned", map[string]bool{"service": false, "pod address": false, "direct": true, "a's API server": false, "b's API server": true})
	k.Heal(ns.Name, "a")
	check("healed", map[string]bool{"service": true, "pod address": true, "direct": true, "a's API server": true, "b's API server": true})
}
