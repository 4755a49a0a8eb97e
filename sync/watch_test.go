package sync

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render"
)

func TestWatchingEngineSendsNoRequestWhenNothingChanged(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "watch-noop")
	e, w := newEngineWith(t, Options{Watch: true})
	tg := Target{Name: "s", Namespace: ns, DefaultNamespace: ns}
	desired := []render.Object{configMap("a", map[string]any{"k": "1"}), configMap("b", map[string]any{"k": "1"})}
	cs, err := e.Apply(ctx, tg, desired, nil)
	if err != nil || cs.Count(Created) != 2 {
		t.Fatalf("first apply: %v\n%s", err, cs)
	}
	// Right after its own writes the Engine already reads them from its
	// watch: nothing to send, nothing to ask.
	w.reset()
	cs, err = e.Apply(ctx, tg, desired, cs.Inventory())
	if err != nil || cs.Changed() {
		t.Fatalf("no-op apply: %v\n%s", err, cs)
	}
	if n := w.all.Load(); n != 0 {
		t.Fatalf("a no-op apply by a watching Engine sent %d requests", n)
	}

	// A change by hand arrives as a watch event and is put back.
	var cm corev1.ConfigMap
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "a"}, &cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["k"] = "by hand"
	if err := env.Client.Update(ctx, &cm, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs, err = e.Apply(ctx, tg, desired, cs.Inventory())
		if err != nil {
			t.Fatal(err)
		}
		if cs.Drifted() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watching Engine never saw the edit:\n%s", cs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "a"}, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["k"] != "1" {
		t.Fatalf("drift not put back: %v", cm.Data)
	}
}

// A watching Engine that starts over objects another Engine applied (the
// controller restarted) trusts them from its watch's first list: no GET and
// no dry-run per object. (An informer's streamed list runs the cache's
// transform twice; it must keep what it read from the managed fields.)
func TestNewWatchingEngineTrustsWhatItsWatchListed(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "watch-restart")
	tg := Target{Name: "s", Namespace: ns, DefaultNamespace: ns}
	desired := []render.Object{configMap("a", map[string]any{"k": "1"}), configMap("b", map[string]any{"k": "1"})}
	before, _ := newEngine(t)
	cs, err := before.Apply(ctx, tg, desired, nil)
	if err != nil || cs.Count(Created) != 2 {
		t.Fatalf("first apply: %v\n%s", err, cs)
	}
	after, w := newEngineWith(t, Options{Watch: true})
	defer after.Close()
	cs, err = after.Apply(ctx, tg, desired, cs.Inventory())
	if err != nil || cs.Changed() {
		t.Fatalf("no-op apply after a restart: %v\n%s", err, cs)
	}
	if n := w.dry.Load(); n != 0 {
		t.Fatalf("a restarted watching Engine dry-ran %d unchanged objects", n)
	}
	// The slim copy it keeps is a fixed point of the transform.
	o := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "x", ManagedFields: []metav1.ManagedFieldsEntry{{
		Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, FieldsV1: metav1.NewFieldsV1(`{"f:data":{}}`),
	}}}}
	once, _ := slim(o)
	twice, _ := slim(once)
	if got, want := twice.(*metav1.PartialObjectMetadata).Annotations[cacheFields], ownFieldsHash(o.ManagedFields); got != want || want == "" {
		t.Fatalf("slim twice keeps fields hash %q, want %q", got, want)
	}
}
