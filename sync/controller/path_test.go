package controller

import (
	"context"
	"io/fs"
	"os"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// fluxRepo is render's Flux-style repository: clusters/production uses
// ../../apps/production, which uses ../base/podinfo, a Component, a shared
// patch and an env-file generator.
const fluxRepo = "../../render/testdata/flux-repo/in"

// A Sync whose path is one cluster folder of a Flux-style repository applies
// exactly what `kustomize build` of that folder builds: references above
// the path resolve within the repository.
func TestSyncByPathAppliesWhatKustomizeBuilds(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "sync-by-path")
	files := map[string]string{}
	err := fs.WalkDir(os.DirFS(fluxRepo), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		data, err := os.ReadFile(fluxRepo + "/" + p)
		files[p] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.repo.commit("flux layout", files)
	f.sync.Spec.Path = "./clusters/production"
	if err := env.Client.Update(ctx, f.sync); err != nil {
		t.Fatal(err)
	}

	o := f.run(TriggerManual)
	mustSucceed(t, o)
	var got []string
	for _, ref := range o.Inventory {
		got = append(got, ref.Kind+" "+ref.Namespace+"/"+ref.Name)
	}
	slices.Sort(got)
	if want := kustomizeRefs(t, fluxRepo+"/clusters/production"); !slices.Equal(got, want) {
		t.Fatalf("applied %v\nkustomize build builds %v", got, want)
	}
	var dep appsv1.Deployment
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "production", Name: "podinfo"}, &dep); err != nil {
		t.Fatal(err)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 || dep.Labels["monitoring"] != "enabled" {
		t.Fatalf("Deployment production/podinfo misses the shared patch or the component: replicas %v, labels %v", dep.Spec.Replicas, dep.Labels)
	}
}

// kustomizeRefs lists what `kustomize build --load-restrictor
// LoadRestrictionsNone dir` builds, as "Kind namespace/name".
func kustomizeRefs(t *testing.T, dir string) []string {
	t.Helper()
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsNone
	res, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range res.Resources() {
		out = append(out, r.GetKind()+" "+r.GetNamespace()+"/"+r.GetName())
	}
	slices.Sort(out)
	return out
}
