package source

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
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
	defer r.Close()
	// O_EXCL: a tree listing one path twice must not overwrite.
	w, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return w.Close()
}
