package snapshot

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"homeostat.dev/homeostat/render"
)

func obj(kind, name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": "demo"},
		"data":     map[string]any{"k": "dmFsdWU="},
	}}
}

func TestEncodeLeavesSecretsOutAndKeepsOrigins(t *testing.T) {
	owner := &render.OwnerRef{APIVersion: "homeostat.dev/v1alpha1", Kind: "App", Namespace: "demo", Name: "web"}
	in := []render.Object{
		{Object: obj("ConfigMap", "a"), Source: render.Source{File: "apps/a.yaml", Line: 3}},
		{Object: obj("Secret", "password"), Source: render.Source{File: "apps/s.yaml"}},
		{Object: obj("Service", "web"), Source: render.Source{File: "apps/web.yaml", Line: 1}, Owner: owner},
	}
	data, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("want 2 objects (the Secret left out), got %d", len(out))
	}
	for _, o := range out {
		if o.Object.GetKind() == "Secret" {
			t.Fatal("a Secret was recorded")
		}
		if len(o.Object.GetAnnotations()) != 0 {
			t.Fatalf("bookkeeping annotations leaked: %v", o.Object.GetAnnotations())
		}
	}
	if out[0].Source != (render.Source{File: "apps/a.yaml", Line: 3}) || out[0].Owner != nil {
		t.Fatalf("ConfigMap origin: %+v %+v", out[0].Source, out[0].Owner)
	}
	if out[1].Owner == nil || *out[1].Owner != *owner {
		t.Fatalf("Service owner: %+v", out[1].Owner)
	}
	if strings.Contains(string(data), "password") {
		t.Fatal("the compressed data must not hold the Secret")
	}
	if empty, _ := Encode(nil); empty != nil {
		t.Fatal("no objects must encode to nothing")
	}
}
