package sync

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"homeostat.dev/homeostat/render"
)

func secret(name, value string) render.Object {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata":   map[string]any{"name": name},
		"stringData": map[string]any{"password": value},
	}}
	return render.Object{Object: u, Source: render.Source{File: "secrets.yaml", Line: 1}}
}

func TestPlanWritesNothingAndShowsDiffs(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "plan")
	e, w := newEngine(t)
	tg := Target{Name: "s", Namespace: ns, DefaultNamespace: ns}
	cs, err := e.Apply(ctx, tg, []render.Object{configMap("same", map[string]any{"k": "1"}), configMap("edit", map[string]any{"k": "1"}), configMap("gone", map[string]any{"k": "1"}), secret("db", "hunter2")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.reset()
	desired := []render.Object{configMap("same", map[string]any{"k": "1"}), configMap("edit", map[string]any{"k": "2"}), configMap("new", map[string]any{"k": "1"}), secret("db", "correct-horse")}
	plan, err := e.Plan(ctx, tg, desired, cs.Inventory())
	if err != nil {
		t.Fatal(err)
	}
	if n := w.n.Load(); n != 0 {
		t.Fatalf("plan wrote: %v", w.paths)
	}
	want := map[string]Action{"same": Unchanged, "edit": Configured, "new": Created, "gone": Pruned, "db": Configured}
	for _, c := range plan.Changes {
		if want[c.Ref.Name] != c.Action {
			t.Errorf("%s: %s, want %s", c.Ref, c.Action, want[c.Ref.Name])
		}
	}
	for _, c := range plan.Changes {
		switch c.Ref.Name {
		case "edit":
			if !strings.Contains(c.Diff, `-  k: "1"`) || !strings.Contains(c.Diff, `+  k: "2"`) || strings.Contains(c.Diff, "managedFields") {
				t.Errorf("edit diff:\n%s", c.Diff)
			}
		case "db":
			if strings.Contains(c.Diff, "hunter2") || strings.Contains(c.Diff, "correct-horse") || strings.Contains(c.Diff, "aHVudGVyMg") || !strings.Contains(c.Diff, "***") {
				t.Errorf("secret diff must mask values:\n%s", c.Diff)
			}
		}
	}
}
