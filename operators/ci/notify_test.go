package ci

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/operators/ci/agent"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// received is one request the test's HTTP server got.
type received struct {
	path, auth string
	body       map[string]any
}

// httpReceiver is a real HTTP server on 127.0.0.1 recording every request.
func httpReceiver(t *testing.T) (*httptest.Server, chan received) {
	t.Helper()
	got := make(chan received, 20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		got <- received{r.URL.Path, r.Header.Get("Authorization"), body}
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func next(t *testing.T, ch chan received, path string) received {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case r := <-ch:
			if r.path == path {
				return r
			}
		case <-timeout:
			t.Fatalf("no request to %s arrived", path)
		}
	}
}

func createSecret(t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	if err := env.Client.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// notifyingPipeline is a pipeline that posts plain JSON to srv and sets
// GitHub commit statuses through srv.
func notifyingPipeline(t *testing.T, ns string, repo *gitRepo, srv *httptest.Server) {
	t.Helper()
	createSecret(t, ns, "ci-chat", map[string]string{"url": srv.URL + "/hook/s3cret"})
	createSecret(t, ns, "forge", map[string]string{"token": "tok3n"})
	newPipeline(t, ns, "shop", repo.URL(), func(p *v1alpha1.Pipeline) {
		p.Spec.Notify = &v1alpha1.Notify{
			Webhook:      &v1alpha1.WebhookNotify{SecretRef: v1alpha1.LocalObjectReference{Name: "ci-chat"}, Format: "json"},
			CommitStatus: &v1alpha1.CommitStatusNotify{Provider: "github", URL: srv.URL, SecretRef: v1alpha1.LocalObjectReference{Name: "forge"}},
		}
	})
}

// TestFailedBuildNotifies plays the kubelet ending the pod with the agent's
// result of a failed step, and expects the Build status to carry the step
// results and both notifications to arrive at a real HTTP server.
func TestFailedBuildNotifies(t *testing.T) {
	ns := namespace(t)
	srv, got := httpReceiver(t)
	repo := newRepo(t)
	commit := repo.commit(map[string]string{".homeostat-ci.yaml": goodSteps})
	repo.serveHTTP()
	startControllers(t, ns)
	notifyingPipeline(t, ns, repo, srv)
	name := BuildName("shop", "main", commit)
	statusPath := "/repos/acme/shop/statuses/" + commit

	waitPhase(t, ns, name, v1alpha1.BuildRunning)
	if r := next(t, got, statusPath); r.body["state"] != "pending" || r.auth != "Bearer tok3n" || r.body["context"] != "homeostat/shop" {
		t.Fatalf("pending status %+v", r)
	}

	zero, two := int32(0), int32(2)
	result := agent.Result{Phase: v1alpha1.BuildFailed, FailedStep: "test", Message: "step test: exit code 2", Duration: "3s",
		Steps: []v1alpha1.StepStatus{
			{Name: "lint", Phase: agent.StepSucceeded, ExitCode: &zero, Duration: "1s"},
			{Name: "test", Phase: agent.StepFailed, ExitCode: &two, Duration: "2s"},
			{Name: "build", Phase: agent.StepSkipped},
		}}
	finishPod(t, ns, name, corev1.PodFailed, 1, string(agent.Encode(result, agent.MaxResultSize)))
	b := waitPhase(t, ns, name, v1alpha1.BuildFailed)
	if b.Status.FailedStep != "test" || b.Status.Message != "step test: exit code 2" || len(b.Status.Steps) != 3 ||
		*b.Status.Steps[1].ExitCode != 2 || b.Status.CompletedAt == nil || b.Status.Duration == "" {
		t.Fatalf("status %+v", b.Status)
	}

	hook := next(t, got, "/hook/s3cret")
	want := map[string]any{"namespace": ns, "pipeline": "shop", "build": name, "repository": repo.URL(), "commit": commit,
		"branch": "main", "result": "Failed", "failedStep": "test", "duration": b.Status.Duration, "message": "step test: exit code 2"}
	if !equalJSON(hook.body, want) {
		t.Fatalf("webhook body %v, want %v", hook.body, want)
	}
	if r := next(t, got, statusPath); r.body["state"] != "failure" || r.body["description"] != "build failed at step test in "+b.Status.Duration {
		t.Fatalf("final status %+v", r)
	}
	eventually(t, "notified", func() (bool, string) {
		b := getBuild(t, ns, name)
		return b.Status.Notified, ""
	})
	eventually(t, "Started and Failed events on the build", func() (bool, string) {
		var list eventsv1.EventList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		seen := map[string]string{}
		for _, e := range list.Items {
			if e.Regarding.Kind == "Build" && e.Regarding.Name == name {
				seen[e.Reason] = e.Note
			}
		}
		return seen["Failed"] == "step test: exit code 2" && strings.HasPrefix(seen["Started"], "pod "+name+" runs commit "), fmt.Sprint(seen)
	})
}

// TestBadStepsFileFailsTheBuild: a steps file with a mistake is a failed
// build whose status and notification name the file and line; the
// controller carries on.
func TestBadStepsFileFailsTheBuild(t *testing.T) {
	ns := namespace(t)
	srv, got := httpReceiver(t)
	repo := newRepo(t)
	commit := repo.commit(map[string]string{".homeostat-ci.yaml": "image: golang:1.26\nsteps:\n  - name: test\n    run: go test ./...\n  - name: broken\n"})
	startControllers(t, ns)
	notifyingPipeline(t, ns, repo, srv)
	name := BuildName("shop", "main", commit)
	b := waitPhase(t, ns, name, v1alpha1.BuildFailed)
	const want = ".homeostat-ci.yaml:5: steps[1].run: required (or pause: true)"
	if b.Status.Message != want || b.Status.Pod != "" {
		t.Fatalf("status %+v", b.Status)
	}
	stalled := false
	for _, c := range b.Status.Conditions {
		stalled = stalled || (c.Type == v1alpha1.ConditionStalled && c.Status == metav1.ConditionTrue && c.Reason == ReasonStepsFileInvalid)
	}
	if !stalled {
		t.Fatalf("conditions %+v", b.Status.Conditions)
	}
	if hook := next(t, got, "/hook/s3cret"); hook.body["message"] != want || hook.body["result"] != "Failed" {
		t.Fatalf("webhook %+v", hook)
	}

	// The controller still works: a fixed file builds.
	fixed := repo.commit(map[string]string{".homeostat-ci.yaml": goodSteps})
	c := &PipelineReconciler{Client: env.Client, Git: SourceGit{}}
	p := &v1alpha1.Pipeline{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}}
	poll(t, &controllers{pipelines: c}, p)
	waitPhase(t, ns, BuildName("shop", "main", fixed), v1alpha1.BuildRunning)
}

func TestMissingStepsFileFailsTheBuild(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	commit := repo.commit(map[string]string{"README": "no ci here"})
	startControllers(t, ns)
	newPipeline(t, ns, "shop", repo.URL(), nil)
	b := waitPhase(t, ns, BuildName("shop", "main", commit), v1alpha1.BuildFailed)
	if b.Status.Message != ".homeostat-ci.yaml: no steps file at commit "+commit[:12] {
		t.Fatalf("status %+v", b.Status)
	}
}

// TestCloneFailureIsReported: an init container that failed (the kubelet
// shows its exit code and message) fails the build with that message.
func TestCloneFailureIsReported(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	commit := repo.commit(map[string]string{".homeostat-ci.yaml": goodSteps})
	startControllers(t, ns)
	newPipeline(t, ns, "shop", repo.URL(), nil)
	name := BuildName("shop", "main", commit)
	waitPhase(t, ns, name, v1alpha1.BuildRunning)
	pod := getPod(t, ns, name)
	pod.Status.Phase = corev1.PodFailed
	pod.Status.InitContainerStatuses = []corev1.ContainerStatus{
		{Name: "install", Image: pod.Spec.InitContainers[0].Image, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}},
		{Name: "clone", Image: pod.Spec.InitContainers[1].Image, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", Message: "clone: authentication required"}}},
	}
	if err := env.Client.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	b := waitPhase(t, ns, name, v1alpha1.BuildFailed)
	if b.Status.Message != "init container clone failed (exit 1): clone: authentication required" {
		t.Fatalf("status %+v", b.Status)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
