package render

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomization is a folder with a kustomization file.
type kustomization struct {
	dir, file string
	// refs are the kustomization folders it uses as resources, bases or
	// components.
	refs []string
	// bad is set when its file or one of its references has a problem.
	bad bool
}

// referenceFields hold folders or files that kustomize loads as resources;
// each must exist in the tree, because render never fetches anything.
var referenceFields = []string{"resources", "bases", "components", "generators", "transformers", "validators"}

// buildKustomizations builds every root kustomization (one no other
// kustomization uses) from an in-memory copy of the tree.
func buildKustomizations(fsys fs.FS, t *tree) ([]document, []Problem) {
	problems := t.linkKustomizations(fsys)
	referenced := map[string]bool{}
	for _, k := range t.kustomizations {
		for _, r := range k.refs {
			referenced[r] = true
		}
	}
	var roots []*kustomization
	for _, k := range t.kustomizations {
		if !referenced[k.dir] {
			roots = append(roots, k)
		}
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].dir < roots[j].dir })
	problems = append(problems, t.unreachable(roots)...)

	var mem filesys.FileSystem
	var docs []document
	for _, k := range roots {
		if t.broken(k.dir, map[string]bool{}) {
			// Its problem is reported already; building it would only
			// repeat it, or try to fetch a reference remotely.
			continue
		}
		if mem == nil {
			var ps []Problem
			if mem, ps = memoryCopy(fsys, t.files); ps != nil {
				return nil, append(problems, ps...)
			}
		}
		ds, ps := runKustomize(mem, t.top, k)
		docs = append(docs, ds...)
		problems = append(problems, ps...)
	}
	return docs, problems
}

// broken reports whether a kustomization, or one it uses, has a bad
// reference or kustomization file.
func (t *tree) broken(dir string, seen map[string]bool) bool {
	k := t.kustomizations[dir]
	if k.bad {
		return true
	}
	if seen[dir] {
		return false
	}
	seen[dir] = true
	for _, r := range k.refs {
		if t.broken(r, seen) {
			return true
		}
	}
	return false
}

// linkKustomizations reads each kustomization file for the folders it
// uses, and the manifests outside its own folder it reads, so those are not
// read twice.
func (t *tree) linkKustomizations(fsys fs.FS) []Problem {
	var problems []Problem
	dirs := make([]string, 0, len(t.kustomizations))
	for dir := range t.kustomizations {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	isFile := map[string]bool{}
	for _, f := range t.files {
		isFile[f] = true
	}
	for _, dir := range dirs {
		k := t.kustomizations[dir]
		spec, p := readKustomization(fsys, k.file)
		if p != nil {
			problems = append(problems, *p)
			k.bad = true
			continue
		}
		ps := t.linkReferences(fsys, k, spec, isFile)
		if len(ps) > 0 {
			problems = append(problems, ps...)
			k.bad = true
		}
		// Patches, generator files and the like outside the folder.
		eachString(spec, 0, func(s string) {
			s = s[strings.Index(s, "=")+1:] // configMapGenerator files: key=path
			if target, inside := resolve(dir, s); inside && isFile[target] && !strings.HasPrefix(target, dir+"/") {
				t.consumed[target] = true
			}
		})
	}
	return problems
}

func readKustomization(fsys fs.FS, file string) (map[string]interface{}, *Problem) {
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, &Problem{File: file, Message: "cannot read: " + err.Error()}
	}
	var spec map[string]interface{}
	if err := yaml.Unmarshal(data, &spec); err != nil {
		p := yamlProblem(file, err)
		return nil, &p
	}
	return spec, nil
}

// linkReferences records what one kustomization uses: kustomization
// folders become its refs, files are consumed; anything not in the tree is a
// problem, because render never fetches.
func (t *tree) linkReferences(fsys fs.FS, k *kustomization, spec map[string]interface{}, isFile map[string]bool) []Problem {
	var problems []Problem
	d := &document{src: Source{File: k.file}}
	for _, refField := range referenceFields {
		entries, _ := spec[refField].([]interface{})
		for i, e := range entries {
			ref, ok := e.(string)
			if !ok || strings.Contains(ref, "\n") {
				continue // inline generator or transformer configuration
			}
			at := field(refField).index(i)
			target, inside := resolve(k.dir, ref)
			switch {
			case strings.Contains(ref, "://"):
				problems = append(problems, d.problem(at, "%q: remote resources are not supported; render reads only the repository", ref))
			case !inside:
				problems = append(problems, d.problem(at, "%q is outside the repository", ref))
			case isFile[target]:
				t.consumed[target] = true
			case isDir(fsys, target):
				if _, ok := t.kustomizations[target]; ok {
					k.refs = append(k.refs, target)
				}
			default:
				problems = append(problems, d.problem(at, "%q is not in the repository (render reads only the repository, never remote resources)", ref))
			}
		}
	}
	return problems
}

func isDir(fsys fs.FS, p string) bool {
	info, err := fs.Stat(fsys, p)
	return err == nil && info.IsDir()
}

// resolve joins a reference to its kustomization folder and says whether
// the result stays inside the tree.
func resolve(dir, ref string) (string, bool) {
	if strings.Contains(ref, "://") || path.IsAbs(ref) {
		return ref, false
	}
	p := path.Join(dir, ref)
	return p, p != ".." && !strings.HasPrefix(p, "../")
}

func eachString(v interface{}, depth int, f func(string)) {
	if depth > maxDepth {
		return
	}
	switch t := v.(type) {
	case string:
		f(t)
	case []interface{}:
		for _, e := range t {
			eachString(e, depth+1, f)
		}
	case map[string]interface{}:
		for _, e := range t {
			eachString(e, depth+1, f)
		}
	}
}

// unreachable reports kustomizations that are used only by each other, in a
// cycle, and so would never be built.
func (t *tree) unreachable(roots []*kustomization) []Problem {
	seen := map[string]bool{}
	var visit func(dir string)
	visit = func(dir string) {
		if seen[dir] {
			return
		}
		seen[dir] = true
		for _, r := range t.kustomizations[dir].refs {
			visit(r)
		}
	}
	for _, r := range roots {
		visit(r.dir)
	}
	var problems []Problem
	for dir, k := range t.kustomizations {
		if !seen[dir] {
			problems = append(problems, Problem{File: k.file, Message: "kustomization is used only in a cycle of kustomizations that use each other"})
		}
	}
	return problems
}

// memoryCopy copies the tree into kustomize's in-memory file system, rooted
// at "/", so kustomize sees exactly the revision and nothing else on disk.
func memoryCopy(fsys fs.FS, files []string) (filesys.FileSystem, []Problem) {
	mem := filesys.MakeFsInMemory()
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, []Problem{{File: f, Message: "cannot read: " + err.Error()}}
		}
		if err := mem.WriteFile("/"+f, data); err != nil {
			return nil, []Problem{{File: f, Message: "cannot copy for kustomize: " + err.Error()}}
		}
	}
	return mem, nil
}

// kustomizeMu serialises builds: kustomize keeps its OpenAPI schema in a
// package variable that every build sets.
var kustomizeMu sync.Mutex

// runKustomize builds one root kustomization. Plugins, helm and exec
// functions stay disabled, and load restrictions are off because the file
// system holds only the tree.
func runKustomize(mem filesys.FileSystem, top map[string]bool, k *kustomization) (docs []document, problems []Problem) {
	kustomizeMu.Lock()
	defer kustomizeMu.Unlock()
	defer func() {
		// kustomize is large and sees arbitrary input; a panic in it must
		// not take the controller down.
		if r := recover(); r != nil {
			docs, problems = nil, []Problem{{File: k.file, Message: fmt.Sprintf("kustomize failed: %v", r)}}
		}
	}()
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsNone
	root := "/" + k.dir
	if k.dir == "." {
		root = "/"
	}
	resources, err := krusty.MakeKustomizer(opts).Run(mem, root)
	if err != nil {
		return nil, []Problem{{File: k.file, Message: "kustomize: " + treePaths(err.Error(), top)}}
	}
	for _, r := range resources.Resources() {
		m, err := r.Map()
		if err != nil {
			problems = append(problems, Problem{File: k.file, Message: "kustomize: " + err.Error()})
			continue
		}
		v, err := normalize(m, 0)
		if err != nil {
			problems = append(problems, Problem{File: k.file, Message: "kustomize output: " + err.Error()})
			continue
		}
		obj := v.(map[string]interface{})
		docs = append(docs, document{src: Source{File: k.file}, obj: obj, label: describeObject(obj)})
	}
	return docs, problems
}

var absPath = regexp.MustCompile(`(^|[\s'"(=\[])/([^/\s'":]+)`)

// treePaths rewrites the in-memory file system's absolute paths ("/base")
// in a kustomize error to paths relative to the tree ("base"). Only paths
// that start with a top-level name of the tree are rewritten, so a JSON
// patch path such as /data/key stays as it is.
func treePaths(msg string, top map[string]bool) string {
	return absPath.ReplaceAllStringFunc(strings.TrimSpace(msg), func(m string) string {
		i := strings.Index(m, "/")
		if top[m[i+1:]] {
			return m[:i] + m[i+1:]
		}
		return m
	})
}

// describeObject names a manifest built by kustomize, whose problems cannot
// point at a line, as "App web/shop".
func describeObject(obj map[string]interface{}) string {
	kind, _ := obj["kind"].(string)
	md, _ := obj["metadata"].(map[string]interface{})
	name, _ := md["name"].(string)
	if ns, _ := md["namespace"].(string); ns != "" {
		name = ns + "/" + name
	}
	return strings.TrimSpace(kind + " " + name)
}
