package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/operators/ci"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// runBuildPodLocally plays the kubelet for a build pod, for real: it runs
// the pod's clone and agent containers' commands (the homeostat binary they
// name is this test binary) with the pod's volumes as local directories,
// and reports the agent's exit and termination message as pod status.
func runBuildPodLocally(t *testing.T, env *testenv.Env, pod *corev1.Pod) (agentLog string) {
	t.Helper()
	root := t.TempDir()
	paths := map[string]string{
		"/workspace":                    filepath.Join(root, "workspace"),
		"/dev/termination-log":          filepath.Join(root, "termination-log"),
		"/etc/homeostat/podinfo/resume": filepath.Join(root, "resume"),
		"/homeostat/paused":             filepath.Join(root, "paused"),
	}
	mapArgs := func(c corev1.Container) []string {
		if c.Command[0] != "/homeostat/homeostat" {
			t.Fatalf("container %s runs %s, not the copied homeostat binary", c.Name, c.Command[0])
		}
		var args []string
		for _, a := range c.Command[1:] {
			if p, ok := paths[a]; ok {
				a = p
			}
			args = append(args, a)
		}
		return args
	}
	var clone, agent corev1.Container
	for _, c := range pod.Spec.InitContainers {
		if c.Name == "clone" {
			clone = c
		}
	}
	agent = pod.Spec.Containers[0]
	if out, errOut, code := homeostat(t, mapArgs(clone)...); code != 0 {
		t.Fatalf("clone container: exit %d\n%s%s", code, out, errOut)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainAsHomeostat$")
	encoded, _ := json.Marshal(mapArgs(agent))
	cmd.Env = append(os.Environ(), cliArgsEnv+"="+string(encoded))
	for _, e := range agent.Env {
		cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
	}
	cmd.Dir = paths[agent.WorkingDir]
	out, err := cmd.CombinedOutput()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	msg, _ := os.ReadFile(paths["/dev/termination-log"])
	phase := corev1.PodSucceeded
	if code != 0 {
		phase = corev1.PodFailed
	}
	now := metav1.Now()
	pod.Status.Phase = phase
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: agent.Name, Image: agent.Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: int32(code), Message: string(msg), StartedAt: now, FinishedAt: now}}}}
	if err := env.Client.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// ciBuildEndToEnd: a commit to a watched repository becomes a Build,
// whose pod's own commands, run for real, clone that commit and run its
// steps; the result lands in the Build's status and in a chat message.
func ciBuildEndToEnd(t *testing.T, env *testenv.Env) {
	ctx := context.Background()

	chat := make(chan map[string]any, 5)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &body)
		chat <- body
	}))
	defer srv.Close()

	repo := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	steps := "image: alpine:3\nenv: {GREETING: hi}\nsteps:\n" +
		"  - {name: checkout, run: 'test \"$(cat version)\" = 2 && echo at $HOMEOSTAT_COMMIT'}\n" +
		"  - {name: greet, run: echo $GREETING from $HOMEOSTAT_BRANCH}\n"
	if err := os.WriteFile(filepath.Join(repo, ".homeostat-ci.yaml"), []byte(steps), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "version"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", "-A")
	git("commit", "-q", "-m", "one")

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ci-e2e-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	skip := true
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: syncScheme(), Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{ns.Name: {}}}, Controller: config.Controller{SkipNameValidation: &skip}})
	if err != nil {
		t.Fatal(err)
	}
	pipelines := &ci.PipelineReconciler{Client: mgr.GetClient()}
	if err := pipelines.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := (&ci.BuildReconciler{Client: mgr.GetClient(), Pod: ci.PodOptions{Image: "homeostat:test"}}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = mgr.Start(mctx) }()

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "chat"}, StringData: map[string]string{"url": srv.URL + "/hook"}}
	if err := env.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	p := &v1alpha1.Pipeline{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "shop"}, Spec: v1alpha1.PipelineSpec{
		Repo: "file://" + repo, Interval: &metav1.Duration{Duration: time.Hour},
		Notify: &v1alpha1.Notify{Webhook: &v1alpha1.WebhookNotify{SecretRef: v1alpha1.LocalObjectReference{Name: "chat"}}},
	}}
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	first := git("rev-parse", "HEAD")
	waitBuild(t, env, ns.Name, ci.BuildName("shop", "main", first), v1alpha1.BuildRunning)

	// The new commit arrives; a push webhook would call Trigger.
	if err := os.WriteFile(filepath.Join(repo, "version"), []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("commit", "-q", "-am", "two")
	second := git("rev-parse", "HEAD")
	if _, err := pipelines.Trigger(ctx, []string{"file://" + repo}); err != nil {
		t.Fatal(err)
	}
	name := ci.BuildName("shop", "main", second)
	// Concurrency 1: the second waits until the first is done.
	waitBuild(t, env, ns.Name, name, v1alpha1.BuildPending)
	var firstPod corev1.Pod
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns.Name, Name: ci.BuildName("shop", "main", first)}, &firstPod); err != nil {
		t.Fatal(err)
	}
	runBuildPodLocally(t, env, &firstPod) // commit one has version 1: its checkout step fails
	failed := waitBuild(t, env, ns.Name, firstPod.Name, v1alpha1.BuildFailed)
	if failed.Status.FailedStep != "checkout" {
		t.Fatalf("first build %+v", failed.Status)
	}
	if msg := receive(t, chat); !strings.Contains(msg["text"].(string), "failed at step checkout") {
		t.Fatalf("chat %v", msg)
	}

	waitBuild(t, env, ns.Name, name, v1alpha1.BuildRunning)
	var pod corev1.Pod
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns.Name, Name: name}, &pod); err != nil {
		t.Fatal(err)
	}
	log := runBuildPodLocally(t, env, &pod)
	for _, want := range []string{"[checkout] at " + second + "\n", "[greet] hi from main\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("agent log lacks %q:\n%s", want, log)
		}
	}
	b := waitBuild(t, env, ns.Name, name, v1alpha1.BuildSucceeded)
	if len(b.Status.Steps) != 2 || b.Status.Steps[1].Name != "greet" || b.Status.Steps[1].Phase != "Succeeded" {
		t.Fatalf("status %+v", b.Status)
	}
	if msg := receive(t, chat); !strings.Contains(msg["text"].(string), name+": succeeded") {
		t.Fatalf("chat %v", msg)
	}
}

func waitBuild(t *testing.T, env *testenv.Env, ns, name, phase string) *v1alpha1.Build {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var b v1alpha1.Build
	for {
		err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &b)
		if err == nil && b.Status.Phase == phase {
			return &b
		}
		if time.Now().After(deadline) {
			t.Fatalf("build %s never reached %s: %v %+v", name, phase, err, b.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func receive(t *testing.T, ch chan map[string]any) map[string]any {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no notification arrived")
		return nil
	}
}
