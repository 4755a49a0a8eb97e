package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/gittestserver"
	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	gitcache "github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// servedRepo makes a repository whose git directory gitDir a git server (or
// file://) can serve, with two commits on main; it returns their hashes.
func servedRepo(t *testing.T, gitDir string) (first, second string) {
	t.Helper()
	work := t.TempDir()
	repo, err := git.InitWithOptions(filesystem.NewStorage(osfs.New(gitDir), gitcache.NewObjectLRUDefault()), osfs.New(work),
		git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")})
	if err != nil {
		t.Fatal(err)
	}
	wt, _ := repo.Worktree()
	var hashes []string
	for i, content := range []string{"steps: one\n", "steps: two\n"} {
		if err := os.WriteFile(filepath.Join(work, ".homeostat-ci.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Add(".homeostat-ci.yaml"); err != nil {
			t.Fatal(err)
		}
		h, err := wt.Commit("commit", &git.CommitOptions{Author: &object.Signature{Name: "CI", Email: "ci@example.com", When: time.Unix(int64(1700000000+i), 0)}})
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h.String())
	}
	return hashes[0], hashes[1]
}

// runCaptured runs the command in process and returns its exit code and stderr.
func runCaptured(t *testing.T, args ...string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	code := run(args)
	os.Stderr = saved
	_ = w.Close()
	return code, <-done
}

func TestGitCloneOverFile(t *testing.T) {
	gitDir := filepath.Join(t.TempDir(), "repo.git")
	first, _ := servedRepo(t, gitDir)
	dir := filepath.Join(t.TempDir(), "workspace")
	if code, stderr := runCaptured(t, "git", "clone", "--url", "file://"+gitDir, "--commit", first, "--dir", dir); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(dir, ".homeostat-ci.yaml")); err != nil || string(b) != "steps: one\n" {
		t.Errorf("checked-out file %q, %v", b, err)
	}
}

func TestGitCloneCredentialsFromSecretDirAndEnv(t *testing.T) {
	srv := gittestserver.NewGitServer(t.TempDir()).Auth("builder", "right-pw")
	_, second := servedRepo(t, filepath.Join(srv.Root(), "repo.git"))
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	defer srv.StopHTTP()
	url := srv.HTTPAddress() + "/repo.git"

	secretDir := func(password string) string {
		d := t.TempDir()
		for k, v := range map[string]string{"username": "builder", "password": password} {
			if err := os.WriteFile(filepath.Join(d, k), []byte(v), 0o400); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}

	dir := filepath.Join(t.TempDir(), "ws")
	if code, stderr := runCaptured(t, "git", "clone", "--url", url, "--commit", second, "--dir", dir, "--secret-dir", secretDir("right-pw")); code != exitOK {
		t.Fatalf("clone with the right password: exit %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ".homeostat-ci.yaml")); string(b) != "steps: two\n" {
		t.Errorf("checked-out file %q", b)
	}

	code, stderr := runCaptured(t, "git", "clone", "--url", url, "--commit", second, "--dir", t.TempDir(), "--secret-dir", secretDir("wrong-pw"))
	if code != exitFailure || !strings.Contains(stderr, "authentication") || strings.Contains(stderr, "wrong-pw") {
		t.Errorf("wrong password: exit %d, stderr %q; want 1, an authentication error, no password", code, stderr)
	}

	t.Setenv("HOMEOSTAT_GIT_USERNAME", "builder")
	t.Setenv("HOMEOSTAT_GIT_PASSWORD", "right-pw")
	if code, stderr := runCaptured(t, "git", "clone", "--url", url, "--commit", second, "--dir", filepath.Join(t.TempDir(), "ws")); code != exitOK {
		t.Errorf("credentials from env: exit %d: %s", code, stderr)
	}
}

func TestGitCloneUsage(t *testing.T) {
	if code, _ := runCaptured(t, "git", "clone", "--url", "file:///x"); code != exitUsage {
		t.Errorf("missing flags: exit %d, want %d", code, exitUsage)
	}
	if code, _ := runCaptured(t, "git", "clone", "--password", "x"); code != exitUsage {
		t.Errorf("a --password flag must not exist: exit %d, want %d", code, exitUsage)
	}
}
