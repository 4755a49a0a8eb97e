package render

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// renderHomeostat decodes, defaults and validates one of homeostat's own
// kinds and renders it: the object itself, then its children.
func renderHomeostat(d *document, id identity) ([]Object, []Problem) {
	if id.version != v1alpha1.GroupVersion.Version {
		return nil, []Problem{d.problem(field("apiVersion"), "unsupported version %q of %s; use %s", id.version, id.group, v1alpha1.GroupVersion)}
	}
	switch id.kind {
	case "App":
		zeros := []fieldPath{field("spec", "port"), field("spec", "autoscale", "min"), field("spec", "autoscale", "cpuPercent")}
		return renderKind(d, &v1alpha1.App{}, zeros, defaultApp, validateApp, appChildren)
	case "Postgres":
		zeros := []fieldPath{field("spec", "instances"), field("spec", "backup", "keep")}
		return renderKind(d, &v1alpha1.Postgres{}, zeros, defaultPostgres, validatePostgres, nil)
	case "Pipeline":
		zeros := []fieldPath{field("spec", "concurrency"), field("spec", "history")}
		return renderKind(d, &v1alpha1.Pipeline{}, zeros, defaultPipeline, validatePipeline, nil)
	case "Sync":
		zeros := []fieldPath{field("spec", "history")}
		return renderKind(d, &v1alpha1.Sync{}, zeros, defaultSync, validateSync, nil)
	case "Backup":
		return renderKind(d, &v1alpha1.Backup{}, nil, func(*v1alpha1.Backup) {}, validateBackup, nil)
	case "Build", "Snapshot":
		return nil, []Problem{d.problem(field("kind"), "%s is a record homeostat writes itself; it does not belong in a repository", id.kind)}
	}
	return nil, []Problem{d.problem(field("kind"), "unknown kind %q in %s (known: App, Postgres, Pipeline, Sync, Backup)", id.kind, v1alpha1.GroupVersion)}
}

// renderKind is the life of every homeostat kind in render: decoded
// strictly, defaulted as its CRD would, validated, and rendered with its
// children. Problems of all three steps are reported together.
func renderKind[T runtime.Object](d *document, obj T, zeros []fieldPath, setDefaults func(T),
	validate func(*document, T) []Problem, children func(T) []map[string]interface{}) ([]Object, []Problem) {
	problems, ok := decodeStrict(d, obj)
	if !ok {
		return nil, problems
	}
	problems = append(problems, explicitZeros(d, zeros...)...)
	setDefaults(obj)
	problems = append(problems, validate(d, obj)...)
	if len(problems) > 0 {
		return nil, problems
	}
	var kids []map[string]interface{}
	if children != nil {
		kids = children(obj)
	}
	return withChildren(d, obj, kids)
}

func validateBackup(d *document, b *v1alpha1.Backup) []Problem {
	c := checker{d: d}
	c.required(field("spec", "cluster", "name"), b.Spec.Cluster.Name)
	return c.problems
}

// explicitZeros reports numeric fields written as 0 whose valid range starts
// at 1. The Go types cannot tell 0 from absent, so defaulting would quietly
// replace them; the CRD defaults only absent fields and would reject 0.
func explicitZeros(d *document, paths ...fieldPath) []Problem {
	var problems []Problem
	for _, p := range paths {
		var v interface{} = d.obj
		for _, seg := range p {
			m, ok := v.(map[string]interface{})
			if !ok {
				v = nil
				break
			}
			v = m[seg.key]
		}
		switch v {
		case int64(0), float64(0):
			problems = append(problems, d.problem(p, "must be at least 1, got 0"))
		}
	}
	return problems
}

// withChildren turns a decoded, defaulted object and its rendered children
// into Objects. The object is re-encoded from its Go type, so what is
// applied carries the defaults and nothing the type does not know.
func withChildren(d *document, obj runtime.Object, children []map[string]interface{}) ([]Object, []Problem) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, []Problem{d.problem(nil, "cannot encode: %v", err)}
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]interface{}); ok && md["creationTimestamp"] == nil {
		delete(md, "creationTimestamp")
	}
	top := &unstructured.Unstructured{Object: m}
	out := []Object{{Object: top, Source: d.src}}
	owner := &OwnerRef{APIVersion: top.GetAPIVersion(), Kind: top.GetKind(), Namespace: top.GetNamespace(), Name: top.GetName()}
	for _, c := range children {
		out = append(out, Object{Object: &unstructured.Unstructured{Object: c}, Source: d.src, Owner: owner})
	}
	return out, nil
}

// defaultPipeline applies the Pipeline CRD's defaults.
func defaultPipeline(p *v1alpha1.Pipeline) {
	s := &p.Spec
	if len(s.Branches) == 0 {
		s.Branches = []string{"main"}
	}
	if s.File == "" {
		s.File = ".homeostat-ci.yaml"
	}
	if s.Interval == nil {
		s.Interval = minute()
	}
	if s.Concurrency == 0 {
		s.Concurrency = 1
	}
	if s.History == 0 {
		s.History = 20
	}
	if s.Notify != nil && s.Notify.Webhook != nil && s.Notify.Webhook.Format == "" {
		s.Notify.Webhook.Format = "slack"
	}
}

// gitURL accepts the URL forms go-git can clone: https://, http://, ssh://,
// git://, file:// and scp-like user@host:path.
var gitURL = regexp.MustCompile(`^((https?|ssh|git|file)://\S+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:\S+)$`)

func (c *checker) gitURL(p fieldPath, u string) {
	if c.required(p, u) && !gitURL.MatchString(u) {
		c.add(p, "%q is not a git URL (https://, ssh://, file:// or user@host:path)", u)
	}
}

// validatePipeline checks a Pipeline after defaulting.
func validatePipeline(d *document, pl *v1alpha1.Pipeline) []Problem {
	c := checker{d: d}
	s := &pl.Spec
	spec := field("spec")
	// Builds and their pods are named "<pipeline>-<n>".
	c.objectName(pl.Name, validation.IsDNS1123Label)
	c.gitURL(spec.at("repo"), s.Repo)
	for i, b := range s.Branches {
		c.glob(spec.at("branches").index(i), b)
	}
	if s.SecretRef != nil {
		c.required(spec.at("secretRef", "name"), s.SecretRef.Name)
	}
	if s.File == "" || strings.HasPrefix(s.File, "/") || strings.Contains("/"+s.File+"/", "/../") {
		c.add(spec.at("file"), "%q must be a path inside the repository", s.File)
	}
	if s.Interval != nil && s.Interval.Duration <= 0 {
		c.add(spec.at("interval"), "must be positive, got %s", s.Interval.Duration)
	}
	c.atLeast(spec.at("concurrency"), s.Concurrency, 1)
	c.atLeast(spec.at("history"), s.History, 1)
	if s.Logs != nil {
		c.s3(spec.at("logs", "s3"), &s.Logs.S3)
	}
	c.pipelineSecrets(spec.at("secrets"), s.Secrets)
	if n := s.Notify; n != nil {
		p := spec.at("notify")
		if w := n.Webhook; w != nil {
			c.required(p.at("webhook", "secretRef", "name"), w.SecretRef.Name)
			c.oneOf(p.at("webhook", "format"), w.Format, "slack", "telegram", "json")
		}
		if cs := n.CommitStatus; cs != nil {
			c.oneOf(p.at("commitStatus", "provider"), cs.Provider, "github", "gitea")
			c.required(p.at("commitStatus", "secretRef", "name"), cs.SecretRef.Name)
			if cs.URL != "" && !strings.HasPrefix(cs.URL, "https://") && !strings.HasPrefix(cs.URL, "http://") {
				c.add(p.at("commitStatus", "url"), "%q must be an http:// or https:// URL", cs.URL)
			}
		}
	}
	return c.problems
}

// pipelineSecrets checks the allow-list of secrets: each named once, each
// with at least one branch, as a glob.
func (c *checker) pipelineSecrets(p fieldPath, secrets []v1alpha1.PipelineSecret) {
	seen := map[string]bool{}
	for i, sec := range secrets {
		at := p.index(i)
		if c.required(at.at("name"), sec.Name) && seen[sec.Name] {
			c.add(at.at("name"), "%q is listed twice", sec.Name)
		}
		seen[sec.Name] = true
		if len(sec.Branches) == 0 {
			c.add(at.at("branches"), "required: the branches whose builds may use the secret (names or globs)")
		}
		for j, b := range sec.Branches {
			c.glob(at.at("branches").index(j), b)
		}
	}
}

func (c *checker) oneOf(p fieldPath, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	c.add(p, "%q must be one of %s", v, strings.Join(allowed, ", "))
}

// defaultSync applies the Sync CRD's defaults.
func defaultSync(s *v1alpha1.Sync) {
	sp := &s.Spec
	if sp.Path == "" {
		sp.Path = "./"
	}
	if sp.Interval == nil {
		sp.Interval = minute()
	}
	if sp.Timeout == nil {
		sp.Timeout = minute()
		sp.Timeout.Duration *= 5
	}
	if sp.Prune == nil {
		prune := true
		sp.Prune = &prune
	}
	if sp.Wait == nil {
		wait := true
		sp.Wait = &wait
	}
	if sp.History == 0 {
		sp.History = 20
	}
}

var commitHash = regexp.MustCompile(`^[0-9a-f]{7,64}$`)

// validateSync checks a Sync after defaulting.
func validateSync(d *document, s *v1alpha1.Sync) []Problem {
	c := checker{d: d}
	sp := &s.Spec
	spec := field("spec")
	c.gitURL(spec.at("url"), sp.URL)
	if sp.SecretRef != nil {
		c.required(spec.at("secretRef", "name"), sp.SecretRef.Name)
	}
	if r := sp.Ref; r != nil && r.Commit != "" && !commitHash.MatchString(r.Commit) {
		c.add(spec.at("ref", "commit"), "%q is not a commit hash (7 to 64 lowercase hex digits)", r.Commit)
	}
	if strings.HasPrefix(sp.Path, "/") || strings.Contains("/"+sp.Path+"/", "/../") {
		c.add(spec.at("path"), "%q must be a path inside the repository", sp.Path)
	}
	if sp.Interval.Duration <= 0 {
		c.add(spec.at("interval"), "must be positive, got %s", sp.Interval.Duration)
	}
	if sp.Timeout.Duration <= 0 {
		c.add(spec.at("timeout"), "must be positive, got %s", sp.Timeout.Duration)
	}
	if sp.TargetNamespace != "" {
		c.errs(spec.at("targetNamespace"), sp.TargetNamespace, validation.IsDNS1123Label(sp.TargetNamespace))
	}
	c.atLeast(spec.at("history"), sp.History, 1)
	return c.problems
}

func minute() *metav1.Duration { return &metav1.Duration{Duration: time.Minute} }
