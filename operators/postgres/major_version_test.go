package postgres

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// A major version change is refused by the API server itself (the CRD's
// transition rule), with the supported path in the message, while a new
// image (a minor version) and the update strategy may change.
func TestMajorVersionChangeIsRefusedWithTheSupportedPath(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	pg := createPostgres(t, ns, func(pg *v1alpha1.Postgres) { pg.Spec.Version = "15" })
	if got := get(t, &v1alpha1.Postgres{}, ns, pg.Name).Spec.PrimaryUpdateStrategy; got != "unsupervised" {
		t.Errorf("primaryUpdateStrategy defaults to %q, want unsupervised", got)
	}

	pg.Spec.Version = "16"
	err := env.Client.Update(ctx, pg)
	if !apierrors.IsInvalid(err) {
		t.Fatalf("version 15 -> 16 accepted or refused for another reason: %v", err)
	}
	for _, want := range []string{"spec.version", "cannot change", "pg_dump", "bootstrap.fromBackup", "spec.image"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal does not mention %q: %v", want, err)
		}
	}

	pg = get(t, &v1alpha1.Postgres{}, ns, pg.Name)
	pg.Spec.Image = "postgres:15.9"
	pg.Spec.PrimaryUpdateStrategy = "supervised"
	if err := env.Client.Update(ctx, pg); err != nil {
		t.Fatalf("a minor version (new image) and the strategy must be accepted: %v", err)
	}
	pg.Spec.PrimaryUpdateStrategy = "sometimes"
	if err := env.Client.Update(ctx, pg); !apierrors.IsInvalid(err) {
		t.Errorf("primaryUpdateStrategy %q accepted: %v", pg.Spec.PrimaryUpdateStrategy, err)
	}
}
