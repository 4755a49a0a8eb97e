package ci

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	eventually(t, "pod "+name, func() (bool, string) {
		err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &pod)
		return err == nil, fmt.Sprint(err)
	})
	return &pod
}

// TestBuildPodRunsTheAgentOnTheCommit is the "done when": a new
// commit on a watched repository becomes a Build whose pod clones exactly
// that commit and runs the agent in the steps file's image.
func TestBuildPodRunsTheAgentOnTheCommit(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	repo.commit(map[string]string{"ci/build.yaml": goodSteps})
	c := startControllers(t, ns)
	p := newPipeline(t, ns, "shop", repo.URL(), func(p *v1alpha1.Pipeline) {
		p.Spec.File = "ci/build.yaml"
		p.Spec.SecretRef = &v1alpha1.LocalObjectReference{Name: "shop-git"}
	})
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-git"}, Data: map[string][]byte{"username": []byte("u"), "password": []byte("p")}}
	if err := env.Client.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	commit := repo.commit(map[string]string{"main.go": "package main\n"})
	trigger(t, c, p, "main", commit)
	name := BuildName("shop", "main", commit)
	b := waitPhase(t, ns, name, v1alpha1.BuildRunning)
	if b.Status.Pod != name || b.Status.StartedAt == nil {
		t.Fatalf("status %+v", b.Status)
	}
	pod := getPod(t, ns, name)
	if len(pod.OwnerReferences) != 1 || pod.OwnerReferences[0].UID != b.UID {
		t.Fatalf("pod owner %+v", pod.OwnerReferences)
	}
	clone := pod.Spec.InitContainers[1]
	wantClone := []string{"/homeostat/homeostat", "git", "clone", "--url", repo.URL(), "--commit", commit, "--dir", "/workspace", "--secret-dir", "/etc/homeostat/git"}
	if clone.Name != "clone" || !reflect.DeepEqual(clone.Command, wantClone) {
		t.Fatalf("clone container %s %q", clone.Name, clone.Command)
	}
	agent := pod.Spec.Containers[0]
	if agent.Image != "golang:1.26" || strings.Join(agent.Command[:3], " ") != "/homeostat/homeostat ci agent" ||
		!strings.Contains(strings.Join(agent.Command, " "), "--file ci/build.yaml") {
		t.Fatalf("agent container %s %q", agent.Image, agent.Command)
	}
	if db := pod.Spec.InitContainers[2]; db.Name != "db" || db.Image != "postgres:16" || db.RestartPolicy == nil || *db.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatalf("service sidecar %+v", db)
	}
	if pod.Spec.InitContainers[0].Image != "registry.example/homeostat:test" {
		t.Fatalf("install image %s", pod.Spec.InitContainers[0].Image)
	}
}

// TestResumeReachesThePod: `homeostat ci resume` sets spec.resume; the
// controller mirrors it into the pod annotation the agent's downward-API
// file shows.
func TestResumeReachesThePod(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	commit := repo.commit(map[string]string{".homeostat-ci.yaml": goodSteps})
	startControllers(t, ns)
	newPipeline(t, ns, "shop", repo.URL(), nil)
	name := BuildName("shop", "main", commit)
	b := waitPhase(t, ns, name, v1alpha1.BuildRunning)
	if v := getPod(t, ns, name).Annotations[AnnotationResume]; v != "" {
		t.Fatalf("a fresh pod is already resumed: %q", v)
	}
	b.Spec.Resume = true
	if err := env.Client.Update(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the resume annotation", func() (bool, string) {
		var pod corev1.Pod
		err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &pod)
		return err == nil && pod.Annotations[AnnotationResume] == "true", fmt.Sprint(err, pod.Annotations)
	})
}

// TestPausedBuildShowsPaused plays the kubelet reporting the agent ready
// (its probe passes only while a pause step waits): the Build is Paused and
// says how to get in, and Running again once the probe fails.
func TestPausedBuildShowsPaused(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	commit := repo.commit(map[string]string{".homeostat-ci.yaml": goodSteps})
	startControllers(t, ns)
	newPipeline(t, ns, "shop", repo.URL(), nil)
	name := BuildName("shop", "main", commit)
	waitPhase(t, ns, name, v1alpha1.BuildRunning)
	setAgentReady := func(ready bool) {
		pod := getPod(t, ns, name)
		pod.Status.Phase = corev1.PodRunning
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: agentName, Image: pod.Spec.Containers[0].Image, Ready: ready,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}
		if err := env.Client.Status().Update(context.Background(), pod); err != nil {
			t.Fatal(err)
		}
	}
	setAgentReady(true)
	b := waitPhase(t, ns, name, v1alpha1.BuildPaused)
	if want := "paused: kubectl exec -it " + name + " -c agent -- sh; then homeostat ci resume " + name; b.Status.Message != want {
		t.Fatalf("message %q", b.Status.Message)
	}
	setAgentReady(false)
	waitPhase(t, ns, name, v1alpha1.BuildRunning)
}
