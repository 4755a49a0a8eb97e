package main

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/operators/ci"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// TestCIAgainstTheAPIServer starts one real API server for every CI test
// of this package that needs one.
func TestCIAgainstTheAPIServer(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	t.Run("commands", func(t *testing.T) { ciClusterCommands(t, env) })
	t.Run("build end to end", func(t *testing.T) { ciBuildEndToEnd(t, env) })
}

// ciClusterCommands runs resume, rerun and logs as real processes.
func ciClusterCommands(t *testing.T, env *testenv.Env) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ci-cli-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	p := &v1alpha1.Pipeline{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "shop"}, Spec: v1alpha1.PipelineSpec{Repo: "https://git.example.com/acme/shop.git"}}
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	b := ci.NewBuild(p, "main", "0123456789abcdef0123456789abcdef01234567")
	if err := env.Client.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	kube := func(args ...string) []string {
		return append(args, "--kubeconfig", env.Kubeconfig, "-n", ns.Name)
	}

	t.Run("resume sets spec.resume", func(t *testing.T) {
		stdout, stderr, code := homeostat(t, kube("ci", "resume", b.Name)...)
		if code != 0 || stdout != "build "+b.Name+" resumed\n" {
			t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
		}
		var got v1alpha1.Build
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(b), &got); err != nil || !got.Spec.Resume {
			t.Fatalf("resume %v %v", got.Spec.Resume, err)
		}
	})

	t.Run("resume of a missing build fails", func(t *testing.T) {
		_, stderr, code := homeostat(t, kube("ci", "resume", "nope")...)
		if code != 1 || !strings.Contains(stderr, "resume build "+ns.Name+"/nope") {
			t.Fatalf("exit %d %s", code, stderr)
		}
	})

	t.Run("resume without a build is a usage error", func(t *testing.T) {
		if _, _, code := homeostat(t, kube("ci", "resume")...); code != 2 {
			t.Fatalf("exit %d, want 2", code)
		}
	})

	t.Run("rerun makes a new build of the same commit", func(t *testing.T) {
		stdout, stderr, code := homeostat(t, kube("ci", "rerun", b.Name)...)
		if code != 0 {
			t.Fatalf("exit %d %s", code, stderr)
		}
		var list v1alpha1.BuildList
		if err := env.Client.List(ctx, &list, client.InNamespace(ns.Name), client.MatchingLabels{ci.LabelRerunOf: b.Name}); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 {
			t.Fatalf("reruns %d", len(list.Items))
		}
		again := list.Items[0]
		if !strings.HasPrefix(again.Name, b.Name+"-rerun-") || again.Spec.Commit != b.Spec.Commit || again.Spec.Resume ||
			again.Labels[ci.LabelPipeline] != "shop" || stdout != "build "+again.Name+" created (commit "+b.Spec.Commit+")\n" {
			t.Fatalf("rerun %s %+v %v\n%s", again.Name, again.Spec, again.Labels, stdout)
		}
	})

	t.Run("logs of a build without a pod say why", func(t *testing.T) {
		_, stderr, code := homeostat(t, kube("ci", "logs", b.Name)...)
		if code != 1 || !strings.Contains(stderr, "error: build "+b.Name+" has no pod (phase -)") {
			t.Fatalf("exit %d %s", code, stderr)
		}
	})

	t.Run("logs come from the agent container through the API", func(t *testing.T) {
		// The pod exists but no kubelet runs it, so the API server refuses
		// the log request: the command must say which build and pod.
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: b.Name},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "alpine:3"}}}}
		if err := env.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		var cur v1alpha1.Build
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns.Name, Name: b.Name}, &cur); err != nil {
			t.Fatal(err)
		}
		cur.Status.Phase, cur.Status.Pod = v1alpha1.BuildRunning, pod.Name
		if err := env.Client.Status().Update(ctx, &cur); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := homeostat(t, kube("ci", "logs", b.Name)...)
		if code != 1 || !strings.Contains(stderr, "error: build "+b.Name+": pod "+pod.Name+" is not scheduled yet (phase Pending), so it has no log") {
			t.Fatalf("exit %d %s", code, stderr)
		}

		// Bound to a node that does not exist, the log request reaches for
		// a kubelet and fails; the error names the build and the pod.
		binding := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: pod.Name}, Target: corev1.ObjectReference{Kind: "Node", Name: "no-such-node"}}
		if err := env.Client.SubResource("binding").Create(ctx, pod, binding); err != nil {
			t.Fatal(err)
		}
		_, stderr, code = homeostat(t, kube("ci", "logs", b.Name)...)
		if code != 1 || !strings.Contains(stderr, "error: logs of build "+b.Name+" (pod "+pod.Name+"): ") {
			t.Fatalf("exit %d %s", code, stderr)
		}
	})
}
