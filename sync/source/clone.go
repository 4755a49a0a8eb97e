package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
)

// Clone checks out one exact commit (a full hash) into dir, which must be
// empty or absent: a working copy with .git, HEAD on the branch that points
// to the commit if there is one, else detached. CI build pods use it, so a
// build sees exactly the commit its Build names. Only what that commit needs
// is fetched when the server allows; the "origin" remote is recorded without
// credentials.
func Clone(ctx context.Context, url, commit, dir string, auth Auth) (err error) {
	s, err := newSession("clone", url, auth)
	if err != nil {
		return err
	}
	want, err := parseCommit(s.ep, "clone", commit)
	if err != nil {
		return err
	}
	if err := checkEmptyDir(dir); err != nil {
		return err
	}
	refs, err := s.list(ctx, "clone")
	if err != nil {
		return err
	}
	// dir was empty: a failed clone leaves it empty again, so a retry of the
	// same command can succeed.
	defer func() {
		if err != nil {
			emptyDir(dir)
		}
	}()
	h := &repoHolder{}
	h.reset = func() error {
		if err := os.RemoveAll(filepath.Join(dir, git.GitDirName)); err != nil {
			return fmt.Errorf("clone into %s: %w", dir, err)
		}
		repo, err := git.PlainInit(dir, false)
		if err != nil {
			return fmt.Errorf("clone into %s: %w", dir, err)
		}
		if _, err := repo.CreateRemote(&config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{s.ep.display}}); err != nil {
			return fmt.Errorf("clone into %s: %w", dir, err)
		}
		h.repo = repo
		return nil
	}
	if err := h.reset(); err != nil {
		return err
	}
	name, err := fetchCommit(ctx, "clone", s, h, refs, want)
	if err != nil {
		return err
	}
	repo := h.repo
	wt, err := repo.Worktree()
	if err != nil {
		return fmt.Errorf("clone into %s: %w", dir, err)
	}
	opts := &git.CheckoutOptions{Hash: want, Force: true}
	if name.IsBranch() {
		opts = &git.CheckoutOptions{Branch: name, Force: true}
	}
	if err := wt.Checkout(opts); err != nil {
		return fmt.Errorf("clone into %s: check out %s: %w", dir, want, err)
	}
	return nil
}

func checkEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case os.IsNotExist(err):
		return nil
	case err != nil:
		return fmt.Errorf("clone into %s: %w", dir, err)
	case len(entries) > 0:
		return fmt.Errorf("clone into %s: directory is not empty", dir)
	}
	return nil
}

func emptyDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
