package source

import (
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	gitcache "github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// testRepo is a real git repository on disk that tests commit to. Its git
// directory (dir) is laid out like a bare repository, so git servers and
// file:// URLs serve it as it is; the working tree lives elsewhere.
type testRepo struct {
	t    testing.TB
	dir  string // the git directory
	work string // the working tree
	repo *git.Repository
	tick int
}

// newTestRepo creates a repository with branch main whose git directory is dir.
func newTestRepo(t testing.TB, dir string) *testRepo {
	t.Helper()
	work := t.TempDir()
	st := filesystem.NewStorage(osfs.New(dir), gitcache.NewObjectLRUDefault())
	repo, err := git.InitWithOptions(st, osfs.New(work), git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")})
	if err != nil {
		t.Fatalf("init %s: %v", dir, err)
	}
	return &testRepo{t: t, dir: dir, work: work, repo: repo}
}

func (r *testRepo) url() string { return "file://" + r.dir }

// commit writes files (path -> content; "" deletes) and commits them on the
// current branch.
func (r *testRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	// Removals first (with the folders they empty), then writes in order,
	// so a path may change from file to folder and back.
	paths := slices.Sorted(maps.Keys(files))
	for _, p := range paths {
		if files[p] != "" {
			continue
		}
		if _, err := wt.Remove(p); err != nil {
			r.t.Fatalf("remove %s: %v", p, err)
		}
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if os.Remove(filepath.Join(r.work, filepath.FromSlash(d))) != nil {
				break
			}
		}
	}
	for _, p := range paths {
		if files[p] == "" {
			continue
		}
		writeWork(r.t, r.work, p, files[p])
		if _, err := wt.Add(p); err != nil {
			r.t.Fatalf("add %s: %v", p, err)
		}
	}
	r.tick++
	h, err := wt.Commit(msg, &git.CommitOptions{
		Author:            &object.Signature{Name: "Ada Lovelace", Email: "ada@example.com", When: time.Unix(1700000000+int64(r.tick), 0)},
		AllowEmptyCommits: true,
	})
	if err != nil {
		r.t.Fatalf("commit: %v", err)
	}
	return h.String()
}

// branch creates a branch at HEAD and switches to it.
func (r *testRepo) branch(name string) {
	r.t.Helper()
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName(name), Create: true}); err != nil {
		r.t.Fatalf("branch %s: %v", name, err)
	}
}

// switchTo checks out an existing branch.
func (r *testRepo) switchTo(name string) {
	r.t.Helper()
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName(name)}); err != nil {
		r.t.Fatalf("switch to %s: %v", name, err)
	}
}

// tag tags HEAD; annotated tags carry a message.
func (r *testRepo) tag(name string, annotated bool) {
	r.t.Helper()
	head, err := r.repo.Head()
	if err != nil {
		r.t.Fatal(err)
	}
	var opts *git.CreateTagOptions
	if annotated {
		opts = &git.CreateTagOptions{Message: "release " + name, Tagger: &object.Signature{Name: "Ada", Email: "ada@example.com", When: time.Unix(1700000000, 0)}}
	}
	if _, err := r.repo.CreateTag(name, head.Hash(), opts); err != nil {
		r.t.Fatalf("tag %s: %v", name, err)
	}
}

func readFile(t testing.TB, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func writeWork(t testing.TB, work, p, content string) {
	t.Helper()
	full := filepath.Join(work, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
