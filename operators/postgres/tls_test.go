package postgres

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// A cluster made before TLS existed keeps working while its pods are
// replaced: the operator logs in to a pod without the certificate in
// plaintext (its pg_hba.conf allows it) and to one with it with
// verify-full; replicas and backups made while the primary serves no TLS
// reach it with sslmode=prefer, and verify once it does.
func TestPodsMadeBeforeTLSAreReachedAsTheyServe(t *testing.T) {
	pg := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"},
		Spec: v1alpha1.PostgresSpec{Instances: 2, Storage: v1alpha1.Storage{Size: "1Gi"}}}
	pg.Status.Primary = "db-1"
	o := Options{HomeostatImage: "homeostat:test"}
	old := InstancePod(pg, "db-1", RolePrimary, o)
	old.Spec.Volumes = slices.DeleteFunc(old.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == tlsVolume })
	current := InstancePod(pg, "db-2", RoleReplica, o)
	ca := []byte("the cluster CA")
	bk := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "shop"}}
	r := &PostgresReconciler{Options: o}
	for _, tt := range []struct {
		name           string
		primary        *corev1.Pod
		wantPlain      bool
		wantLoginTLS   map[string]bool
		wantBackupPGSS bool
	}{
		{"primary made before TLS", old, true, map[string]bool{"db-1": false, "db-2": true}, false},
		{"primary serves TLS", current, false, map[string]bool{"db-2": true}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &cluster{pg: pg.DeepCopy(), ca: ca, password: "pw", pods: map[string]*corev1.Pod{"db-2": current}}
			c.pg.Status.Primary = tt.primary.Name
			c.pods[tt.primary.Name] = tt.primary
			for name, want := range tt.wantLoginTLS {
				l := c.login(name)
				if (len(l.ca) > 0) != want || (want && l.serverName != "db-rw.shop.svc") {
					t.Errorf("login to %s: TLS %v (server name %q), want %v", name, len(l.ca) > 0, l.serverName, want)
				}
			}
			opts := r.optionsFor(c)
			join := strings.Join(JoinJob(c.pg, "db-3", opts).Spec.Template.Spec.Containers[0].Command, " ")
			if got := strings.Contains(join, "--upstream-sslmode prefer"); got != tt.wantPlain || !strings.Contains(join, "--tls-dir "+tlsMount) {
				t.Errorf("join args %q: prefer=%v, want %v, and --tls-dir", join, got, tt.wantPlain)
			}
			// The pod is the same either way, so a rolling update's spec
			// hash does not change when the primary starts serving TLS.
			run := InstancePod(c.pg, "db-3", RoleReplica, opts)
			if want := InstancePod(c.pg, "db-3", RoleReplica, o); !equality.Semantic.DeepEqual(run.Spec, want.Spec) {
				t.Errorf("a replica's pod depends on whether the primary serves TLS")
			}
			job := BackupJob(c.pg, bk, opts).Spec.Template.Spec
			verifies := slices.ContainsFunc(job.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == "PGSSLMODE" && e.Value == "verify-full" })
			if verifies != tt.wantBackupPGSS {
				t.Errorf("backup Job verify-full = %v, want %v", verifies, tt.wantBackupPGSS)
			}
			for _, v := range job.Volumes {
				if v.Secret != nil && v.Secret.SecretName == ServerSecretName("db") && (len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != keyCACert) {
					t.Errorf("backup Job mounts %v of the server Secret, want only ca.crt", v.Secret.Items)
				}
			}
		})
	}
}
