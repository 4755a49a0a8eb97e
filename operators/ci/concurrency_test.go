package ci

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"homeostat.dev/homeostat/operators/ci/agent"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func succeeded() string {
	zero := int32(0)
	return string(agent.Encode(agent.Result{Phase: v1alpha1.BuildSucceeded, Duration: "1s",
		Steps: []v1alpha1.StepStatus{{Name: "test", Phase: agent.StepSucceeded, ExitCode: &zero, Duration: "1s"}}}, agent.MaxResultSize))
}

// TestConcurrencyCapHoldsBuildsPending: with a cap of one, the second
// build waits Pending until the first finishes, then starts by itself.
func TestConcurrencyCapHoldsBuildsPending(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	repo.commit(map[string]string{".homeostat-ci.yaml": goodSteps})
	repo.git("branch", "dev")
	startControllers(t, ns)
	newPipeline(t, ns, "shop", repo.URL(), func(p *v1alpha1.Pipeline) {
		p.Spec.Branches = []string{"*"}
		p.Spec.Concurrency = 1
	})
	var running, waiting v1alpha1.Build
	eventually(t, "one running and one waiting build", func() (bool, string) {
		bs := builds(t, ns)
		var phases []string
		running, waiting = v1alpha1.Build{}, v1alpha1.Build{}
		for _, b := range bs {
			phases = append(phases, b.Name+"="+b.Status.Phase)
			switch b.Status.Phase {
			case v1alpha1.BuildRunning:
				running = b
			case v1alpha1.BuildPending:
				waiting = b
			}
		}
		sort.Strings(phases)
		return len(bs) == 2 && running.Name != "" && waiting.Name != "", strings.Join(phases, " ")
	})
	if waiting.Status.Message != "waiting: 1 of 1 concurrent builds running" || waiting.Status.Pod != "" {
		t.Fatalf("waiting build %+v", waiting.Status)
	}
	var pod corev1.Pod
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: waiting.Name}, &pod); err == nil {
		t.Fatalf("the waiting build has a pod")
	}
	// Still only one running a moment later: the cap holds across reconciles.
	if b := getBuild(t, ns, waiting.Name); b.Status.Phase != v1alpha1.BuildPending {
		t.Fatalf("waiting build moved to %s", b.Status.Phase)
	}

	finishPod(t, ns, running.Name, corev1.PodSucceeded, 0, succeeded())
	waitPhase(t, ns, running.Name, v1alpha1.BuildSucceeded)
	b := waitPhase(t, ns, waiting.Name, v1alpha1.BuildRunning)
	if b.Status.Pod != waiting.Name {
		t.Fatalf("status %+v", b.Status)
	}
}

// TestHistoryKeepsTheNewestFinishedBuilds: with history 1, finishing a
// second build deletes the first.
func TestHistoryKeepsTheNewestFinishedBuilds(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	first := repo.commit(map[string]string{".homeostat-ci.yaml": goodSteps})
	c := startControllers(t, ns)
	p := newPipeline(t, ns, "shop", repo.URL(), func(p *v1alpha1.Pipeline) { p.Spec.History = 1 })
	firstName := BuildName("shop", "main", first)
	waitPhase(t, ns, firstName, v1alpha1.BuildRunning)
	finishPod(t, ns, firstName, corev1.PodSucceeded, 0, succeeded())
	waitPhase(t, ns, firstName, v1alpha1.BuildSucceeded)

	second := repo.commit(map[string]string{"x": "1"})
	trigger(t, c, p, "main", second)
	secondName := BuildName("shop", "main", second)
	waitPhase(t, ns, secondName, v1alpha1.BuildRunning)
	if names := buildNames(builds(t, ns)); len(names) != 2 {
		t.Fatalf("a running build counted against the history: %v", names)
	}
	finishPod(t, ns, secondName, corev1.PodSucceeded, 0, succeeded())
	waitPhase(t, ns, secondName, v1alpha1.BuildSucceeded)
	eventually(t, "the oldest build deleted", func() (bool, string) {
		names := buildNames(builds(t, ns))
		return len(names) == 1 && names[0] == secondName, fmt.Sprint(names)
	})
}
