package postgres

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/lib/pq"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/internal/pgtest"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// scramServer starts a real PostgreSQL whose TCP logins need a scram
// password, with the superuser's set to superPassword; it returns its
// address and a socket connection as the superuser.
func scramServer(t *testing.T, superPassword string) (string, *sql.DB) {
	t.Helper()
	dir, err := pgtest.TempDir("homeostat-auth-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	if err := pgtest.Init(data); err != nil {
		t.Fatal(err)
	}
	hba := filepath.Join(dir, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := pgtest.Start(data, pgtest.Options{Settings: map[string]string{"hba_file": hba}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	db, err := srv.DB("postgres")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec("ALTER ROLE " + superuserName + " PASSWORD " + pq.QuoteLiteral(superPassword)); err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(srv.Port), db
}

// onRealPrimary is a reconciler and the working state of pg as the steps
// after Observe see it: primary "db-1", answering, is the real server at
// addr, which knows superPassword.
func onRealPrimary(t *testing.T, pg *v1alpha1.Postgres, addr, superPassword string) (*PostgresReconciler, *cluster) {
	t.Helper()
	r := newReconciler()
	r.Resolve = func(context.Context, string, string) (string, error) { return addr, nil }
	c := &cluster{pg: get(t, &v1alpha1.Postgres{}, pg.Namespace, pg.Name), password: superPassword,
		obs: map[string]Observation{"db-1": {Reachable: true}}}
	c.pg.Status.Primary = "db-1"
	return r, c
}

// A real server that asks for scram passwords over TCP tells a wrong
// password (alive, AuthFailed) apart from a server that is not there.
func TestObserveTellsARefusedPasswordFromALostInstance(t *testing.T) {
	addr, _ := scramServer(t, "right")
	free, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, addr, password  string
		reachable, authFailed bool
	}{
		{"the secret's password", addr, "right", true, false},
		{"a password the server no longer has", addr, "wrong", false, true},
		{"nobody listening", "127.0.0.1:" + strconv.Itoa(free), "right", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := pgConn(tt.addr, superLogin{password: tt.password})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			o := observeInstance(context.Background(), db, tt.addr)
			if o.Reachable != tt.reachable || o.AuthFailed != tt.authFailed {
				t.Fatalf("reachable=%v authFailed=%v (err %v), want %v %v", o.Reachable, o.AuthFailed, o.Err, tt.reachable, tt.authFailed)
			}
		})
	}
}

// A primary that refuses the operator's password is alive: well past the
// failover delay it is not fenced, nothing is promoted, and the Postgres
// says what to do.
func TestRefusedPasswordIsNoFailover(t *testing.T) {
	ns := newNamespace(t)
	pg := createPostgres(t, ns, func(pg *v1alpha1.Postgres) { pg.Spec.Instances = 2 })
	readyVolumes(t, pg, 2)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	r := newReconciler()
	r.Now = func() time.Time { return now }
	pods := map[string]*corev1.Pod{}
	for _, name := range []string{"db-1", "db-2"} {
		p := InstancePod(pg, name, RoleReplica, r.Options)
		if err := env.Client.Create(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		pods[name] = p
	}
	c := &cluster{
		pg:   get(t, &v1alpha1.Postgres{}, ns, "db"),
		pods: pods,
		obs:  map[string]Observation{"db-1": {AuthFailed: true}, "db-2": {AuthFailed: true}},
	}
	c.pg.Status.Primary = "db-1"
	for _, after := range []time.Duration{0, time.Minute, 10 * time.Minute} {
		now = now.Add(after)
		if err := r.failover(context.Background(), c); !errors.Is(err, errWait) {
			t.Fatalf("after %s: want the workflow held, got %v", after, err)
		}
	}
	if c.phase != ReasonAuthenticationFailed || c.pg.Status.Primary != "db-1" {
		t.Fatalf("phase %q, primary %q", c.phase, c.pg.Status.Primary)
	}
	cond := meta.FindStatusCondition(c.pg.Status.Conditions, ConditionPrimaryAvailable)
	if cond == nil || cond.Reason != ReasonAuthenticationFailed || cond.Status != "True" {
		t.Fatalf("PrimaryAvailable: %+v", cond)
	}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "db-1"}, &corev1.Pod{}); apierrors.IsNotFound(err) {
		t.Fatal("the primary was fenced")
	}

	// The primary's pod deleted (to restart it with the secret's passwords):
	// the replica refuses the password too, so nothing is promoted and
	// EnsurePods brings the primary back.
	delete(c.pods, "db-1")
	delete(c.obs, "db-1")
	if err := r.failover(context.Background(), c); err != nil {
		t.Fatalf("with no replica to promote the workflow goes on to EnsurePods: %v", err)
	}
	if c.pg.Status.Primary != "db-1" {
		t.Fatalf("primary %q, want db-1 kept", c.pg.Status.Primary)
	}
}
