package render

import (
	"io/fs"
	"path"
	"sort"
	"strings"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Render renders a whole repository tree: RenderPath(fsys, ".") without its
// warnings.
func Render(fsys fs.FS) ([]Object, []Problem) {
	r := RenderPath(fsys, ".")
	return r.Objects, r.Problems
}

// Result is what RenderPath found: the objects of a good tree, or every
// problem of a bad one, and warnings that do not stop a render (kustomize's
// deprecated fields).
type Result struct {
	Objects  []Object
	Problems []Problem
	Warnings []Problem
}

// RenderPath reads every manifest under dir (a folder of the repository
// tree fsys, "." for all of it) and returns the objects they describe, in a
// stable order: cluster-wide objects first (CRDs, Namespaces, then other
// cluster-scoped kinds), then namespaced ones, each high-level object
// immediately followed by its children. The same tree always renders to the
// same objects in the same order.
//
// The repository root, not dir, is the boundary for references: a
// kustomization under dir may use ../../apps/production or a patch in a
// shared folder anywhere in the tree, as Flux and kustomize allow; dir only
// chooses what to build. Files are named relative to the repository root.
//
// The tree is read as follows: dot-files and dot-folders (.git, CI files) are
// ignored; *.yaml, *.yml and *.json files hold one or more manifests; a folder
// with a kustomization.yaml is built with kustomize and its files are not read
// again, and a kustomization that another one uses (a base or component) is
// built only as part of that one; a kind: Component that nothing uses is
// skipped, since a component cannot build alone; a file a kustomization reads
// from outside its folder (a patch, a generator's env file) is not read as a
// manifest too; a v1 List is expanded into its items; kinds of homeostat.dev
// are decoded strictly, defaulted, validated and rendered to their children;
// a namespace given to a cluster-scoped object is dropped, as kubectl does.
//
// RenderPath reports every problem it finds, each as FILE:LINE. A tree with
// any problem is rejected whole: the objects are then nil, so that a caller
// cannot apply half a revision by mistake.
func RenderPath(fsys fs.FS, dir string) Result {
	dir, p := cleanDir(fsys, dir)
	if p != nil {
		return Result{Problems: []Problem{*p}}
	}
	t, problems := scanTree(fsys, dir)
	// Link first: it fills the consumed set the manifest loop consults.
	problems = append(problems, t.linkKustomizations(fsys)...)
	var docs []document
	for _, f := range t.manifests {
		if t.underKustomization(f) || t.consumed[f] {
			continue
		}
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			problems = append(problems, Problem{File: f, Message: "cannot read: " + err.Error()})
			continue
		}
		ds, ps := parseDocuments(f, data)
		docs = append(docs, ds...)
		problems = append(problems, ps...)
	}
	if len(t.kustomizations) > 0 {
		ds, ps := buildKustomizations(fsys, t)
		docs = append(docs, ds...)
		problems = append(problems, ps...)
	}

	var units []unit
	for i := range docs {
		us, ps := renderDocument(&docs[i])
		units = append(units, us...)
		problems = append(problems, ps...)
	}
	scopes := clusterScopes(units)
	dropClusterNamespaces(units, scopes)
	problems = append(problems, duplicates(units, scopes)...)
	sortProblems(t.warnings)
	if len(problems) > 0 {
		return Result{Problems: tidyProblems(problems), Warnings: t.warnings}
	}
	sortUnits(units, scopes)
	out := make([]Object, 0, len(units))
	for _, u := range units {
		out = append(out, u.objects...)
	}
	return Result{Objects: out, Warnings: t.warnings}
}

// tidyProblems makes every problem one FILE:LINE: message line, whatever a
// dependency put in its error; a problem no line can be found for points at
// the start of its file.
func tidyProblems(problems []Problem) []Problem {
	for i := range problems {
		if strings.ContainsAny(problems[i].Message, "\r\n") {
			problems[i].Message = strings.Join(strings.Fields(problems[i].Message), " ")
		}
		if problems[i].Line == 0 && problems[i].File != "" && problems[i].File != "." {
			problems[i].Line = 1
		}
	}
	sortProblems(problems)
	return problems
}

// cleanDir turns a Sync's path ("./clusters/prod/", "/clusters/prod") into a
// folder of the tree, refusing one that leaves it or does not exist.
func cleanDir(fsys fs.FS, dir string) (string, *Problem) {
	clean := path.Clean("/" + strings.TrimPrefix(dir, "./"))
	clean = strings.TrimPrefix(clean, "/")
	if clean == "" {
		clean = "."
	}
	info, err := fs.Stat(fsys, clean)
	switch {
	case err != nil:
		return "", &Problem{File: clean, Message: "path is not in the repository"}
	case !info.IsDir():
		return "", &Problem{File: clean, Message: "path is not a folder"}
	}
	return clean, nil
}

// unit is a top-level object with its children, sorted as one.
type unit struct {
	id      identity
	objects []Object
}

// renderDocument checks one manifest and renders it; a v1 List becomes one
// unit per item.
func renderDocument(d *document) ([]unit, []Problem) {
	if isList(d.obj) {
		return renderList(d)
	}
	id, problems := checkManifest(d)
	if problems != nil {
		return nil, problems
	}
	if id.group == v1alpha1.GroupVersion.Group {
		objs, ps := renderHomeostat(d, id)
		if ps != nil {
			return nil, ps
		}
		return []unit{{id: id, objects: objs}}, nil
	}
	return []unit{{id: id, objects: []Object{plainObject(d)}}}, nil
}

// isList recognises a v1 List, which has items instead of a name.
func isList(obj map[string]interface{}) bool {
	return obj["apiVersion"] == "v1" && obj["kind"] == "List"
}

// renderList expands a v1 List (what `kubectl get -o yaml` writes) into its
// items, each located at its own line.
func renderList(d *document) ([]unit, []Problem) {
	items, ok := d.obj["items"].([]interface{})
	if !ok {
		if d.obj["items"] == nil {
			return nil, nil
		}
		return nil, []Problem{d.problem(field("items"), "must be a list of manifests")}
	}
	var units []unit
	var problems []Problem
	for i, it := range items {
		p := field("items").index(i)
		m, ok := it.(map[string]interface{})
		if !ok {
			problems = append(problems, d.problem(p, "must be a manifest"))
			continue
		}
		item := document{src: Source{File: d.src.File, Line: d.lineOf(p)}, obj: m}
		if d.node != nil {
			item.node = resolveAlias(d.node)
			if n, _ := child(item.node, pathSegment{key: "items"}); n != nil {
				if n, _ = child(resolveAlias(n), pathSegment{index: i, isIndex: true}); n != nil {
					item.node = resolveAlias(n)
				}
			}
		}
		if isList(m) {
			problems = append(problems, item.problem(nil, "a List cannot contain another List"))
			continue
		}
		us, ps := renderDocument(&item)
		units = append(units, us...)
		problems = append(problems, ps...)
	}
	return units, problems
}

// tree is what a walk of the rendered folder, and of the kustomization
// folders outside it that its kustomizations use, found.
type tree struct {
	// dir is the rendered folder ("." for the whole repository).
	dir string
	// manifests are the *.yaml, *.yml and *.json files under dir, outside
	// dot-folders.
	manifests []string
	// files are all regular files kustomize may read, but .git's: those
	// under dir and under the kustomization folders its kustomizations use,
	// and files they name elsewhere. Dot-files are kept (a secretGenerator's
	// .env), and non-YAML files.
	files   []string
	fileSet map[string]bool
	// kustomizations by folder ("." for the root).
	kustomizations map[string]*kustomization
	// consumed are manifests outside a kustomization folder that a
	// kustomization reads (../shared/cm.yaml); they are not read twice.
	consumed map[string]bool
	// warnings are kustomize's notes on deprecated fields.
	warnings []Problem
}

// scanTree walks dir for manifests, kustomizations and files.
func scanTree(fsys fs.FS, dir string) (*tree, []Problem) {
	t := &tree{dir: dir, kustomizations: map[string]*kustomization{}, consumed: map[string]bool{}, fileSet: map[string]bool{}}
	var problems []Problem
	err := fs.WalkDir(fsys, dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			problems = append(problems, Problem{File: p, Message: "cannot read: " + err.Error()})
			if e != nil && e.IsDir() && p != dir {
				return fs.SkipDir
			}
			return nil
		}
		name := e.Name()
		if e.IsDir() {
			// Other dot-folders are walked for kustomize's sake (see files);
			// .git holds only history.
			if name == ".git" {
				return fs.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() {
			if isManifest(name) || isKustomization(name) {
				problems = append(problems, Problem{File: p, Message: "not a regular file (symbolic links are not followed)"})
			}
			return nil
		}
		t.addFile(p)
		if kustomizeOnly(p) {
			return nil
		}
		switch {
		case isKustomization(name):
			dir := path.Dir(p)
			if k, dup := t.kustomizations[dir]; dup {
				problems = append(problems, Problem{File: p, Message: "a folder can have only one kustomization file; found " + k.file + " too"})
				k.bad = true
				return nil
			}
			t.kustomizations[dir] = &kustomization{dir: dir, file: p}
		case isManifest(name):
			t.manifests = append(t.manifests, p)
		}
		return nil
	})
	if err != nil {
		problems = append(problems, Problem{File: dir, Message: "cannot walk the tree: " + err.Error()})
	}
	return t, problems
}

func (t *tree) addFile(p string) {
	if !t.fileSet[p] {
		t.fileSet[p] = true
		t.files = append(t.files, p)
	}
}

// addFolder adds the regular files of a kustomization folder outside dir,
// which kustomize may read (its resources, patches, generator files).
func (t *tree) addFolder(fsys fs.FS, folder string) {
	_ = fs.WalkDir(fsys, folder, func(p string, e fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil // kustomize reports what it cannot read
		case e.IsDir() && e.Name() == ".git":
			return fs.SkipDir
		case e.Type().IsRegular():
			t.addFile(p)
		}
		return nil
	})
}

// kustomizeOnly reports a path inside a dot-folder or a dot-file: never read
// as manifests, but available to kustomize.
func kustomizeOnly(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if strings.HasPrefix(part, ".") && part != "." && part != ".." {
			return true
		}
	}
	return false
}

func isManifest(name string) bool {
	switch path.Ext(name) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func isKustomization(name string) bool {
	return name == "kustomization.yaml" || name == "kustomization.yml" || name == "Kustomization"
}

// underKustomization reports whether a file is inside a kustomization folder
// (or one of its subfolders), and so read only by kustomize.
func (t *tree) underKustomization(f string) bool {
	for dir := path.Dir(f); ; dir = path.Dir(dir) {
		if _, ok := t.kustomizations[dir]; ok {
			return true
		}
		if dir == t.dir || dir == "." || dir == "/" {
			return false
		}
	}
}

func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		return a.Message < b.Message
	})
}
