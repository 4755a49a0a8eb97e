package sync

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"homeostat.dev/homeostat/render"
)

const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
`

const widget = `apiVersion: example.com/v1
kind: Widget
metadata:
  name: w
spec:
  size: 3
`

const stagedNamespace = `apiVersion: v1
kind: Namespace
metadata:
  name: staged-new
`

func fromYAML(t *testing.T, file, doc string) render.Object {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return render.Object{Object: u, Source: render.Source{File: file, Line: 1}}
}

// A CRD, a Namespace and objects of both arrive in one commit, listed in
// the worst order: the stages still apply them.
func TestApplyStagesCRDsAndNamespacesFirst(t *testing.T) {
	e, _ := newEngine(t)
	cm := configMap("in-new-namespace", map[string]any{"k": "1"})
	cm.Object.SetNamespace("staged-new")
	w := fromYAML(t, "widget.yaml", widget)
	w.Object.SetNamespace("staged-new")
	desired := []render.Object{w, cm, fromYAML(t, "crd.yaml", widgetCRD), fromYAML(t, "ns.yaml", stagedNamespace)}
	tg := Target{Name: "staged", Namespace: "default", DefaultNamespace: "default"}
	cs, err := e.Apply(context.Background(), tg, desired, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, cs)
	}
	if cs.Count(Created) != 4 {
		t.Fatalf("want 4 created, got\n%s", cs)
	}
	order := map[string]int{}
	for i, c := range cs.Changes {
		order[c.Ref.Kind] = i
	}
	if order["CustomResourceDefinition"] > order["Widget"] || order["Namespace"] > order["ConfigMap"] {
		t.Fatalf("stages out of order: %v", order)
	}
}

// An object of a kind nobody defines fails the apply before anything of the
// set is written, naming its file.
func TestApplyUnknownKindWritesNothing(t *testing.T) {
	e, w := newEngine(t)
	gadget := fromYAML(t, "gadget.yaml", "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g\n")
	desired := []render.Object{fromYAML(t, "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: never-made\n"), configMap("c", map[string]any{"k": "1"}), gadget}
	_, err := e.Apply(context.Background(), Target{Name: "u", Namespace: "default", DefaultNamespace: "default"}, desired, nil)
	if err == nil || !strings.Contains(err.Error(), "gadget.yaml") {
		t.Fatalf("want an error naming gadget.yaml, got %v", err)
	}
	if n := w.n.Load(); n != 0 {
		t.Fatalf("wrote %d requests: %v", n, w.paths)
	}
}
