package ci

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	"homeostat.dev/homeostat/sync/source"
)

// countingGit counts ls-remote calls to a real repository.
type countingGit struct {
	Git
	polls atomic.Int32
}

func (c *countingGit) LsRemote(ctx context.Context, url string, auth source.Auth) (map[string]string, error) {
	c.polls.Add(1)
	return c.Git.LsRemote(ctx, url, auth)
}

// TestPollsFollowTheInterval: writing its own status after a poll must not
// make the pipeline poll again; the next poll waits for the interval.
func TestPollsFollowTheInterval(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	repo.commit(map[string]string{".homeostat-ci.yaml": goodSteps})
	git := &countingGit{Git: SourceGit{}}
	startControllersWith(t, ns, git)
	newPipeline(t, ns, "shop", repo.URL(), func(p *v1alpha1.Pipeline) { p.Spec.Interval.Duration = 2 * time.Second })
	time.Sleep(5 * time.Second) // the interval is what is under test
	// One poll at creation, then one per 2s interval: 3, maybe 4 with the
	// reconcile of the status patch. A status-triggered loop makes dozens.
	if n := git.polls.Load(); n < 2 || n > 4 {
		t.Fatalf("%d polls in 5s with a 2s interval", n)
	}
}
