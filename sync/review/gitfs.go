package review

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"testing/fstest"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Revision is one side of a comparison: what the user asked for and the
// commit it resolved to ("" for the working tree).
type Revision struct {
	Ref    string `json:"ref"`
	Commit string `json:"commit,omitempty"`
}

// String is "REF (short hash)", or "working tree".
func (r Revision) String() string {
	if r.Commit == "" {
		return r.Ref
	}
	if len(r.Commit) > 12 && r.Ref != r.Commit {
		return r.Ref + " (" + r.Commit[:12] + ")"
	}
	return r.Ref
}

// treeFS reads a revision's tree straight from the repository's objects:
// no checkout, no network. Symbolic links keep their mode, so render sees
// them as links and refuses them as it does on disk; submodules are left
// out (their content is not in this repository).
func treeFS(repo *git.Repository, ref string) (fs.FS, Revision, error) {
	h, err := repo.ResolveRevision(plumbing.Revision(ref))
	if err != nil {
		return nil, Revision{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	c, err := repo.CommitObject(*h)
	if err != nil {
		return nil, Revision{}, fmt.Errorf("commit %s of %s: %w", h, ref, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, Revision{}, fmt.Errorf("tree of %s: %w", ref, err)
	}
	m := fstest.MapFS{}
	err = tree.Files().ForEach(func(f *object.File) error {
		data, err := blobData(f)
		if err != nil {
			return fmt.Errorf("%s at %s: %w", f.Name, ref, err)
		}
		mode := fs.FileMode(0o644)
		if f.Mode == filemode.Symlink {
			mode = fs.ModeSymlink | 0o777
		}
		m[f.Name] = &fstest.MapFile{Data: data, Mode: mode}
		return nil
	})
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, Revision{}, err
	}
	return m, Revision{Ref: ref, Commit: h.String()}, nil
}

func blobData(f *object.File) ([]byte, error) {
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
