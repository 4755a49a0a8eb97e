package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	git "github.com/go-git/go-git/v5"
)

func TestLsRemote(t *testing.T) {
	srv, fx := newServer(t)
	srv.Auth("alice", "pw")
	u := startHTTP(t, srv)
	for name, url := range map[string]string{"file": fx.repo.url(), "http": u} {
		t.Run(name, func(t *testing.T) {
			heads, err := LsRemote(context.Background(), url, Auth{Username: "alice", Password: "pw"})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"main": fx.c3, "feature": fx.f1}
			if len(heads) != len(want) || heads["main"] != want["main"] || heads["feature"] != want["feature"] {
				t.Errorf("heads %v, want %v (branches only, no tags)", heads, want)
			}
		})
	}
}

func TestLsRemoteEmptyRepository(t *testing.T) {
	empty := newTestRepo(t, t.TempDir())
	heads, err := LsRemote(context.Background(), empty.url(), Auth{})
	if err != nil || len(heads) != 0 {
		t.Errorf("empty repository: %v, %v; want no branches and no error", heads, err)
	}
	_, err = (&Fetcher{CacheDir: t.TempDir()}).Fetch(context.Background(), "ns/empty", empty.url(), Ref{}, Auth{})
	if !errors.Is(err, ErrRefNotFound) {
		t.Errorf("fetch of an empty repository: want ErrRefNotFound, got %v", err)
	}
}

func TestClone(t *testing.T) {
	srv, fx := newServer(t)
	srv.Auth("alice", "pw")
	u := startHTTP(t, srv)
	auth := Auth{Username: "alice", Password: "pw"}
	tests := []struct {
		name       string
		url        string
		commit     string
		wantBranch string // "" for a detached HEAD
		present    string
		absent     string
	}{
		{name: "branch tip over http", url: u, commit: fx.c3, wantBranch: "main", present: "apps/b.yaml", absent: "apps/a.yaml"},
		{name: "old commit over http", url: u, commit: fx.c1, present: "apps/a.yaml", absent: "apps/b.yaml"},
		{name: "other branch over file", url: fx.repo.url(), commit: fx.f1, wantBranch: "feature", present: "apps/f.yaml"},
		{name: "old commit over file", url: fx.repo.url(), commit: fx.c2, present: "apps/b.yaml", absent: "apps/f.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ws")
			if err := Clone(context.Background(), tt.url, tt.commit, dir, auth); err != nil {
				t.Fatal(err)
			}
			repo, err := git.PlainOpen(dir)
			if err != nil {
				t.Fatal(err)
			}
			head, err := repo.Head()
			if err != nil {
				t.Fatal(err)
			}
			if head.Hash().String() != tt.commit {
				t.Errorf("HEAD at %s, want %s", head.Hash(), tt.commit)
			}
			branch := ""
			if head.Name().IsBranch() {
				branch = head.Name().Short()
			}
			if branch != tt.wantBranch {
				t.Errorf("HEAD on branch %q, want %q", branch, tt.wantBranch)
			}
			if _, err := os.Stat(filepath.Join(dir, tt.present)); err != nil {
				t.Errorf("%s missing: %v", tt.present, err)
			}
			if tt.absent != "" {
				if _, err := os.Stat(filepath.Join(dir, tt.absent)); err == nil {
					t.Errorf("%s present at %s", tt.absent, tt.commit)
				}
			}
			wt, _ := repo.Worktree()
			if st, err := wt.Status(); err != nil || !st.IsClean() {
				t.Errorf("working copy not clean: %v %v", st, err)
			}
			cfg, err := os.ReadFile(filepath.Join(dir, ".git", "config"))
			if err != nil || strings.Contains(string(cfg), "pw@") {
				t.Errorf(".git/config has credentials or is missing: %v\n%s", err, cfg)
			}
		})
	}
}

func TestCloneRefusals(t *testing.T) {
	fx := newFixture(t, t.TempDir())
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Clone(context.Background(), fx.repo.url(), fx.c1, full, Auth{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("clone into a non-empty dir: %v", err)
	}
	if err := Clone(context.Background(), fx.repo.url(), "main", t.TempDir(), Auth{}); err == nil || !strings.Contains(err.Error(), "full 40-character") {
		t.Errorf("clone of a branch name: %v", err)
	}
	ws := t.TempDir()
	if err := Clone(context.Background(), fx.repo.url(), strings.Repeat("0", 40), ws, Auth{}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("clone of a missing commit: %v", err)
	}
	if entries, _ := os.ReadDir(ws); len(entries) != 0 {
		t.Errorf("failed clone left %d entries behind", len(entries))
	}
	if err := Clone(context.Background(), fx.repo.url(), fx.c1, ws, Auth{}); err != nil {
		t.Errorf("retry into the same directory: %v", err)
	}
}
