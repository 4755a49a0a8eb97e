package render

import (
	"encoding/json"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// fluxRepo is a repository laid out the way Flux users lay theirs out:
// clusters/<name> uses ../../apps/<name>, which uses ../base/podinfo, a
// Component, a patch from a shared folder and an env-file generator from
// another; an unused Component sits beside the used one.
const fluxRepo = "testdata/flux-repo/in"

// A Sync's path chooses what to build; the repository root is the boundary,
// and the result is exactly what `kustomize build` of that folder builds.
func TestPathRendersWhatKustomizeBuilds(t *testing.T) {
	for _, dir := range []string{"clusters/production", "./clusters/staging/", "/clusters/production"} {
		t.Run(dir, func(t *testing.T) {
			r := RenderPath(os.DirFS(fluxRepo), dir)
			if len(r.Problems) > 0 {
				t.Fatalf("problems: %v", r.Problems)
			}
			got := canonical(t, r.Objects)
			want := kustomizeBuild(t, path.Join(fluxRepo, dir))
			if !slices.Equal(got, want) {
				t.Fatalf("render of %s differs from kustomize build:\ngot  %s\nwant %s", dir, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
			}
			for _, o := range r.Objects {
				if !strings.HasPrefix(o.Source.File, "clusters/") {
					t.Errorf("%s %s: source %s, want the cluster's kustomization, named from the repository root", o.Object.GetKind(), o.Object.GetName(), o.Source)
				}
			}
		})
	}
}

// The three ways the standard layout used to fail, each on its own.
func TestLayoutProblems(t *testing.T) {
	cases := []struct {
		name, dir string
		want      func(Result) string
	}{
		{"parent references stay inside the repository", "clusters/production", func(r Result) string {
			return expectObject(r, "Deployment", "production", "podinfo")
		}},
		{"an unused Component is skipped", ".", func(r Result) string {
			for _, o := range r.Objects {
				if o.Source.File == "components/debug/kustomization.yaml" {
					return "the unused component was built"
				}
			}
			return expectObject(r, "ConfigMap", "production", "scrape-config")
		}},
		{"a shared patch is not also a manifest", ".", func(r Result) string {
			for _, o := range r.Objects {
				if o.Source.File == "patches/replicas.yaml" {
					return "patches/replicas.yaml was read as a manifest too"
				}
			}
			return expectObject(r, "Deployment", "staging", "podinfo")
		}},
		{"deprecated fields are warnings with a line", "clusters/staging", func(r Result) string {
			if len(r.Warnings) != 1 || r.Warnings[0].Error() != "apps/staging/kustomization.yaml:7: 'patchesStrategicMerge' is deprecated. Please use 'patches' instead. Run 'kustomize edit fix' to update your Kustomization automatically." {
				return "warnings: " + problemsString(r.Warnings)
			}
			return ""
		}},
		{"a path outside the repository is clamped to it", "../../clusters/staging", func(r Result) string {
			return expectObject(r, "Deployment", "staging", "podinfo")
		}},
		{"a missing path is a problem", "clusters/qa", func(r Result) string {
			if len(r.Problems) != 1 || r.Problems[0].Error() != "clusters/qa: path is not in the repository" {
				return "problems: " + problemsString(r.Problems)
			}
			return ""
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := RenderPath(os.DirFS(fluxRepo), c.dir)
			if msg := c.want(r); msg != "" {
				t.Fatal(msg)
			}
		})
	}
}

// A folder referenced from outside the rendered path must really exist in
// the repository: a reference above the root stays a problem.
func TestReferenceAboveRootIsAProblem(t *testing.T) {
	repo := t.TempDir()
	write(t, repo, "clusters/prod/kustomization.yaml", "resources: [../../../elsewhere]\n")
	r := RenderPath(os.DirFS(repo), "clusters/prod")
	if len(r.Problems) != 1 || r.Problems[0].Error() != `clusters/prod/kustomization.yaml:1: resources[0]: "../../../elsewhere" is outside the repository` {
		t.Fatalf("problems: %s", problemsString(r.Problems))
	}
}

func write(t *testing.T, root, name, data string) {
	t.Helper()
	p := root + "/" + name
	if err := os.MkdirAll(path.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func expectObject(r Result, kind, ns, name string) string {
	if len(r.Problems) > 0 {
		return "problems: " + problemsString(r.Problems)
	}
	for _, o := range r.Objects {
		if o.Object.GetKind() == kind && o.Object.GetNamespace() == ns && o.Object.GetName() == name {
			return ""
		}
	}
	return "no " + kind + " " + ns + "/" + name
}

func problemsString(ps []Problem) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Error())
	}
	return strings.Join(s, "; ")
}

// canonical is each object as sorted-key JSON, the list sorted.
func canonical(t *testing.T, objs []Object) []string {
	t.Helper()
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		b, err := json.Marshal(o.Object.Object)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	slices.Sort(out)
	return out
}

// kustomizeBuild is `kustomize build --load-restrictor LoadRestrictionsNone
// dir`, as Flux runs it, through the same library the kustomize CLI is built
// from, reading the disk.
func kustomizeBuild(t *testing.T, dir string) []string {
	t.Helper()
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsNone
	res, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []string
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	slices.Sort(out)
	return out
}
