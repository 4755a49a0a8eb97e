package ci

import (
	"context"
	"strings"
	"testing"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// TestVanishedCommitFailsTheBuild: a build of a commit the repository no
// longer has (force-pushed away) fails at once instead of retrying forever.
func TestVanishedCommitFailsTheBuild(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	repo.commit(map[string]string{".homeostat-ci.yaml": goodSteps})
	startControllers(t, ns)
	p := newPipeline(t, ns, "shop", repo.URL(), func(p *v1alpha1.Pipeline) { p.Spec.Suspend = true })
	b := NewBuild(p, "main", strings.Repeat("ab", 20))
	if err := env.Client.Create(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, b.Name, v1alpha1.BuildFailed)
	if !strings.Contains(got.Status.Message, "clone abababababab: ") || got.Status.Pod != "" {
		t.Fatalf("status %+v", got.Status)
	}
}
