package ci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/internal/kubelet"
	"homeostat.dev/homeostat/internal/pgtest"
	"homeostat.dev/homeostat/internal/s3test"
	"homeostat.dev/homeostat/operators/ci/buildlog"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// deployToken is the secret the steps ask for; it must show up nowhere.
const deployToken = "dT0k3n-4711-never-print-me"

// e2eSteps: a PostgreSQL service, a secret, a step that prints it, a pause
// (so the test can look at the store while the build runs) and psql.
const e2eSteps = `image: alpine:3
services:
  - {name: db, image: postgres:16, env: {POSTGRES_PASSWORD: test}}
secretEnv: {TOKEN: {secret: deploy, key: token}}
timeout: 5m
steps:
  - {name: hello, run: 'echo hello from $HOMEOSTAT_BRANCH; echo token is $TOKEN'}
  - {name: look, pause: true}
  - name: psql
    run: |
      for i in $(seq 90); do pg_isready -h localhost -q && break; sleep 1; done
      PGPASSWORD=test psql -h localhost -U postgres -Atc 'select 40 + 2'
`

// buildWorld is a namespace where build pods really run: the kubelet
// harness runs their containers (the homeostat binary, the agent's steps,
// PostgreSQL for a postgres service) as local processes, and MinIO keeps
// the logs.
type buildWorld struct {
	t     *testing.T
	ns    string
	bin   string
	kube  *kubelet.Kubelet
	store *backup.S3
	// kubeDir is the harness's directory (volumes, container logs).
	kubeDir string
}

func startBuildWorld(t *testing.T) *buildWorld {
	t.Helper()
	ns := namespace(t)
	dir, err := pgtest.TempDir("homeostat-ci-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin, err := pgtest.BuildHomeostat(dir)
	if err != nil {
		t.Fatal(err)
	}
	s3, err := s3test.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s3.Stop() })
	store, err := s3.Open(context.Background(), "build-logs", "ci")
	if err != nil {
		t.Fatal(err)
	}
	kubeDir := filepath.Join(dir, "kubelet")
	kube, err := kubelet.Start(env.Client, kubelet.Options{Binary: bin, HomeostatImage: "registry.example/homeostat:test",
		Dir: kubeDir, Logf: t.Logf, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kube.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(kube.Logs(3000))
		}
	})
	for name, data := range map[string]map[string]string{
		"s3-logs": {"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey},
		"deploy":  {"token": deployToken},
	} {
		if err := env.Client.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}); err != nil {
			t.Fatal(err)
		}
	}
	return &buildWorld{t: t, ns: ns, bin: bin, kube: kube, store: store, kubeDir: kubeDir}
}

// homeostat runs the real binary against the test API server.
func (w *buildWorld) homeostat(args ...string) (string, string, error) {
	cmd := exec.Command(w.bin, append(args, "--kubeconfig", env.Kubeconfig, "-n", w.ns)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// agentLog is the agent container's output as the harness captured it
// (what `kubectl logs` would show), without the harness's command line.
func (w *buildWorld) agentLog(pod string) string {
	b, err := os.ReadFile(filepath.Join(w.kubeDir, "logs", fmt.Sprintf("pod_%s_%s_agent.log", w.ns, pod)))
	if err != nil {
		w.t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), "\n")
	return rest
}

func (w *buildWorld) storedLog(build string) (string, error) {
	var b bytes.Buffer
	err := buildlog.Read(context.Background(), w.store, w.ns, build, &b)
	return b.String(), err
}

// TestBuildsRunForReal is the proof, with one build per branch:
//   - main: its log streams to MinIO while it runs, the secret is masked,
//     the psql step reaches the PostgreSQL service, and once the pod is
//     deleted `homeostat ci logs` prints the same log from the store; the
//     log goes when the Build goes;
//   - feature/x, not allowed the secret: failed naming the secret and the
//     line, no pod, and the value nowhere.
func TestBuildsRunForReal(t *testing.T) {
	w := startBuildWorld(t)
	ctx := context.Background()
	startControllers(t, w.ns)
	repo := newRepo(t)
	mainCommit := repo.commit(map[string]string{".homeostat-ci.yaml": e2eSteps})
	repo.git("checkout", "-q", "-b", "feature/x")
	featureCommit := repo.commit(map[string]string{"feature.txt": "x"})
	newPipeline(t, w.ns, "shop", repo.URL(), func(p *v1alpha1.Pipeline) {
		p.Spec.Branches = []string{"main", "feature/*"}
		p.Spec.Concurrency = 2
		p.Spec.Logs = &v1alpha1.PipelineLogs{S3: v1alpha1.S3Store{Endpoint: w.store.Config().Endpoint, Bucket: "build-logs", Path: "ci",
			Insecure: true, SecretRef: v1alpha1.LocalObjectReference{Name: "s3-logs"}}}
		p.Spec.Secrets = []v1alpha1.PipelineSecret{{Name: "deploy", Branches: []string{"main", "release/*"}}}
	})
	mainBuild, featureBuild := BuildName("shop", "main", mainCommit), BuildName("shop", "feature/x", featureCommit)

	t.Run("a branch not allowed the secret fails naming it, without a pod", func(t *testing.T) {
		b := waitPhaseWithin(t, w.ns, featureBuild, v1alpha1.BuildFailed, 60*time.Second)
		want := `.homeostat-ci.yaml:4: secretEnv.TOKEN: secret "deploy" refused: pipeline shop allows it only on branches [main release/*], not on "feature/x" (spec.secrets)`
		if b.Status.Message != want || b.Status.Pod != "" {
			t.Fatalf("status %+v\nwant message %s", b.Status, want)
		}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: featureBuild}, &corev1.Pod{}); !apierrors.IsNotFound(err) {
			t.Fatalf("a pod exists for the refused build: %v", err)
		}
	})

	t.Run("the log streams to the store while the build runs", func(t *testing.T) {
		waitPhaseWithin(t, w.ns, mainBuild, v1alpha1.BuildPaused, 3*time.Minute)
		eventually(t, "the first step's output in the store", func() (bool, string) {
			got, err := w.storedLog(mainBuild)
			return strings.Contains(got, "[hello] hello from main\n"), fmt.Sprintf("%q %v", got, err)
		})
		if _, errOut, err := w.homeostat("ci", "resume", mainBuild); err != nil {
			t.Fatalf("resume: %v %s", err, errOut)
		}
	})

	var log string
	t.Run("the psql step reaches the PostgreSQL service", func(t *testing.T) {
		b := waitFinished(t, w.ns, mainBuild, 3*time.Minute)
		log = w.agentLog(b.Status.Pod)
		if b.Status.Phase != v1alpha1.BuildSucceeded {
			t.Fatalf("build %s: %+v\n%s", b.Status.Phase, b.Status, log)
		}
		for _, want := range []string{"[hello] token is ***\n", "[psql] 42\n", "[psql] succeeded (exit 0)"} {
			if !strings.Contains(log, want) {
				t.Errorf("agent log lacks %q:\n%s", want, log)
			}
		}
		if want := "s3://build-logs/ci/" + w.ns + "/" + mainBuild + "/log.gz"; b.Status.LogURL != want {
			t.Errorf("logURL %q, want %q", b.Status.LogURL, want)
		}
	})

	t.Run("ci logs prints the same log from the store once the pod is gone", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: mainBuild}}
		if err := env.Client.Delete(ctx, pod); err != nil {
			t.Fatal(err)
		}
		eventually(t, "pod gone", func() (bool, string) {
			err := env.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
		out, errOut, err := w.homeostat("ci", "logs", mainBuild)
		if err != nil || out != log {
			t.Fatalf("ci logs: %v %s\ngot:\n%s\nwant (the pod's log):\n%s", err, errOut, out, log)
		}
	})

	t.Run("the secret's value appears nowhere", func(t *testing.T) {
		w.assertNowhere(deployToken)
	})

	t.Run("the log is deleted with its build", func(t *testing.T) {
		if err := env.Client.Delete(ctx, &v1alpha1.Build{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: mainBuild}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "build and its log gone", func() (bool, string) {
			err := env.Client.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: mainBuild}, &v1alpha1.Build{})
			objs, lerr := w.store.List(ctx, buildlog.Dir(w.ns, mainBuild))
			return apierrors.IsNotFound(err) && lerr == nil && len(objs) == 0, fmt.Sprintf("get: %v, objects: %v %v", err, objs, lerr)
		})
	})
}

// assertNowhere fails when value is in any pod spec, build, event or
// stored object of the world.
func (w *buildWorld) assertNowhere(value string) {
	w.t.Helper()
	ctx := context.Background()
	var pods corev1.PodList
	var builds v1alpha1.BuildList
	var events corev1.EventList
	for _, l := range []client.ObjectList{&pods, &builds, &events} {
		if err := env.Client.List(ctx, l, client.InNamespace(w.ns)); err != nil {
			w.t.Fatal(err)
		}
		b, _ := json.Marshal(l)
		if bytes.Contains(b, []byte(value)) {
			w.t.Errorf("the value is in a %T: %s", l, b)
		}
	}
	objs, err := w.store.List(ctx, "")
	if err != nil {
		w.t.Fatal(err)
	}
	for _, o := range objs {
		build := strings.Split(strings.TrimPrefix(o.Key, w.ns+"/"), "/")[0]
		got, err := w.storedLog(build)
		if err != nil || strings.Contains(got, value) {
			w.t.Errorf("stored log %s: %v, holds the value: %v", o.Key, err, strings.Contains(got, value))
		}
	}
	if len(objs) == 0 {
		w.t.Error("the store holds no log at all")
	}
}

func waitPhaseWithin(t *testing.T, ns, name, phase string, within time.Duration) *v1alpha1.Build {
	t.Helper()
	deadline := time.Now().Add(within)
	var b v1alpha1.Build
	for {
		err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &b)
		if err == nil && b.Status.Phase == phase {
			return &b
		}
		if time.Now().After(deadline) {
			t.Fatalf("build %s never reached %s within %s: %v %+v", name, phase, within, err, b.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFinished waits until a build has succeeded or failed.
func waitFinished(t *testing.T, ns, name string, within time.Duration) *v1alpha1.Build {
	t.Helper()
	var b v1alpha1.Build
	deadline := time.Now().Add(within)
	for {
		err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &b)
		if err == nil && finished(&b) {
			return &b
		}
		if time.Now().After(deadline) {
			t.Fatalf("build %s not finished within %s: %v %+v", name, within, err, b.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
