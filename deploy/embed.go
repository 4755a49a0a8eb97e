// Package deploy holds homeostat's installation, a kustomize base — the CRDs,
// the namespace, RBAC and the controller Deployment — and embeds it in the
// binary, so `homeostat install` applies exactly what `kubectl apply -k deploy/`
// would.
package deploy

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Base is the kustomize base, as checked in.
//
//go:embed kustomization.yaml namespace.yaml rbac.yaml controller.yaml crds/*.yaml
var Base embed.FS

// CRDs are the generated CustomResourceDefinitions, one file per kind.
var CRDs, _ = fs.Sub(Base, "crds")

// DefaultImage is the controller image the base names when not overridden.
const DefaultImage = "ghcr.io/homeostat-dev/homeostat:latest"

// Manifests builds the base with the controller image set to image (the
// default when empty), the same way an overlay's `images:` entry would.
func Manifests(image string) ([]*unstructured.Unstructured, error) {
	mem := filesys.MakeFsInMemory()
	err := fs.WalkDir(Base, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := Base.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(path.Join("/base", p), data)
	})
	if err != nil {
		return nil, err
	}
	if image != "" {
		if err := setImage(mem, image); err != nil {
			return nil, err
		}
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/base")
	if err != nil {
		return nil, fmt.Errorf("build deploy base: %w", err)
	}
	var out []*unstructured.Unstructured
	for _, r := range resMap.Resources() {
		// Through JSON, so numbers are int64/float64 as unstructured expects.
		data, err := r.MarshalJSON()
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// setImage points the base's image entry at image, as `kustomize edit set
// image` would; the base's replacement then hands it to operator pods too (an
// overlay's images entry would run after that replacement and miss the env).
func setImage(mem filesys.FileSystem, image string) error {
	const file = "/base/kustomization.yaml"
	data, err := mem.ReadFile(file)
	if err != nil {
		return err
	}
	var k types.Kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		return fmt.Errorf("deploy/kustomization.yaml: %w", err)
	}
	name, tag, digest := splitImage(image)
	k.Images = []types.Image{{Name: "homeostat", NewName: name, NewTag: tag, Digest: digest}}
	if data, err = yaml.Marshal(k); err != nil {
		return err
	}
	return mem.WriteFile(file, data)
}

// splitImage splits "host:5000/repo:tag@sha256:..." into name, tag and digest;
// a colon before the last slash belongs to the registry's port.
func splitImage(image string) (name, tag, digest string) {
	if i := strings.Index(image, "@"); i >= 0 {
		image, digest = image[:i], image[i+1:]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image, tag = image[:i], image[i+1:]
	}
	return image, tag, digest
}
