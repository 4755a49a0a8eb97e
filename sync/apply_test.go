package sync

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render"
)

func TestApplyCreatesThenWritesNothingWhenNothingChanged(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "apply-noop")
	e, w := newEngine(t)
	tg := Target{Name: "s", Namespace: ns, DefaultNamespace: ns}
	desired := []render.Object{configMap("a", map[string]any{"k": "1"}), configMap("b", map[string]any{"k": "2"})}

	cs, err := e.Apply(ctx, tg, desired, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Count(Created) != 2 {
		t.Fatalf("first apply: want 2 created, got\n%s", cs)
	}
	// A fresh engine knows nothing in memory: it must still find the
	// objects unchanged from their annotations and managed fields.
	fresh, fw := newEngine(t)
	for _, run := range []struct {
		e *Engine
		w *writeCounter
	}{{e, w}, {fresh, fw}} {
		w := run.w
		w.reset()
		cs, err = run.e.Apply(ctx, tg, desired, cs.Inventory())
		if err != nil {
			t.Fatal(err)
		}
		if cs.Count(Unchanged) != 2 || cs.Changed() {
			t.Fatalf("second apply: want 2 unchanged, got\n%s", cs)
		}
		if n := w.n.Load(); n != 0 {
			t.Fatalf("a no-op apply sent %d write requests: %v", n, w.paths)
		}
	}
}

func TestApplyConfiguresOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "apply-update")
	e, w := newEngine(t)
	tg := Target{Name: "s", Namespace: ns, DefaultNamespace: ns}
	cs, err := e.Apply(ctx, tg, []render.Object{configMap("a", map[string]any{"k": "1"}), configMap("b", map[string]any{"k": "2"})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.reset()
	cs, err = e.Apply(ctx, tg, []render.Object{configMap("a", map[string]any{"k": "changed"}), configMap("b", map[string]any{"k": "2"})}, cs.Inventory())
	if err != nil {
		t.Fatal(err)
	}
	if cs.Count(Configured) != 1 || cs.Count(Unchanged) != 1 {
		t.Fatalf("want a configured and b unchanged, got\n%s", cs)
	}
	if n := w.n.Load(); n != 1 {
		t.Fatalf("want exactly 1 write, got %d: %v", n, w.paths)
	}
	var cm corev1.ConfigMap
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "a"}, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["k"] != "changed" {
		t.Fatalf("a not updated: %v", cm.Data)
	}
}

func TestApplyRejectsDuplicatesNamingBothFiles(t *testing.T) {
	ns := namespace(t, "apply-dup")
	e, w := newEngine(t)
	tg := Target{Name: "s", Namespace: ns, DefaultNamespace: ns}
	a, b := configMap("a", map[string]any{"k": "1"}), configMap("a", map[string]any{"k": "2"})
	b.Source.File = "other/a.yaml"
	_, err := e.Apply(context.Background(), tg, []render.Object{a, b}, nil)
	if err == nil || !strings.Contains(err.Error(), "apps/a.yaml") || !strings.Contains(err.Error(), "other/a.yaml") {
		t.Fatalf("want an error naming both files, got %v", err)
	}
	if w.n.Load() != 0 {
		t.Fatalf("a rejected set was written: %v", w.paths)
	}
}
