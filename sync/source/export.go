package source

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// exportTree writes a commit's tree into dir (which must not exist), like
// `git archive | tar x`: regular and executable files and symlinks, no .git.
// Paths that would leave dir or write into a .git folder are refused, and
// symlinks are created last so no file is ever written through one.
func exportTree(c *object.Commit, dir string) error {
	tree, err := c.Tree()
	if err != nil {
		return fmt.Errorf("tree of commit %s: %w", c.Hash, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	type link struct{ path, target string }
	var links []link
	err = tree.Files().ForEach(func(f *object.File) error {
		if err := checkTreePath(f.Name); err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(f.Name))
		if f.Mode == filemode.Symlink {
			target, err := f.Contents()
			if err != nil {
				return fmt.Errorf("read %s: %w", f.Name, err)
			}
			links = append(links, link{dst, target})
			return nil
		}
		return writeBlob(f, dst)
	})
	if err != nil {
		return err
	}
	for _, l := range links {
		if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(l.target, l.path); err != nil {
			return fmt.Errorf("symlink %s: %w", l.path, err)
		}
	}
	return nil
}

func checkTreePath(name string) error {
	if !filepath.IsLocal(name) {
		return fmt.Errorf("refusing tree path %q: outside the checkout", name)
	}
	for _, part := range strings.Split(name, "/") {
		if strings.EqualFold(part, ".git") {
			return fmt.Errorf("refusing tree path %q: inside a .git folder", name)
		}
	}
	return nil
}

func writeBlob(f *object.File, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	perm := os.FileMode(0o644)
	if f.Mode == filemode.Executable {
		perm = 0o755
	}
	r, err := f.Reader()
	if err != nil {
		return fmt.Errorf("read %s: %w", f.Name, err)
	}
	defer func() { _ = r.Close() }()
	// O_EXCL: a tree listing one path twice must not overwrite.
	w, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		_ = w.Close()
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return w.Close()
}

// applyDiff turns dir, a checkout of from, into a checkout of to by touching
// only the paths that differ. All access goes through an os.Root, so no
// symlink from either tree can lead a write outside dir.
func applyDiff(st storer.EncodedObjectStorer, from, to *object.Commit, dir string) error {
	d, err := commitDiff(st, from, to)
	if err != nil {
		return fmt.Errorf("diff %s..%s: %w", from.Hash, to.Hash, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	// Removals first, so a file may become a folder and a folder a file.
	for _, p := range d.remove {
		if err := checkTreePath(p); err != nil {
			return err
		}
		if err := root.RemoveAll(filepath.FromSlash(p)); err != nil {
			return err
		}
		removeEmptyParents(root, p)
	}
	for _, w := range d.write {
		if err := checkTreePath(w.path); err != nil {
			return err
		}
		f, err := w.tree.TreeEntryFile(&w.entry)
		if err != nil {
			return fmt.Errorf("read %s: %w", w.path, err)
		}
		f.Name = w.path
		if err := writeInRoot(root, f); err != nil {
			return err
		}
	}
	return nil
}

func removeEmptyParents(root *os.Root, name string) {
	for dir := path.Dir(name); dir != "." && dir != "/"; dir = path.Dir(dir) {
		// Remove fails on a folder that still has entries: that ends the climb.
		if root.Remove(filepath.FromSlash(dir)) != nil {
			return
		}
	}
}

func writeInRoot(root *os.Root, f *object.File) error {
	name := filepath.FromSlash(f.Name)
	if err := root.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	if f.Mode == filemode.Symlink {
		target, err := f.Contents()
		if err != nil {
			return fmt.Errorf("read %s: %w", f.Name, err)
		}
		return root.Symlink(target, name)
	}
	perm := os.FileMode(0o644)
	if f.Mode == filemode.Executable {
		perm = 0o755
	}
	r, err := f.Reader()
	if err != nil {
		return fmt.Errorf("read %s: %w", f.Name, err)
	}
	defer func() { _ = r.Close() }()
	w, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		_ = w.Close()
		return fmt.Errorf("write %s: %w", f.Name, err)
	}
	return w.Close()
}

// treeComplete reports whether every tree and blob of a commit is in the
// store: after an incremental fetch from a shallow clone, a server may leave
// out objects it believes we have from history we never fetched. With a base
// commit known to be complete, only what differs from it is checked.
func treeComplete(repo *git.Repository, c, base *object.Commit) error {
	if base != nil {
		d, err := commitDiff(repo.Storer, base, c)
		if err != nil {
			return fmt.Errorf("tree of %s: %w", c.Hash, err)
		}
		for _, w := range d.write {
			if err := repo.Storer.HasEncodedObject(w.entry.Hash); err != nil {
				return fmt.Errorf("%s of %s: %w", w.path, c.Hash, err)
			}
		}
		return nil
	}
	tree, err := c.Tree()
	if err != nil {
		return err
	}
	w := object.NewTreeWalker(tree, true, nil)
	defer w.Close()
	for {
		name, e, err := w.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tree of %s: %w", c.Hash, err)
		}
		if e.Mode.IsFile() {
			if err := repo.Storer.HasEncodedObject(e.Hash); err != nil {
				return fmt.Errorf("%s of %s: %w", name, c.Hash, err)
			}
		}
	}
}
