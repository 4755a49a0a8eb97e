package postgres

import (
	"bytes"
	"flag"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// specCases are the clusters whose generated objects are pinned in
// testdata/specs/<name>.yaml.
func specCases() map[string]*v1alpha1.Postgres {
	base := func() *v1alpha1.Postgres {
		return &v1alpha1.Postgres{
			ObjectMeta: metav1.ObjectMeta{Name: "shopdb", Namespace: "web"},
			Spec: v1alpha1.PostgresSpec{
				Version: "16", Instances: 3, Synchronous: 1,
				Storage:  v1alpha1.Storage{Size: "20Gi"},
				Database: "shop",
			},
		}
	}
	minimal := base()
	minimal.Spec = v1alpha1.PostgresSpec{Storage: v1alpha1.Storage{Size: "1Gi"}}

	full := base()
	full.Spec.Image = "registry.example.com/postgres:16.4"
	full.Spec.Owner = "shop_owner"
	full.Spec.Parameters = map[string]string{"max_connections": "200", "shared_buffers": "256MB"}
	full.Spec.Resources = &v1alpha1.Resources{CPU: "500m", Memory: "1Gi"}
	full.Spec.Storage.StorageClassName = ptr.To("fast")
	full.Spec.Backup = &v1alpha1.PostgresBackup{
		S3:       v1alpha1.S3Store{Endpoint: "minio.storage:9000", Bucket: "backups", Path: "web/shopdb", Insecure: true, SecretRef: v1alpha1.LocalObjectReference{Name: "s3-creds"}},
		Schedule: "0 3 * * *", Keep: 7,
	}

	restore := base()
	restore.Name = "shopdb-restored"
	restore.Spec.Bootstrap = &v1alpha1.Bootstrap{FromBackup: &v1alpha1.BootstrapFromBackup{
		S3:         v1alpha1.S3Store{Endpoint: "s3.amazonaws.com", Bucket: "backups", Path: "web/shopdb", Region: "eu-west-1", SecretRef: v1alpha1.LocalObjectReference{Name: "old-creds"}},
		TargetTime: &metav1.Time{Time: time.Date(2026, 11, 24, 12, 30, 0, 0, time.UTC)},
	}}
	restoreLSN := base()
	restoreLSN.Name = "shopdb-lsn"
	restoreLSN.Spec.Bootstrap = &v1alpha1.Bootstrap{FromBackup: &v1alpha1.BootstrapFromBackup{
		S3: v1alpha1.S3Store{Endpoint: "s3.amazonaws.com", Bucket: "backups", SecretRef: v1alpha1.LocalObjectReference{Name: "old-creds"}}, BackupID: "20261124T030000.000Z", TargetLSN: "0/3000060",
	}}
	return map[string]*v1alpha1.Postgres{"minimal": minimal, "replicated": base(), "full": full, "restore-time": restore, "restore-lsn": restoreLSN}
}

// TestSpecBuildersMatchGoldenFiles pins every object the operator creates for
// a cluster, so a change to a pod or Job spec shows up in review.
func TestSpecBuildersMatchGoldenFiles(t *testing.T) {
	o := Options{HomeostatImage: "ghcr.io/homeostat/homeostat:v0.1.0"}
	for name, pg := range specCases() {
		t.Run(name, func(t *testing.T) {
			rnd := mrand.NewChaCha8([32]byte{1})
			var objs []any
			for _, kind := range secretKinds {
				c, err := NewCredentials(pg, kind, rnd)
				if err != nil {
					t.Fatal(err)
				}
				objs = append(objs, CredentialSecret(pg, kind, c))
			}
			for _, s := range Services(pg) {
				objs = append(objs, s)
			}
			first := InstanceName(pg.Name, 1)
			objs = append(objs, InstanceServiceAccount(pg), InstanceRole(pg, []string{InstanceName(pg.Name, 2), first}), InstanceRoleBinding(pg))
			objs = append(objs, PVC(pg, first, 1))
			if pg.Spec.Bootstrap != nil {
				objs = append(objs, RestoreJob(pg, first, o))
			} else {
				objs = append(objs, InitJob(pg, first, o))
			}
			objs = append(objs, InstancePod(pg, first, RolePrimary, o), JoinJob(pg, InstanceName(pg.Name, 2), o),
				InstancePod(pg, InstanceName(pg.Name, 2), RoleReplica, o))
			if pg.Spec.Backup != nil {
				b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "shopdb-20261124-030000", Namespace: pg.Namespace}}
				objs = append(objs, BackupJob(pg, b, o))
			}
			var buf bytes.Buffer
			for _, obj := range objs {
				y, err := yaml.Marshal(obj)
				if err != nil {
					t.Fatal(err)
				}
				buf.WriteString("---\n")
				buf.Write(y)
			}
			golden(t, filepath.Join("testdata", "specs", name+".yaml"), buf.Bytes())
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what the builders produce (run `go test ./operators/postgres -run TestSpecBuilders -update` and review the diff):\n%s", path, got)
	}
}
