package controller

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func TestDeletingASyncPrunesWhatItApplied(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "sync-delete")
	f.repo.commit("a", map[string]string{"a.yaml": configMapYAML("a", "1")})
	r := &Reconciler{Client: f.c, Runner: f.runner}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(f.sync)}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, ok := configMapValue(t, f.ns, "a"); !ok {
		t.Fatal("a not applied")
	}
	if err := env.Client.Delete(ctx, f.sync); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, ok := configMapValue(t, f.ns, "a"); ok {
		t.Fatal("a survived the deletion of its Sync")
	}
	if err := env.Client.Get(ctx, req.NamespacedName, &v1alpha1.Sync{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the Sync is still there: %v", err)
	}
}
