package ci

import (
	"context"
	"os"
	"path/filepath"
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

// TestStepsFileLinkOutOfTheRepositoryIsRefused: a steps file that is a
// symbolic link to the controller's own files (a service account token) is
// a failed build, and nothing of the target is read into its status.
func TestStepsFileLinkOutOfTheRepositoryIsRefused(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	secret := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secret, []byte("image: s3cr3t\nsteps: [{name: a, run: b}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(repo.dir, ".homeostat-ci.yaml")); err != nil {
		t.Fatal(err)
	}
	commit := repo.commit(nil)
	startControllers(t, ns)
	newPipeline(t, ns, "shop", repo.URL(), nil)
	b := waitPhase(t, ns, BuildName("shop", "main", commit), v1alpha1.BuildFailed)
	if b.Status.Message != ".homeostat-ci.yaml: the steps file must be a file inside the repository (not a link out of it)" || b.Status.Pod != "" {
		t.Fatalf("status %+v", b.Status)
	}
}

func TestHugeStepsFileIsRefused(t *testing.T) {
	ns := namespace(t)
	repo := newRepo(t)
	commit := repo.commit(map[string]string{".homeostat-ci.yaml": goodSteps + "# " + strings.Repeat("x", maxStepsFile) + "\n"})
	startControllers(t, ns)
	newPipeline(t, ns, "shop", repo.URL(), nil)
	b := waitPhase(t, ns, BuildName("shop", "main", commit), v1alpha1.BuildFailed)
	if b.Status.Message != ".homeostat-ci.yaml: the steps file is larger than 1048576 bytes" {
		t.Fatalf("status %+v", b.Status)
	}
}
