package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// Patching a checkout of any commit into any other must give exactly what a
// fresh export gives: files removed, added, changed, turned into folders and
// back, and executable bits.
func TestApplyDiffMatchesExport(t *testing.T) {
	r := newTestRepo(t, t.TempDir())
	hashes := []string{
		r.commit("one", map[string]string{"a/b/c.yaml": "c\n", "d.yaml": "d\n", "keep.yaml": "k\n"}),
		r.commit("two", map[string]string{"e.yaml": "e\n"}),
		r.commit("three", map[string]string{"a/b/c.yaml": "", "a": "now a file\n", "d.yaml": "", "d.yaml/inner.yaml": "now a folder\n"}),
		r.commit("four", map[string]string{"a": "", "a/x.yaml": "folder again\n", "keep.yaml": "k2\n"}),
		r.commit("five", map[string]string{"e.yaml": "", "deep/er/still/f.yaml": "f\n"}),
	}
	commits := make([]*object.Commit, len(hashes))
	for i, h := range hashes {
		c, err := r.repo.CommitObject(plumbing.NewHash(h))
		if err != nil {
			t.Fatal(err)
		}
		commits[i] = c
	}
	for i, from := range commits {
		for j, to := range commits {
			dir := filepath.Join(t.TempDir(), "tree")
			if err := exportTree(from, dir); err != nil {
				t.Fatal(err)
			}
			if err := applyDiff(r.repo.Storer, from, to, dir); err != nil {
				t.Fatalf("%d -> %d: %v", i, j, err)
			}
			want := filepath.Join(t.TempDir(), "want")
			if err := exportTree(to, want); err != nil {
				t.Fatal(err)
			}
			if got, want := listTree(t, dir), listTree(t, want); got != want {
				t.Errorf("%d -> %d: patched\n%s\nexported\n%s", i, j, got, want)
			}
		}
	}
}

// craft stores a commit whose tree has the given entries, bypassing every
// check a git client makes, as a hostile repository could.
type craft struct {
	t  *testing.T
	st *memory.Storage
}

func (c craft) blob(content string) plumbing.Hash {
	o := c.st.NewEncodedObject()
	o.SetType(plumbing.BlobObject)
	w, _ := o.Writer()
	if _, err := w.Write([]byte(content)); err != nil {
		c.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		c.t.Fatal(err)
	}
	h, err := c.st.SetEncodedObject(o)
	if err != nil {
		c.t.Fatal(err)
	}
	return h
}

func (c craft) tree(entries ...object.TreeEntry) plumbing.Hash {
	o := c.st.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(o); err != nil {
		c.t.Fatal(err)
	}
	h, err := c.st.SetEncodedObject(o)
	if err != nil {
		c.t.Fatal(err)
	}
	return h
}

func (c craft) commit(tree plumbing.Hash) *object.Commit {
	sig := object.Signature{Name: "Mallory", Email: "m@example.com", When: time.Unix(1700000000, 0)}
	o := c.st.NewEncodedObject()
	if err := (&object.Commit{Author: sig, Committer: sig, Message: "hostile", TreeHash: tree}).Encode(o); err != nil {
		c.t.Fatal(err)
	}
	h, err := c.st.SetEncodedObject(o)
	if err != nil {
		c.t.Fatal(err)
	}
	commit, err := object.GetCommit(c.st, h)
	if err != nil {
		c.t.Fatal(err)
	}
	return commit
}

func TestExportRefusesHostileTrees(t *testing.T) {
	c := craft{t: t, st: memory.NewStorage()}
	outside := t.TempDir()
	file := c.blob("pwned\n")
	sub := c.tree(object.TreeEntry{Name: "evil", Mode: filemode.Regular, Hash: file})
	link := c.blob(outside)
	tests := []struct {
		name    string
		tree    plumbing.Hash
		wantErr string
	}{
		{"dot-dot folder", c.tree(object.TreeEntry{Name: "..", Mode: filemode.Dir, Hash: sub}), "outside the checkout"},
		{".git folder", c.tree(object.TreeEntry{Name: ".git", Mode: filemode.Dir, Hash: sub}), "inside a .git folder"},
		{".GIT deeper", c.tree(object.TreeEntry{Name: "apps", Mode: filemode.Dir, Hash: c.tree(object.TreeEntry{Name: ".GIT", Mode: filemode.Dir, Hash: sub})}), "inside a .git folder"},
		{"write through a symlink", c.tree(
			object.TreeEntry{Name: "link", Mode: filemode.Symlink, Hash: link},
			object.TreeEntry{Name: "link", Mode: filemode.Dir, Hash: sub}), "symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a", "tree")
			err := exportTree(c.commit(tt.tree), dir)
			// go-git refuses some names itself when it decodes the tree.
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) && !strings.Contains(err.Error(), "invalid path") {
				t.Fatalf("want an error about %q, got %v", tt.wantErr, err)
			}
			for _, p := range []string{filepath.Join(outside, "evil"), filepath.Join(dir, "..", "evil")} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("%s was written", p)
				}
			}
		})
	}

	// A patch must not follow a symlink already in the checkout either.
	from := c.commit(c.tree(object.TreeEntry{Name: "link", Mode: filemode.Symlink, Hash: link}))
	to := c.commit(c.tree(
		object.TreeEntry{Name: "link", Mode: filemode.Symlink, Hash: link},
		object.TreeEntry{Name: "link", Mode: filemode.Dir, Hash: sub}))
	dir := filepath.Join(t.TempDir(), "tree")
	if err := exportTree(from, dir); err != nil {
		t.Fatal(err)
	}
	err := applyDiff(c.st, from, to, dir)
	if _, statErr := os.Stat(filepath.Join(outside, "evil")); statErr == nil {
		t.Fatalf("patch wrote through a symlink out of the checkout (err %v)", err)
	}
}

func TestTreeCompleteFindsMissingObjects(t *testing.T) {
	r := newTestRepo(t, t.TempDir())
	h := r.commit("one", map[string]string{"a/b.yaml": "b\n", "c.yaml": "c\n"})
	commit, err := r.repo.CommitObject(plumbing.NewHash(h))
	if err != nil {
		t.Fatal(err)
	}
	if err := treeComplete(r.repo, commit, nil); err != nil {
		t.Fatalf("complete tree reported incomplete: %v", err)
	}
	// Remove one blob from the loose objects, as a server that assumed we
	// had it would have left it out.
	tree, _ := commit.Tree()
	f, err := tree.File("a/b.yaml")
	if err != nil {
		t.Fatal(err)
	}
	hs := f.Hash.String()
	if err := os.Remove(filepath.Join(r.dir, "objects", hs[:2], hs[2:])); err != nil {
		t.Fatal(err)
	}
	if err := treeComplete(r.repo, commit, nil); err == nil || !strings.Contains(err.Error(), "a/b.yaml") {
		t.Errorf("missing blob not reported: %v", err)
	}
	// Against a base, only what changed is checked: a missing blob that the
	// base has is not looked for, one that changed is.
	next := r.commit("two", map[string]string{"c.yaml": "c2\n"})
	nextCommit, _ := r.repo.CommitObject(plumbing.NewHash(next))
	if err := treeComplete(r.repo, nextCommit, commit); err != nil {
		t.Errorf("unchanged part checked against the base: %v", err)
	}
	changed, _ := nextCommit.Tree()
	cf, _ := changed.File("c.yaml")
	ch := cf.Hash.String()
	if err := os.Remove(filepath.Join(r.dir, "objects", ch[:2], ch[2:])); err != nil {
		t.Fatal(err)
	}
	if err := treeComplete(r.repo, nextCommit, commit); err == nil || !strings.Contains(err.Error(), "c.yaml") {
		t.Errorf("missing changed blob not reported against the base: %v", err)
	}
}
