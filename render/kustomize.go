package render

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
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
	// component is a kind: Component, which builds only inside another.
	component bool
	// queued marks one linked or waiting to be.
	queued bool
}

// referenceFields hold folders or files that kustomize loads as resources;
// each must exist in the tree, because render never fetches anything.
var referenceFields = []string{"resources", "bases", "components", "generators", "transformers", "validators"}

// buildKustomizations builds every root kustomization (one no other
// kustomization uses) from an in-memory copy of the tree.
func buildKustomizations(fsys fs.FS, t *tree) ([]document, []Problem) {
	var problems []Problem
	referenced := map[string]bool{}
	for _, k := range t.kustomizations {
		for _, r := range k.refs {
			referenced[r] = true
		}
	}
	var roots []*kustomization
	for _, k := range t.kustomizations {
		// Roots are under the rendered folder; a component nothing uses
		// cannot build alone, and kustomize build of its parent skips it.
		if !referenced[k.dir] && !k.component && t.inDir(k.dir) {
			roots = append(roots, k)
		}
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].dir < roots[j].dir })
	problems = append(problems, t.unreachable(referenced)...)

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
		ds, ps := runKustomize(mem, t.files, k)
		docs = append(docs, ds...)
		problems = append(problems, ps...)
	}
	return docs, problems
}

// inDir reports whether a folder is the rendered one or under it.
func (t *tree) inDir(folder string) bool {
	return t.dir == "." || folder == t.dir || strings.HasPrefix(folder, t.dir+"/")
}

// topNames are the names at the top of the tree, to recognise its paths in
// kustomize's messages.
func topNames(files []string) map[string]bool {
	top := map[string]bool{}
	for _, f := range files {
		name, _, _ := strings.Cut(f, "/")
		top[name] = true
	}
	return top
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

// linkKustomizations reads each kustomization file under dir for the
// folders it uses (following them anywhere in the repository, so that
// clusters/prod may use ../../apps/prod), and the files outside its own
// folder it reads, so those are not read twice.
func (t *tree) linkKustomizations(fsys fs.FS) []Problem {
	var problems []Problem
	queue := make([]string, 0, len(t.kustomizations))
	for dir, k := range t.kustomizations {
		k.queued = true
		queue = append(queue, dir)
	}
	sort.Strings(queue)
	for len(queue) > 0 {
		k := t.kustomizations[queue[0]]
		queue = queue[1:]
		spec, node, p := readKustomization(fsys, k.file)
		if p != nil {
			problems = append(problems, *p)
			k.bad = true
			continue
		}
		k.component = spec["kind"] == "Component"
		t.warnings = append(t.warnings, deprecations(k.file, spec, node)...)
		refs := len(k.refs)
		ps := t.linkReferences(fsys, k, spec, node)
		if len(ps) > 0 {
			problems = append(problems, ps...)
			k.bad = true
		}
		for _, r := range k.refs[refs:] {
			if !t.kustomizations[r].queued {
				t.kustomizations[r].queued = true
				queue = append(queue, r)
			}
		}
		t.linkFiles(fsys, k, spec)
	}
	return problems
}

// linkFiles marks patches, generator files and the like that a
// kustomization reads from outside its folder.
func (t *tree) linkFiles(fsys fs.FS, k *kustomization, spec map[string]interface{}) {
	eachString(spec, 0, func(s string) {
		s = s[strings.Index(s, "=")+1:] // configMapGenerator files: key=path
		target, inside := resolve(k.dir, s)
		if inside && !strings.HasPrefix(target, k.dir+"/") && t.isFile(fsys, target) {
			t.consumed[target] = true
		}
	})
}

// isFile reports a regular file of the repository (never a symbolic link),
// adding it to the files kustomize sees.
func (t *tree) isFile(fsys fs.FS, p string) bool {
	if t.fileSet[p] {
		return true
	}
	if !fs.ValidPath(p) || slices.Contains(strings.Split(p, "/"), ".git") {
		return false
	}
	info, err := fs.Lstat(fsys, p)
	if err != nil || !info.Mode().IsRegular() {
		return false
	}
	t.addFile(p)
	return true
}

// kustomizationIn returns the kustomization of a folder, finding one
// outside dir on first use.
func (t *tree) kustomizationIn(fsys fs.FS, folder string) *kustomization {
	if k, ok := t.kustomizations[folder]; ok {
		return k
	}
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		f := path.Join(folder, name)
		if info, err := fs.Lstat(fsys, f); err == nil && info.Mode().IsRegular() {
			k := &kustomization{dir: folder, file: f}
			t.kustomizations[folder] = k
			t.addFolder(fsys, folder)
			return k
		}
	}
	return nil
}

// deprecations are kustomize's own warnings about deprecated fields, which
// it would otherwise print on stderr: notes, not problems.
func deprecations(file string, spec map[string]interface{}, node *yaml.Node) []Problem {
	data, err := yaml.Marshal(spec)
	if err != nil {
		return nil
	}
	var k types.Kustomization
	if k.Unmarshal(data) != nil {
		return nil
	}
	msgs := k.CheckDeprecatedFields()
	if msgs == nil {
		return nil
	}
	d := &document{src: Source{File: file, Line: 1}, node: node}
	var out []Problem
	for _, m := range *msgs {
		m = strings.TrimPrefix(m, "# Warning: ")
		var at fieldPath
		if i := strings.Index(m, "'"); i >= 0 {
			if j := strings.Index(m[i+1:], "'"); j > 0 {
				at = field(m[i+1 : i+1+j])
			}
		}
		out = append(out, Problem{File: file, Line: d.lineOf(at), Message: m})
	}
	return out
}

func readKustomization(fsys fs.FS, file string) (map[string]interface{}, *yaml.Node, *Problem) {
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, nil, &Problem{File: file, Message: "cannot read: " + err.Error()}
	}
	var root yaml.Node
	var spec map[string]interface{}
	err = yaml.Unmarshal(data, &root)
	if err == nil {
		err = root.Decode(&spec)
	}
	if err != nil {
		p := yamlProblem(file, err)
		if line := syntaxErrorLine(data); line > 0 {
			p.Line = line
		}
		return nil, nil, &p
	}
	var node *yaml.Node
	if len(root.Content) > 0 {
		node = root.Content[0]
	}
	return spec, node, nil
}

// linkReferences records what one kustomization uses: kustomization
// folders become its refs, files are consumed; anything not in the tree is a
// problem, because render never fetches.
func (t *tree) linkReferences(fsys fs.FS, k *kustomization, spec map[string]interface{}, node *yaml.Node) []Problem {
	var problems []Problem
	d := &document{src: Source{File: k.file, Line: 1}, node: node}
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
			case t.isFile(fsys, target):
				t.consumed[target] = true
			case isDir(fsys, target):
				if r := t.kustomizationIn(fsys, target); r != nil {
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
func (t *tree) unreachable(referenced map[string]bool) []Problem {
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
	for dir := range t.kustomizations {
		if !referenced[dir] {
			visit(dir)
		}
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
func runKustomize(mem filesys.FileSystem, files []string, k *kustomization) (docs []document, problems []Problem) {
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
	restore := quietDeprecations()
	resources, err := krusty.MakeKustomizer(opts).Run(mem, root)
	restore()
	if err != nil {
		return nil, []Problem{kustomizeProblem(mem, k.file, treePaths(err.Error(), topNames(files)), files)}
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

var malformed = regexp.MustCompile(`MalformedYAMLError: yaml: line (\d+): (.*) in File: (\S+)$`)

// kustomizeProblem points a kustomize error at the file and line it names
// when it names a YAML error in one file of the tree (kustomize names the
// file as the kustomization that read it wrote it); otherwise at the
// kustomization being built.
func kustomizeProblem(mem filesys.FileSystem, file, msg string, files []string) Problem {
	m := malformed.FindStringSubmatch(msg)
	if m == nil {
		return Problem{File: file, Message: "kustomize: " + msg}
	}
	var found []string
	for _, f := range files {
		if f == m[3] || strings.HasSuffix(f, "/"+strings.TrimPrefix(m[3], "./")) {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		return Problem{File: file, Message: "kustomize: " + msg}
	}
	// kustomize's parser names the line before the mistake, as yaml.v3
	// does; render's own reading of the file knows better.
	line, _ := strconv.Atoi(m[1])
	if data, err := mem.ReadFile("/" + found[0]); err == nil {
		if l := syntaxErrorLine(data); l > 0 {
			line = l
		}
	}
	return Problem{File: found[0], Line: line, Message: "invalid YAML: " + m[2] + " (read by " + file + ")"}
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

// quietDeprecations keeps kustomize's deprecation notes, which it prints
// straight to os.Stderr, off stderr while it builds: render returns them as
// warnings with a line instead (see deprecations). Everything else written to
// os.Stderr meanwhile is passed through. Callers hold kustomizeMu.
func quietDeprecations() (restore func()) {
	r, w, err := os.Pipe()
	if err != nil {
		return func() {}
	}
	orig := os.Stderr
	os.Stderr = w
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "# Warning: '") {
				fmt.Fprintln(orig, sc.Text())
			}
		}
		_, _ = io.Copy(orig, r)
	}()
	return func() {
		os.Stderr = orig
		w.Close()
		<-done
		r.Close()
	}
}
