package postgres

import (
	"context"
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

// Credential Secrets made before TLS existed get ca.crt and verify-full
// URIs with their own passwords; a password changed by hand later is left
// alone, its uri with it.
func TestSecretsMadeBeforeTLSGetTheCAAndVerifyFullURIs(t *testing.T) {
	ns := newNamespace(t)
	pg := createPostgres(t, ns, nil)
	old := CredentialSecret(pg, SecretApp, Credentials{Username: "shop", Password: "kept", Database: "shop"})
	delete(old.StringData, "sslmode")
	delete(old.StringData, "sslrootcert")
	old.StringData["uri"] = "postgresql://shop:kept@db-rw." + ns + ".svc:5432/shop"
	if err := env.Client.Create(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	r := newReconciler()
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	app := get(t, &corev1.Secret{}, ns, "db-app")
	server := get(t, &corev1.Secret{}, ns, ServerSecretName("db"))
	if string(app.Data["password"]) != "kept" || !samePEM(app.Data[keyCACert], server.Data[keyCACert]) ||
		string(app.Data["uri"]) != "postgresql://shop:kept@db-rw."+ns+".svc:5432/shop?sslmode=verify-full&sslrootcert=%2Fetc%2Fhomeostat%2Fpostgres%2Fdb%2Fca.crt" {
		t.Fatalf("app secret after the first reconcile: password %q, uri %q, ca.crt %v", app.Data["password"], app.Data["uri"], len(app.Data[keyCACert]) > 0)
	}
	app.Data["password"] = []byte("by-hand")
	if err := env.Client.Update(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	if got := get(t, &corev1.Secret{}, ns, "db-app"); got.ResourceVersion != app.ResourceVersion && string(got.Data["uri"]) != string(app.Data["uri"]) {
		t.Errorf("the operator rewrote the uri of a password changed by hand: %q", got.Data["uri"])
	}
}
