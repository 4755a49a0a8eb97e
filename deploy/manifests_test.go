package deploy

import (
	"testing"
)

func TestSplitImage(t *testing.T) {
	cases := []struct{ in, name, tag, digest string }{
		{"ghcr.io/homeostat-dev/homeostat:v1", "ghcr.io/homeostat-dev/homeostat", "v1", ""},
		{"localhost:5000/homeostat", "localhost:5000/homeostat", "", ""},
		{"localhost:5000/homeostat:dev", "localhost:5000/homeostat", "dev", ""},
		{"homeostat@sha256:abc", "homeostat", "", "sha256:abc"},
		{"r.example.com/h:1.2@sha256:abc", "r.example.com/h", "1.2", "sha256:abc"},
	}
	for _, c := range cases {
		n, tg, d := splitImage(c.in)
		if n != c.name || tg != c.tag || d != c.digest {
			t.Errorf("splitImage(%q) = %q %q %q, want %q %q %q", c.in, n, tg, d, c.name, c.tag, c.digest)
		}
	}
}

// The image given to Manifests reaches both the controller container and the
// HOMEOSTAT_IMAGE it hands to the pods it starts.
func TestManifestsSetImageEverywhere(t *testing.T) {
	objs, err := Manifests("registry.example.com/homeostat:v9")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var found bool
	for _, o := range objs {
		kinds[o.GetKind()]++
		if o.GetKind() != "Deployment" {
			continue
		}
		found = true
		containers, _, _ := unstructuredSlice(o.Object, "spec", "template", "spec", "containers")
		c := containers[0].(map[string]any)
		if c["image"] != "registry.example.com/homeostat:v9" {
			t.Errorf("controller image = %v", c["image"])
		}
		env := c["env"].([]any)[0].(map[string]any)
		if env["name"] != "HOMEOSTAT_IMAGE" || env["value"] != "registry.example.com/homeostat:v9" {
			t.Errorf("HOMEOSTAT_IMAGE env = %v", env)
		}
	}
	if !found {
		t.Fatal("no Deployment in the base")
	}
	if kinds["CustomResourceDefinition"] != 7 || kinds["ClusterRole"] != 2 || kinds["Namespace"] != 1 {
		t.Errorf("unexpected kinds in base: %v", kinds)
	}
}

func unstructuredSlice(obj map[string]any, fields ...string) ([]any, bool, error) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		cur = m[f]
	}
	s, ok := cur.([]any)
	return s, ok, nil
}
