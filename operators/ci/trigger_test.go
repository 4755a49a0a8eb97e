package ci

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// poll runs one poll of the pipeline to its end, beside the manager's own
// (the two racing is one more thing the deterministic names must survive).
func poll(t *testing.T, c *controllers, p *v1alpha1.Pipeline) *v1alpha1.Pipeline {
	t.Helper()
	key := types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
	if _, err := c.pipelines.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatalf("poll %s: %v", key, err)
	}
	var got v1alpha1.Pipeline
	if err := env.Client.Get(context.Background(), key, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

// trigger wakes the pipeline the way a push webhook does and waits until
// its heads show commit on branch.
func trigger(t *testing.T, c *controllers, p *v1alpha1.Pipeline, branch, commit string) *v1alpha1.Pipeline {
	t.Helper()
	if n, err := c.pipelines.Trigger(context.Background(), []string{p.Spec.Repo}); err != nil || n != 1 {
		t.Fatalf("trigger woke %d pipelines: %v", n, err)
	}
	var got v1alpha1.Pipeline
	eventually(t, "a poll that sees "+branch+" at "+commit, func() (bool, string) {
		err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: p.Namespace, Name: p.Name}, &got)
		for _, h := range got.Status.Heads {
			if h.Branch == branch && h.Commit == commit {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%v %+v", err, got.Status)
	})
	return &got
}

func sortedBuildNames(t *testing.T, ns string) []string {
	names := buildNames(builds(t, ns))
	sort.Strings(names)
	return names
}

func TestNewCommitMakesExactlyOneBuild(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	first := repo.commit(map[string]string{".homeostat-ci.yaml": goodSteps})
	c := startControllers(t, ns)
	p := newPipeline(t, ns, "shop", repo.URL(), nil)
	firstBuild := BuildName("shop", "main", first)
	eventually(t, "the first build", func() (bool, string) {
		names := sortedBuildNames(t, ns)
		return reflect.DeepEqual(names, []string{firstBuild}), fmt.Sprint(names)
	})
	b := getBuild(t, ns, firstBuild)
	if b.Spec.Commit != first || b.Spec.Branch != "main" || b.Spec.Repo != repo.URL() || b.Spec.Pipeline.Name != "shop" {
		t.Fatalf("build spec %+v", b.Spec)
	}
	if len(b.OwnerReferences) != 1 || b.OwnerReferences[0].Kind != "Pipeline" {
		t.Fatalf("build owner %+v", b.OwnerReferences)
	}

	// Polling again without a new commit makes nothing.
	poll(t, c, p)
	if names := sortedBuildNames(t, ns); !reflect.DeepEqual(names, []string{firstBuild}) {
		t.Fatalf("a poll without a new commit made builds: %v", names)
	}

	second := repo.commit(map[string]string{"main.go": "package main\n"})
	got := trigger(t, c, p, "main", second)
	want := []string{firstBuild, BuildName("shop", "main", second)}
	sort.Strings(want)
	if names := sortedBuildNames(t, ns); !reflect.DeepEqual(names, want) {
		t.Fatalf("builds %v, want %v", names, want)
	}
	if got.Status.LastBuild != BuildName("shop", "main", second) ||
		!reflect.DeepEqual(got.Status.Heads, []v1alpha1.BranchHead{{Branch: "main", Commit: second}}) {
		t.Fatalf("pipeline status %+v", got.Status)
	}
	poll(t, c, p)
	if names := sortedBuildNames(t, ns); !reflect.DeepEqual(names, want) {
		t.Fatalf("a second poll made builds: %v", names)
	}
}

func TestBranchFilters(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	main := repo.commit(map[string]string{".homeostat-ci.yaml": goodSteps})
	repo.git("checkout", "-q", "-b", "release/1.2")
	release := repo.commit(map[string]string{"r": "1"})
	repo.git("checkout", "-q", "-b", "feature/x")
	repo.commit(map[string]string{"f": "1"})
	repo.git("checkout", "-q", "-b", "releases")
	repo.commit(map[string]string{"g": "1"})
	c := startControllers(t, ns)
	p := newPipeline(t, ns, "shop", repo.URL(), func(p *v1alpha1.Pipeline) {
		p.Spec.Branches = []string{"main", "release/*"}
		p.Spec.Concurrency = 5
	})
	got := poll(t, c, p)
	want := []string{BuildName("shop", "main", main), BuildName("shop", "release/1.2", release)}
	sort.Strings(want)
	if names := sortedBuildNames(t, ns); !reflect.DeepEqual(names, want) {
		t.Fatalf("builds %v, want %v", names, want)
	}
	if want := []v1alpha1.BranchHead{{Branch: "main", Commit: main}, {Branch: "release/1.2", Commit: release}}; !reflect.DeepEqual(got.Status.Heads, want) {
		t.Fatalf("heads %+v", got.Status.Heads)
	}
}

// TestNoDuplicateBuildsAfterRestart restarts the controllers after the
// pipeline lost its memory of built heads (as when a status write is lost
// in a crash): the deterministic build names keep the commit from being
// built twice.
func TestNoDuplicateBuildsAfterRestart(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	commit := repo.commit(map[string]string{".homeostat-ci.yaml": goodSteps})
	c := startControllers(t, ns)
	p := newPipeline(t, ns, "shop", repo.URL(), nil)
	poll(t, c, p)
	want := []string{BuildName("shop", "main", commit)}
	if names := sortedBuildNames(t, ns); !reflect.DeepEqual(names, want) {
		t.Fatalf("builds %v", names)
	}
	c.stop()

	var cur v1alpha1.Pipeline
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "shop"}, &cur); err != nil {
		t.Fatal(err)
	}
	cur.Status.Heads, cur.Status.LastBuild = nil, ""
	if err := env.Client.Status().Update(context.Background(), &cur); err != nil {
		t.Fatal(err)
	}

	c = startControllers(t, ns)
	// The restarted manager polls at once; wait for that, then poll again.
	trigger(t, c, p, "main", commit)
	got := poll(t, c, p)
	if names := sortedBuildNames(t, ns); !reflect.DeepEqual(names, want) {
		t.Fatalf("builds after restart %v, want %v", names, want)
	}
	if len(got.Status.Heads) != 1 || got.Status.Heads[0].Commit != commit {
		t.Fatalf("heads after restart %+v", got.Status.Heads)
	}
}

func TestPollFailureIsReported(t *testing.T) {
	ns := namespace(t)
	startControllers(t, ns)
	newPipeline(t, ns, "gone", "file:///nonexistent/repo", nil)
	eventually(t, "a PollFailed condition", func() (bool, string) {
		var p v1alpha1.Pipeline
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "gone"}, &p); err != nil {
			return false, err.Error()
		}
		for _, c := range p.Status.Conditions {
			if c.Type == v1alpha1.ConditionReady && c.Status == "False" && c.Reason == ReasonPollFailed && c.Message != "" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", p.Status.Conditions)
	})
}
