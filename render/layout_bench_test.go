package render

import (
	"os"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// BenchmarkClusterPath renders one cluster folder of the Flux-style
// repository, as a Sync with spec.path does, beside `kustomize build` of the
// same folder through the kustomize library (what Flux's kustomize-
// controller runs), in the same run: render's walk, links, in-memory copy
// and checks on top of the kustomize build it contains.
func BenchmarkClusterPath(b *testing.B) {
	b.Run("homeostat-render", func(b *testing.B) {
		fsys := os.DirFS(fluxRepo)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if r := RenderPath(fsys, "clusters/production"); len(r.Problems) > 0 || len(r.Objects) != 5 {
				b.Fatalf("%d objects, problems %v", len(r.Objects), r.Problems)
			}
		}
	})
	b.Run("kustomize-build", func(b *testing.B) {
		opts := krusty.MakeDefaultOptions()
		opts.LoadRestrictions = types.LoadRestrictionsNone
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			res, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), fluxRepo+"/clusters/production")
			if err != nil || res.Size() != 5 {
				b.Fatalf("%v", err)
			}
		}
	})
}
