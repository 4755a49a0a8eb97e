package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// An instance's processes reach the API server as their pod's
// ServiceAccount, not as the test's administrator: the API server says who
// they are (SelfSubjectReview) and refuses what that ServiceAccount was not
// granted. A pod that names none is the namespace's default; a Job that
// mounts no token gets no kubeconfig at all.
func TestInstancesActAsTheirPodsServiceAccount(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	k, err := Start(env.Client, Options{Binary: fakeHomeostat, HomeostatImage: image, Dir: dir, Logf: t.Logf, Kubeconfig: env.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kubelet-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	withClaim := func(claim string) corev1.PodSpec {
		spec := podSpec("kubeconfig", "/data/out")
		spec.Volumes[1].PersistentVolumeClaim.ClaimName = claim
		return spec
	}
	named := withClaim("named")
	named.ServiceAccountName = "db"
	createPod(t, ns.Name, "named", named)
	createPod(t, ns.Name, "unnamed", withClaim("unnamed"))
	tokenless := withClaim("tokenless")
	tokenless.AutomountServiceAccountToken = ptr.To(false)
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "tokenless", Namespace: ns.Name, Labels: podLabels},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: tokenless}}}
	if err := env.Client.Create(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	kubeconfigOf := func(claim string) string {
		t.Helper()
		var got []byte
		eventually(t, claim+" wrote its KUBECONFIG", func() (bool, string) {
			var err error
			got, err = os.ReadFile(filepath.Join(dir, "volumes", "claims", ns.Name+"_"+claim, "out"))
			return err == nil, "not yet"
		})
		return string(got)
	}
	for claim, sa := range map[string]string{"named": "db", "unnamed": "default"} {
		path := kubeconfigOf(claim)
		if path == "" {
			t.Fatalf("%s got no kubeconfig", claim)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
		if err != nil {
			t.Fatal(err)
		}
		review := &authnv1.SelfSubjectReview{}
		if err := c.Create(context.Background(), review); err != nil {
			t.Fatalf("%s: self subject review: %v", claim, err)
		}
		if want := "system:serviceaccount:" + ns.Name + ":" + sa; review.Status.UserInfo.Username != want {
			t.Errorf("%s acts as %q, want %q", claim, review.Status.UserInfo.Username, want)
		}
		var pods corev1.PodList
		if err := c.List(context.Background(), &pods, client.InNamespace(ns.Name)); !apierrors.IsForbidden(err) {
			t.Errorf("%s listed pods with no RBAC granting it: err %v, want forbidden", claim, err)
		}
	}
	if path := kubeconfigOf("tokenless"); path != "" {
		t.Errorf("a Job with automountServiceAccountToken: false got KUBECONFIG=%s", path)
	}
}
