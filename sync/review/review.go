// Package review compares what two revisions of a repository render to,
// with no cluster: the base and head trees are read from the local git
// objects (or the working tree), rendered as sync renders them, and compared
// object by object. It is what `homeostat diff --base` prints in a pull
// request; it never reads a kubeconfig.
package review

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	git "github.com/go-git/go-git/v5"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"homeostat.dev/homeostat/render"
	hsync "homeostat.dev/homeostat/sync"
)

// Actions of a Change; the strings are stable (JSON output, markdown).
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// Options say what to compare.
type Options struct {
	// RepoDir is a folder of the repository (its working tree or any
	// folder inside it); "" means the current directory.
	RepoDir string
	// Base is a revision (branch, tag, commit, HEAD~1); required.
	Base string
	// Head is a revision; "" compares with the working tree as it is on
	// disk, uncommitted edits included.
	Head string
	// Path is the folder to render at both revisions, relative to the
	// repository root, as a Sync's spec.path.
	Path string
	// Check, when set, runs on the head's objects (schema validation);
	// its problems fail the comparison like render problems.
	Check func(fsys fs.FS, objs []render.Object) (problems []render.Problem, skipped []string)
}

// Change is one object that differs.
type Change struct {
	Action string `json:"action"`
	// Object is "Kind/namespace/name" (or "Kind/name").
	Object     string        `json:"object"`
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Namespace  string        `json:"namespace,omitempty"`
	Name       string        `json:"name"`
	Source     render.Source `json:"source"`
	// Diff is a unified diff of the object's YAML, Secret values masked.
	Diff string `json:"diff"`
}

// Report is the result of a comparison.
type Report struct {
	Base      Revision         `json:"base"`
	Head      Revision         `json:"head"`
	Path      string           `json:"path"`
	Changes   []Change         `json:"changes"`
	Unchanged int              `json:"unchanged"`
	Warnings  []render.Problem `json:"warnings,omitempty"`
	// Skipped are kinds the schema check had no schema for.
	Skipped []string `json:"skipped,omitempty"`
}

// Count is the number of changes with an action.
func (r Report) Count(action string) int {
	n := 0
	for _, c := range r.Changes {
		if c.Action == action {
			n++
		}
	}
	return n
}

// Summary is one line of counts.
func (r Report) Summary() string {
	return fmt.Sprintf("%d added, %d changed, %d removed, %d unchanged",
		r.Count(Added), r.Count(Changed), r.Count(Removed), r.Unchanged)
}

// RenderError is a revision that does not render (or whose objects fail
// the schema check): every problem as FILE:LINE.
type RenderError struct {
	Revision string
	Problems []render.Problem
}

func (e *RenderError) Error() string {
	n := len(e.Problems)
	s := "s"
	if n == 1 {
		s = ""
	}
	return fmt.Sprintf("%s: %d problem%s", e.Revision, n, s)
}

// Run compares the two revisions.
func Run(o Options) (Report, error) {
	dir := o.RepoDir
	if dir == "" {
		dir = "."
	}
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return Report{}, fmt.Errorf("open repository at %s: %w", dir, err)
	}
	p := cleanPath(o.Path)
	rep := Report{Path: p}
	baseFS, base, err := treeFS(repo, o.Base)
	if err != nil {
		return Report{}, err
	}
	headFS, head, err := headTree(repo, o.Head)
	if err != nil {
		return Report{}, err
	}
	rep.Base, rep.Head = base, head
	before, _, err := renderSide(baseFS, p, base.String(), nil)
	if err != nil {
		return Report{}, err
	}
	after, res, err := renderSide(headFS, p, head.String(), o.Check)
	if err != nil {
		return Report{}, err
	}
	rep.Warnings, rep.Skipped = res.Warnings, res.skipped
	rep.Changes, rep.Unchanged, err = compare(before, after)
	return rep, err
}

// headTree is the head revision's tree, or the working tree on disk.
func headTree(repo *git.Repository, ref string) (fs.FS, Revision, error) {
	if ref != "" {
		return treeFS(repo, ref)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return nil, Revision{}, fmt.Errorf("working tree: %w (give --head for a bare repository)", err)
	}
	return os.DirFS(wt.Filesystem.Root()), Revision{Ref: "working tree"}, nil
}

type sideResult struct {
	render.Result
	skipped []string
}

// renderSide renders one revision; a path that does not exist there
// renders to nothing (a pull request that adds a cluster folder).
func renderSide(fsys fs.FS, p, name string, check func(fs.FS, []render.Object) ([]render.Problem, []string)) ([]render.Object, sideResult, error) {
	if _, err := fs.Stat(fsys, p); errors.Is(err, fs.ErrNotExist) {
		return nil, sideResult{}, nil
	}
	res := sideResult{Result: render.RenderPath(fsys, p)}
	if len(res.Problems) == 0 && check != nil {
		res.Problems, res.skipped = check(fsys, res.Objects)
	}
	if len(res.Problems) > 0 {
		return nil, res, &RenderError{Revision: name, Problems: res.Problems}
	}
	return res.Objects, res, nil
}

func cleanPath(p string) string {
	c := strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(p, "./")), "/")
	if c == "" {
		return "."
	}
	return c
}

// key identifies an object across revisions: a new apiVersion of the same
// object is a change, not a removal and an addition.
func key(u *unstructured.Unstructured) string {
	return u.GroupVersionKind().Group + "/" + u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
}

// compare pairs objects by identity and diffs each pair.
func compare(before, after []render.Object) ([]Change, int, error) {
	old := map[string]render.Object{}
	for _, o := range before {
		old[key(o.Object)] = o
	}
	var changes []Change
	unchanged := 0
	for _, o := range after {
		k := key(o.Object)
		b, had := old[k]
		delete(old, k)
		var prev *unstructured.Unstructured
		if had {
			prev = b.Object
		}
		d, err := hsync.DiffNamed(prev, o.Object, "base", "head")
		if err != nil {
			return nil, 0, fmt.Errorf("diff %s: %w", k, err)
		}
		switch {
		case !had:
			changes = append(changes, change(Added, o, d))
		case d != "":
			changes = append(changes, change(Changed, o, d))
		default:
			unchanged++
		}
	}
	for _, o := range old {
		d, err := hsync.DiffNamed(o.Object, nil, "base", "head")
		if err != nil {
			return nil, 0, fmt.Errorf("diff %s: %w", key(o.Object), err)
		}
		changes = append(changes, change(Removed, o, d))
	}
	order := map[string]int{Added: 0, Changed: 1, Removed: 2}
	sort.SliceStable(changes, func(i, j int) bool {
		if changes[i].Action != changes[j].Action {
			return order[changes[i].Action] < order[changes[j].Action]
		}
		return changes[i].Object < changes[j].Object
	})
	return changes, unchanged, nil
}

func change(action string, o render.Object, diff string) Change {
	u := o.Object
	return Change{Action: action, Object: hsync.RefOf(u).String(), APIVersion: u.GetAPIVersion(), Kind: u.GetKind(),
		Namespace: u.GetNamespace(), Name: u.GetName(), Source: o.Source, Diff: diff}
}
