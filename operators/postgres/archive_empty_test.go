package postgres

import (
	"bytes"
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/internal/s3test"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// testStore is a real MinIO bucket for the state machine's tests: since a
// new cluster checks its WAL archive before it creates a volume, a cluster
// with backups needs a store that answers.
type testStore struct {
	s3     *s3test.Server
	bucket string
}

func startStore(t *testing.T, bucket string) testStore {
	t.Helper()
	s3, err := s3test.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s3.Stop() })
	return testStore{s3: s3, bucket: bucket}
}

// spec is the store as a Postgres names it, with credentials in secret.
func (s testStore) spec(secret string) v1alpha1.S3Store {
	return v1alpha1.S3Store{Endpoint: s.s3.Endpoint, Bucket: s.bucket, Path: "db", Insecure: true,
		SecretRef: v1alpha1.LocalObjectReference{Name: secret}}
}

// secret holds the store's credentials.
func (s testStore) secret(ns, name string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		StringData: map[string]string{"AWS_ACCESS_KEY_ID": s.s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s.s3.SecretKey}}
}

// A new cluster on a WAL archive path that already holds WAL (another
// cluster's) would fail every wal-push over it while pg_wal grows: it
// stalls with ArchiveNotEmpty before it creates a volume, and starts once
// the path is emptied. Bootstrapping from that very path is allowed.
func TestNewClusterRefusesUsedWALArchive(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	store := startStore(t, "used-archive")
	if err := env.Client.Create(ctx, store.secret(ns, "s3")); err != nil {
		t.Fatal(err)
	}
	s3, err := store.s3.Open(ctx, store.bucket, "db")
	if err != nil {
		t.Fatal(err)
	}
	const seg = "wal/000000010000000000000001"
	if err := s3.Put(ctx, seg, bytes.NewReader([]byte("another cluster's WAL")), -1, nil); err != nil {
		t.Fatal(err)
	}
	pg := createPostgres(t, ns, func(pg *v1alpha1.Postgres) {
		pg.Spec.Backup = &v1alpha1.PostgresBackup{S3: store.spec("s3")}
	})
	if _, err := reconcileOnce(t, newReconciler(), pg); err == nil || !isTerminal(err) {
		t.Fatalf("want a terminal error, got %v", err)
	}
	got := get(t, &v1alpha1.Postgres{}, ns, "db")
	st := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionStalled)
	if st == nil || st.Status != metav1.ConditionTrue || st.Reason != "ArchiveNotEmpty" || !strings.Contains(st.Message, seg) {
		t.Fatalf("Stalled condition = %+v, want ArchiveNotEmpty naming %s", st, seg)
	}
	var pvcs corev1.PersistentVolumeClaimList
	if err := env.Client.List(ctx, &pvcs, client.InNamespace(ns)); err != nil || len(pvcs.Items) != 0 {
		t.Fatalf("a cluster refused its archive created volumes: %d, %v", len(pvcs.Items), err)
	}
	if strings.Contains(st.Message, store.s3.SecretKey) {
		t.Error("the condition carries the store's secret key")
	}

	// The same archive as the bootstrap source continues its history.
	got.Spec.Bootstrap = &v1alpha1.Bootstrap{FromBackup: &v1alpha1.BootstrapFromBackup{S3: store.spec("s3")}}
	if err := newReconciler().checkArchiveEmpty(ctx, &cluster{pg: got}); err != nil {
		t.Errorf("bootstrapping from the archive itself: %v", err)
	}
}
