package source

import (
	"path"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// treeDiff is what turns a checkout of one tree into a checkout of another:
// paths to remove (files, or whole folders), then files to write.
type treeDiff struct {
	remove []string
	write  []fileEntry
}

type fileEntry struct {
	path  string
	entry object.TreeEntry
	tree  *object.Tree // the parent tree, to read the entry through
}

// diffTrees compares two trees by entry hashes and descends only into
// folders whose hashes differ, so a commit that touches one app of a
// thousand reads a handful of tree objects, not a thousand. (go-git's
// DiffTree loads every child of a changed folder.)
func diffTrees(st storer.EncodedObjectStorer, from, to *object.Tree, prefix string, d *treeDiff) error {
	old := make(map[string]*object.TreeEntry, len(from.Entries))
	for i := range from.Entries {
		old[from.Entries[i].Name] = &from.Entries[i]
	}
	for _, te := range to.Entries {
		p := path.Join(prefix, te.Name)
		fe, had := old[te.Name]
		delete(old, te.Name)
		if had && fe.Hash == te.Hash && fe.Mode == te.Mode {
			continue
		}
		if te.Mode == filemode.Dir {
			if err := diffDir(st, fe, te, p, d); err != nil {
				return err
			}
			continue
		}
		if had {
			d.remove = append(d.remove, p)
		}
		if te.Mode != filemode.Submodule {
			d.write = append(d.write, fileEntry{path: p, entry: te, tree: to})
		}
	}
	for _, fe := range from.Entries {
		if _, gone := old[fe.Name]; gone {
			d.remove = append(d.remove, path.Join(prefix, fe.Name))
		}
	}
	return nil
}

// diffDir descends into a folder of the new tree; fe is what had its name
// in the old tree (nil, a folder, or a file that the folder replaces).
func diffDir(st storer.EncodedObjectStorer, fe *object.TreeEntry, te object.TreeEntry, p string, d *treeDiff) error {
	sub, err := object.GetTree(st, te.Hash)
	if err != nil {
		return err
	}
	base := &object.Tree{}
	switch {
	case fe != nil && fe.Mode == filemode.Dir:
		if base, err = object.GetTree(st, fe.Hash); err != nil {
			return err
		}
	case fe != nil:
		d.remove = append(d.remove, p)
	}
	return diffTrees(st, base, sub, p, d)
}

// commitDiff diffs the trees of two commits.
func commitDiff(st storer.EncodedObjectStorer, from, to *object.Commit) (*treeDiff, error) {
	ft, err := from.Tree()
	if err != nil {
		return nil, err
	}
	tt, err := to.Tree()
	if err != nil {
		return nil, err
	}
	d := &treeDiff{}
	return d, diffTrees(st, ft, tt, "", d)
}
