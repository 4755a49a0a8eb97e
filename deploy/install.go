package deploy

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"homeostat.dev/homeostat/render"
	hsync "homeostat.dev/homeostat/sync"
)

// Target is the owner homeostat's own installation is applied as: its objects
// carry these labels, which is how uninstall finds exactly them.
var Target = hsync.Target{Name: "homeostat-install", Namespace: "homeostat-system", DefaultNamespace: "homeostat-system"}

// Install applies the base (with image as the controller image) by
// server-side apply; with dryRun it only plans, writing nothing.
func Install(ctx context.Context, eng *hsync.Engine, image string, dryRun bool) (hsync.ChangeSet, error) {
	objs, err := Manifests(image)
	if err != nil {
		return hsync.ChangeSet{}, err
	}
	desired := make([]render.Object, len(objs))
	for i, o := range objs {
		desired[i] = render.Object{Object: o, Source: render.Source{File: "deploy/"}}
	}
	if dryRun {
		return eng.Plan(ctx, Target, desired, nil)
	}
	return eng.Apply(ctx, Target, desired, nil)
}

// Uninstall deletes what Install applied. The CRDs and the namespace stay
// unless withCRDs is set: deleting a CRD deletes every object of its kind,
// and the namespace holds the Syncs and Snapshots, so losing them must be
// asked for. Workload volumes are never touched.
func Uninstall(ctx context.Context, eng *hsync.Engine, withCRDs bool) (hsync.ChangeSet, error) {
	objs, err := Manifests("")
	if err != nil {
		return hsync.ChangeSet{}, err
	}
	var stale hsync.Inventory
	for _, o := range objs {
		if !withCRDs && keptOnUninstall(o) {
			continue
		}
		stale = append(stale, hsync.RefOf(o))
	}
	return eng.Prune(ctx, Target, stale)
}

func keptOnUninstall(o *unstructured.Unstructured) bool {
	return o.GetKind() == "CustomResourceDefinition" || o.GetKind() == "Namespace"
}
