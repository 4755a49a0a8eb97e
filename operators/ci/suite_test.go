package ci

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/gittestserver"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// env is the one real API server of this package's tests.
var env *testenv.Env

// clockSkew moves the Build controllers' clock forward, for deadlines.
var clockSkew atomic.Int64

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()})))
	testenv.Main(m, &env)
}

// controllers are a running manager with both CI controllers.
type controllers struct {
	pipelines *PipelineReconciler
	builds    *BuildReconciler
	stop      func()
}

// startControllers runs the Pipeline and Build controllers in a manager of
// their own until stop (or the end of the test); a second call after stop
// is a controller restart.
func startControllers(t *testing.T, ns string) *controllers {
	t.Helper()
	return startControllersWith(t, ns, SourceGit{})
}

// startControllersWith is startControllers with the controllers' Git.
func startControllersWith(t *testing.T, ns string, git Git) *controllers {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: env.Scheme,
		// Each test's controllers see only its namespace, so the leftovers
		// of earlier tests (whose repositories are gone) stay quiet.
		Cache:   cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Metrics: metricsserver.Options{BindAddress: "0"},
		// Several managers (one per test, and restarts) share the API server.
		Controller: ctrlConfig(),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &controllers{
		pipelines: &PipelineReconciler{Client: mgr.GetClient(), Git: git},
		builds: &BuildReconciler{Client: mgr.GetClient(), Git: git, Pod: PodOptions{Image: "registry.example/homeostat:test"},
			Recorder: mgr.GetEventRecorder("homeostat-ci"),
			Now:      func() time.Time { return time.Now().Add(time.Duration(clockSkew.Load())) }},
	}
	if err := c.pipelines.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := c.builds.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	c.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}
	t.Cleanup(c.stop)
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	return c
}

// logLevel is errors only, unless CI_TEST_DEBUG is set.
func logLevel() slog.Level {
	if os.Getenv("CI_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelError
}

func ctrlConfig() config.Controller {
	skip := true
	return config.Controller{SkipNameValidation: &skip}
}

// namespace makes a namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ci-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// gitRepo is a real repository on disk, served over file:// or, after
// serveHTTP, by a git HTTP server on 127.0.0.1.
type gitRepo struct {
	t    *testing.T
	dir  string
	bare string // the served copy, which every commit is pushed to
	url  string
}

func newRepo(t *testing.T) *gitRepo {
	t.Helper()
	r := &gitRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *gitRepo) URL() string {
	if r.url != "" {
		return r.url
	}
	return "file://" + r.dir
}

// serveHTTP serves the repository at http://127.0.0.1:PORT/acme/shop.git,
// a URL with the owner/repo path a forge's commit status API needs.
func (r *gitRepo) serveHTTP() {
	r.t.Helper()
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { srv.StopHTTP(); _ = os.RemoveAll(srv.Root()) })
	if err := srv.StartHTTP(); err != nil {
		r.t.Fatal(err)
	}
	r.bare = filepath.Join(srv.Root(), "acme", "shop.git")
	r.git("clone", "-q", "--bare", r.dir, r.bare)
	r.url = srv.HTTPAddress() + "/acme/shop.git"
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", r.dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files on the current branch and returns the new commit.
func (r *gitRepo) commit(files map[string]string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git("add", "-A")
	r.git("commit", "-q", "--allow-empty", "-m", "change")
	if r.bare != "" {
		r.git("push", "-q", "--mirror", r.bare)
	}
	return r.git("rev-parse", "HEAD")
}

const goodSteps = `image: golang:1.26
services:
  - {name: db, image: postgres:16, env: {POSTGRES_PASSWORD: test}}
env: {CGO_ENABLED: "0"}
secretEnv: {TOKEN: {secret: ci-token, key: token}}
timeout: 10m
steps:
  - {name: test, run: go test ./...}
`

func newPipeline(t *testing.T, ns, name, repo string, mutate func(*v1alpha1.Pipeline)) *v1alpha1.Pipeline {
	t.Helper()
	p := &v1alpha1.Pipeline{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.PipelineSpec{
			Repo:     repo,
			Interval: &metav1.Duration{Duration: time.Hour}, // tests trigger polls themselves
			// goodSteps reads ci-token; the secrets tests narrow this.
			Secrets: []v1alpha1.PipelineSecret{{Name: "ci-token", Branches: []string{"*", "*/*"}}},
		},
	}
	if mutate != nil {
		mutate(p)
	}
	if err := env.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// eventually polls cond until it holds or 30 seconds pass.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func builds(t *testing.T, ns string) []v1alpha1.Build {
	t.Helper()
	var list v1alpha1.BuildList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func buildNames(bs []v1alpha1.Build) []string {
	var names []string
	for _, b := range bs {
		names = append(names, b.Name)
	}
	return names
}

func getBuild(t *testing.T, ns, name string) *v1alpha1.Build {
	t.Helper()
	var b v1alpha1.Build
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &b); err != nil {
		t.Fatal(err)
	}
	return &b
}

// waitPhase waits for a build to reach a phase.
func waitPhase(t *testing.T, ns, name, phase string) *v1alpha1.Build {
	t.Helper()
	var b v1alpha1.Build
	eventually(t, "build "+name+" "+phase, func() (bool, string) {
		err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &b)
		return err == nil && b.Status.Phase == phase, fmt.Sprintf("%v %+v", err, b.Status)
	})
	return &b
}

// finishPod plays the kubelet (the test cluster has none): it ends the
// build pod with the agent's termination message, as a real kubelet would
// after `homeostat ci agent` wrote it.
func finishPod(t *testing.T, ns, name string, phase corev1.PodPhase, exitCode int32, message string) {
	t.Helper()
	var pod corev1.Pod
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &pod); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	pod.Status.Phase = phase
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: agentName, Image: pod.Spec.Containers[0].Image, Ready: false,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: exitCode, Reason: "Completed", Message: message, StartedAt: now, FinishedAt: now,
		}},
	}}
	if err := env.Client.Status().Update(context.Background(), &pod); err != nil {
		t.Fatalf("play kubelet for pod %s: %v", name, err)
	}
}
