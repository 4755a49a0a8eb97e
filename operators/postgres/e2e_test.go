package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/internal/kubelet"
	"homeostat.dev/homeostat/internal/pgtest"
	"homeostat.dev/homeostat/internal/s3test"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

const testHomeostatImage = "ghcr.io/homeostat/homeostat:test"

// story is the running world of the end-to-end test: the operator in a
// manager, the kubelet harness running real PostgreSQL, and MinIO.
type story struct {
	t    testing.TB
	dir  string
	bin  string
	ctx  context.Context
	kube *kubelet.Kubelet
	s3   *s3test.Server
	ns   string
}

func startStory(t testing.TB) *story { t.Helper(); return startStoryWith(t, nil) }

// startStoryWith is startStory with the operator's reconciler adjusted by
// tune (nil: as in production but for the test's polling).
func startStoryWith(t testing.TB, tune func(*PostgresReconciler)) *story {
	t.Helper()
	ctrl.SetLogger(logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir, err := pgtest.TempDir("homeostat-pg-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin, err := pgtest.BuildHomeostat(dir)
	if err != nil {
		t.Fatal(err)
	}
	s3, err := s3test.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s3.Stop() })
	// Instance managers ask the API server who the primary is, each through
	// a way the harness can cut (Partition).
	kube, err := kubelet.Start(env.Client, kubelet.Options{Binary: bin, HomeostatImage: testHomeostatImage, Dir: dir + "/kubelet", Logf: t.Logf,
		Kubeconfig: env.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kube.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(kube.Logs(4000))
			if keep := os.Getenv("HOMEOSTAT_KEEP_LOGS"); keep != "" {
				_ = exec.Command("cp", "-r", dir+"/kubelet/logs", keep).Run()
			}
		}
	})
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		// A benchmark run with -count starts the story more than once.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{HomeostatImage: testHomeostatImage}
	pr := &PostgresReconciler{Client: mgr.GetClient(), Scheme: env.Scheme, Options: o, Resolve: kube.Resolve, Poll: 2 * time.Second,
		StuckAfter: 45 * time.Second,
		Recorder:   mgr.GetEventRecorder("postgres-e2e")}
	if tune != nil {
		tune(pr)
	}
	br := &BackupReconciler{Client: mgr.GetClient(), Scheme: env.Scheme, Options: o}
	if err := pr.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := br.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()
	ns := newNamespace(t)
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3-creds", Namespace: ns},
		StringData: map[string]string{"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey}}
	if err := env.Client.Create(ctx, creds); err != nil {
		t.Fatal(err)
	}
	return &story{t: t, dir: dir, bin: bin, ctx: ctx, kube: kube, s3: s3, ns: ns}
}

// homeostat runs the homeostat binary against the test API server.
func (s *story) homeostat(args ...string) string {
	s.t.Helper()
	cmd := exec.CommandContext(s.ctx, s.bin, append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("homeostat %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	s.t.Logf("homeostat %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// commitAndSync commits a file to a git repository on disk, as a user's
// push would, and syncs the repository with `homeostat sync --once`.
func (s *story) commitAndSync(name, content string) {
	s.t.Helper()
	repo := filepath.Join(s.dir, "repo")
	git := func(args ...string) {
		s.t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=test", "-c", "user.email=test@example.com"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			s.t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if err := os.MkdirAll(repo, 0o755); err != nil {
		s.t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(repo, ".git")); err != nil {
		git("init", "-q", "-b", "main")
	}
	if err := os.WriteFile(filepath.Join(repo, name), []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	git("add", name)
	git("commit", "-q", "-m", "add "+name)
	s.homeostat("sync", "--repo", "file://"+repo, "--once", "-n", s.ns, "--name", "shop",
		"--cache-dir", filepath.Join(s.dir, "git-cache"), "--timeout", "4m")
}

// eventually polls cond until it holds or the deadline passes.
func (s *story) eventually(what string, timeout time.Duration, cond func() (bool, string)) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(500 * time.Millisecond)
	}
	s.t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
}

func (s *story) postgres(name string) *v1alpha1.Postgres {
	pg := &v1alpha1.Postgres{}
	if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, pg); err != nil {
		s.t.Fatal(err)
	}
	return pg
}

func (s *story) waitReady(name string, n int32) *v1alpha1.Postgres {
	s.t.Helper()
	var pg *v1alpha1.Postgres
	s.eventually(name+" ready with "+fmt.Sprint(n)+" instances", 4*time.Minute, func() (bool, string) {
		pg = s.postgres(name)
		ok := pg.Status.ReadyInstances == n && meta.IsStatusConditionTrue(pg.Status.Conditions, v1alpha1.ConditionReady)
		return ok, fmt.Sprintf("phase %s, ready %d, primary %s, conditions %v", pg.Status.Phase, pg.Status.ReadyInstances, pg.Status.Primary, pg.Status.Conditions)
	})
	return pg
}

// db connects as the app role through a Service (or pod), as an app would.
func (s *story) db(cluster, target string) *sql.DB {
	s.t.Helper()
	var sec corev1.Secret
	if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: SecretName(cluster, SecretApp)}, &sec); err != nil {
		s.t.Fatal(err)
	}
	addr, err := s.kube.Resolve(s.ctx, s.ns, target)
	if err != nil {
		s.t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	db, err := sql.Open("postgres", fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s %s connect_timeout=5",
		host, port, sec.Data["username"], sec.Data["password"], sec.Data["dbname"], s.verifyFull(&sec)))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { db.Close() })
	return db
}

func (s *story) count(db *sql.DB) (int, error) {
	var n int
	err := db.QueryRowContext(s.ctx, `SELECT count(*) FROM orders`).Scan(&n)
	return n, err
}

// TestPostgresStory is the whole story with real PostgreSQL and MinIO: a
// Postgres committed to a git repository and synced, three instances with
// synchronous replication, rows written through NAME-rw read from a replica,
// a backup in S3, the primary's process killed and the most advanced replica
// promoted with every committed row, a switchover on request, a new cluster
// restored from the backup to a point in time, a scale-down committed to git,
// a restart setting committed to git that the sync waits to see rolled out,
// and a deletion that keeps the volumes.
func TestPostgresStory(t *testing.T) {
	s := startStory(t)
	// The cluster as a user commits it; `homeostat sync --once` applies it
	// and waits until it is healthy (Ready), with the operator running.
	manifest := func(instances int, maxConnections ...string) string {
		conns := "150"
		if len(maxConnections) > 0 {
			conns = maxConnections[0]
		}
		return fmt.Sprintf(`apiVersion: homeostat.dev/v1alpha1
kind: Postgres
metadata: {name: shopdb, namespace: %[1]s}
spec:
  version: "16"
  instances: %[3]d
  synchronous: 1
  storage: {size: 1Gi}
  database: shop
  failoverDelay: 3s
  # Above the default: replicas must get it too, or hot standby refuses.
  parameters: {max_connections: "%[4]s"}
  backup:
    s3: {endpoint: "%[2]s", bucket: pgbackups, path: %[1]s/shopdb, insecure: true, secretRef: {name: s3-creds}}
    schedule: "@every 30s"
    keep: 7
`, s.ns, s.s3.Endpoint, instances, conns)
	}
	s.commitAndSync("shopdb.yaml", manifest(3))
	pg := s.waitReady("shopdb", 3)
	if len(pg.Status.Instances) != 3 || pg.Status.Instances[0].Role != RolePrimary {
		t.Errorf("instances = %+v", pg.Status.Instances)
	}
	oldPrimary := pg.Status.Primary
	s.waitStreaming("shopdb", 2)
	t.Logf("cluster ready, primary %s, instances %+v", oldPrimary, pg.Status.Instances)
	if out := s.homeostat("pg", "status", "shopdb", "-n", s.ns); !strings.Contains(out, oldPrimary+"  primary  true") ||
		!strings.Contains(out, "Ready=True") {
		t.Errorf("homeostat pg status does not show the primary ready:\n%s", out)
	}

	rw := s.db("shopdb", RWService("shopdb"))
	if _, err := rw.ExecContext(s.ctx, `CREATE TABLE orders (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())`); err != nil {
		t.Fatal(err)
	}
	insert := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			if _, err := rw.ExecContext(s.ctx, `INSERT INTO orders (id) VALUES ($1)`, i); err != nil {
				t.Fatalf("insert %d: %v", i, err)
			}
		}
	}
	insert(1, 50)

	ro := s.db("shopdb", ROService("shopdb"))
	s.eventually("rows readable from a replica", time.Minute, func() (bool, string) {
		var inRecovery bool
		n, err := s.count(ro)
		if err == nil {
			err = ro.QueryRowContext(s.ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery)
		}
		return err == nil && n == 50 && inRecovery, fmt.Sprintf("count %d, replica %v, err %v", n, inRecovery, err)
	})
	s.eventually("synchronous standbys configured", time.Minute, func() (bool, string) {
		var ssn string
		err := rw.QueryRowContext(s.ctx, `SELECT current_setting('synchronous_standby_names')`).Scan(&ssn)
		return err == nil && strings.HasPrefix(ssn, "ANY 1 ("), ssn
	})

	// A backup made by hand, carried out by a Job, recorded from S3.
	bk := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "shopdb-manual", Namespace: s.ns}, Spec: v1alpha1.BackupSpec{Cluster: v1alpha1.LocalObjectReference{Name: "shopdb"}}}
	if err := env.Client.Create(s.ctx, bk); err != nil {
		t.Fatal(err)
	}
	s.eventually("backup completed", 3*time.Minute, func() (bool, string) {
		_ = env.Client.Get(s.ctx, client.ObjectKeyFromObject(bk), bk)
		return bk.Status.Phase == v1alpha1.BackupCompleted, fmt.Sprintf("%+v", bk.Status)
	})
	if bk.Status.Size <= 0 || bk.Status.EndLSN == "" || bk.Status.BackupID == "" {
		t.Errorf("backup status incomplete: %+v", bk.Status)
	}
	store, err := s.s3.Open(s.ctx, "pgbackups", s.ns+"/shopdb")
	if err != nil {
		t.Fatal(err)
	}
	inStore := func(id string) bool {
		ms, _, err := backup.List(s.ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.ID == id {
				return true
			}
		}
		return false
	}
	if !inStore(bk.Status.BackupID) {
		t.Fatalf("backup %s is not in S3", bk.Status.BackupID)
	}
	// The schedule creates Backups too.
	s.eventually("a scheduled backup completed and in S3", 3*time.Minute, func() (bool, string) {
		var l v1alpha1.BackupList
		if err := env.Client.List(s.ctx, &l, client.InNamespace(s.ns), client.MatchingLabels{LabelScheduled: "true"}); err != nil {
			return false, err.Error()
		}
		for _, b := range l.Items {
			if b.Status.Phase == v1alpha1.BackupCompleted && inStore(b.Status.BackupID) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d scheduled backups", len(l.Items))
	})
	s.eventually("lastBackup in the cluster status", time.Minute, func() (bool, string) {
		p := s.postgres("shopdb")
		return p.Status.LastBackup != nil && p.Status.FirstRecoverabilityPoint != nil, fmt.Sprintf("%v", p.Status.LastBackup)
	})

	// Rows committed after the backup, then a point in time to restore to.
	insert(51, 100)
	// Recovery targets are whole seconds (metav1.Time): take the next
	// second boundary after the second batch, and start the third after it.
	var now time.Time
	if err := rw.QueryRowContext(s.ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	target := now.Truncate(time.Second).Add(time.Second)
	s.eventually("the clock past the target", 5*time.Second, func() (bool, string) {
		_ = rw.QueryRowContext(s.ctx, `SELECT clock_timestamp()`).Scan(&now)
		return now.After(target.Add(200 * time.Millisecond)), now.String()
	})
	insert(101, 150)

	// The primary's process dies: a replica is promoted with every row.
	if err := s.kube.Kill(s.ns, oldPrimary); err != nil {
		t.Fatal(err)
	}
	s.eventually("a replica promoted", 3*time.Minute, func() (bool, string) {
		p := s.postgres("shopdb")
		return p.Status.Primary != "" && p.Status.Primary != oldPrimary, fmt.Sprintf("primary %s phase %s", p.Status.Primary, p.Status.Phase)
	})
	rw2 := s.db("shopdb", RWService("shopdb"))
	s.eventually("every committed row on the new primary", 2*time.Minute, func() (bool, string) {
		n, err := s.count(rw2)
		var inRecovery bool
		if err == nil {
			err = rw2.QueryRowContext(s.ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery)
		}
		return err == nil && n == 150 && !inRecovery, fmt.Sprintf("count %d, in recovery %v, err %v", n, inRecovery, err)
	})
	if _, err := rw2.ExecContext(s.ctx, `INSERT INTO orders (id) VALUES (151)`); err != nil {
		t.Fatalf("write to the new primary: %v", err)
	}
	pg = s.waitReady("shopdb", 3)
	t.Logf("after failover: primary %s, instances %+v", pg.Status.Primary, pg.Status.Instances)
	s.waitStreaming("shopdb", 2)

	// A switchover on request: the primary is stopped cleanly and the most
	// advanced replica takes over.
	before := pg.Status.Primary
	s.homeostat("pg", "switchover", "shopdb", "-n", s.ns)
	s.eventually("switched over", 3*time.Minute, func() (bool, string) {
		p := s.postgres("shopdb")
		_, pending := p.Annotations[AnnotationSwitchover]
		return p.Status.Primary != before && !pending, fmt.Sprintf("primary %s phase %s", p.Status.Primary, p.Status.Phase)
	})
	rw3 := s.db("shopdb", RWService("shopdb"))
	s.eventually("every row after the switchover", 2*time.Minute, func() (bool, string) {
		n, err := s.count(rw3)
		return err == nil && n == 151, fmt.Sprintf("count %d, err %v", n, err)
	})
	pg = s.waitReady("shopdb", 3)
	s.waitStreaming("shopdb", 2)

	// Close the current WAL segment so the archive holds the target.
	s.switchAndArchiveWAL("shopdb")
	s.restoreToPointInTime(target)

	// Scaling down, committed to git: the newest replica goes, never the
	// primary.
	primary := pg.Status.Primary
	s.commitAndSync("shopdb.yaml", manifest(2))
	s.eventually("scaled down to 2", 3*time.Minute, func() (bool, string) {
		p := s.postgres("shopdb")
		ok := len(p.Status.Instances) == 2 && p.Status.ReadyInstances == 2 && p.Status.Primary == primary &&
			meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionReady)
		return ok, fmt.Sprintf("primary %s, instances %+v", p.Status.Primary, p.Status.Instances)
	})
	s.waitStreaming("shopdb", 1)

	// A setting that needs a restart, committed to git: the sync's health
	// wait holds until the rolling update is done, so when it returns
	// every instance runs with it.
	s.commitAndSync("shopdb.yaml", manifest(2, "160"))
	if ok, why := s.current("shopdb"); !ok {
		t.Errorf("sync returned before the rolling update finished: %s", why)
	}
	s.settingEverywhere("shopdb", "max_connections", "160")

	// Deleting a Postgres stops its instances and keeps its volume.
	s.deleteKeepsVolumes("shopdb-pitr")
}

// deleteKeepsVolumes deletes a Postgres (deletionPolicy Retain) and checks
// that its pods and their processes are gone and its volume claims remain.
func (s *story) deleteKeepsVolumes(cluster string) {
	t := s.t
	if err := env.Client.Delete(s.ctx, s.postgres(cluster)); err != nil {
		t.Fatal(err)
	}
	s.eventually(cluster+" deleted", 2*time.Minute, func() (bool, string) {
		var pods corev1.PodList
		if err := env.Client.List(s.ctx, &pods, client.InNamespace(s.ns), client.MatchingLabels{LabelCluster: cluster}); err != nil {
			return false, err.Error()
		}
		err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: cluster}, &v1alpha1.Postgres{})
		_, rerr := s.kube.Resolve(s.ctx, s.ns, InstanceName(cluster, 1))
		return apierrors.IsNotFound(err) && len(pods.Items) == 0 && rerr != nil,
			fmt.Sprintf("postgres: %v, pods %d, process resolvable: %v", err, len(pods.Items), rerr == nil)
	})
	var pvc corev1.PersistentVolumeClaim
	if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: InstanceName(cluster, 1)}, &pvc); err != nil || !pvc.DeletionTimestamp.IsZero() {
		t.Errorf("volume claim of %s not kept: %v", cluster, err)
	}
	for _, kind := range secretKinds {
		if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: SecretName(cluster, kind)}, &corev1.Secret{}); err != nil {
			t.Errorf("secret %s not kept: %v", SecretName(cluster, kind), err)
		}
	}
}

// superDB connects to the primary as the superuser, through NAME-rw.
func (s *story) superDB(cluster string) *sql.DB {
	s.t.Helper()
	addr, err := s.kube.Resolve(s.ctx, s.ns, RWService(cluster))
	if err != nil {
		s.t.Fatal(err)
	}
	db, err := pgConn(addr, s.superLogin(cluster))
	if err != nil {
		s.t.Fatal(err)
	}
	return db
}

// waitStreaming waits until the primary streams to n replicas, each through
// its own replication slot.
func (s *story) waitStreaming(cluster string, n int) {
	s.t.Helper()
	db := s.superDB(cluster)
	defer db.Close()
	s.eventually(fmt.Sprintf("%d streaming replicas with slots", n), 3*time.Minute, func() (bool, string) {
		var streaming, slots int
		err := db.QueryRowContext(s.ctx, `SELECT (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'),
			(SELECT count(*) FROM pg_replication_slots WHERE active)`).Scan(&streaming, &slots)
		return err == nil && streaming == n && slots == n, fmt.Sprintf("streaming %d, active slots %d, err %v", streaming, slots, err)
	})
}

// switchAndArchiveWAL ends the primary's WAL segment and waits until it is
// archived, as archive_timeout would after a while.
func (s *story) switchAndArchiveWAL(cluster string) {
	t := s.t
	db := s.superDB(cluster)
	defer db.Close()
	var seg string
	if err := db.QueryRowContext(s.ctx, `SELECT pg_walfile_name(pg_switch_wal())`).Scan(&seg); err != nil {
		t.Fatal(err)
	}
	s.eventually("segment "+seg+" archived", 2*time.Minute, func() (bool, string) {
		var last sql.NullString
		err := db.QueryRowContext(s.ctx, `SELECT last_archived_wal FROM pg_stat_archiver`).Scan(&last)
		return err == nil && last.String >= seg, fmt.Sprintf("last archived %q, err %v", last.String, err)
	})
}

// restoreToPointInTime bootstraps a new cluster from shopdb's backup and WAL
// to target: the rows of the first two batches, none of the third. The new
// cluster keeps its own generated secrets, though its data directory holds
// shopdb's passwords: once promoted, its primary sets them from the secrets,
// so the operator, a replica (joining with the replication password) and the
// app role all log in.
func (s *story) restoreToPointInTime(target time.Time) {
	t := s.t
	pitr := &v1alpha1.Postgres{
		ObjectMeta: metav1.ObjectMeta{Name: "shopdb-pitr", Namespace: s.ns},
		Spec: v1alpha1.PostgresSpec{
			Version: "16", Instances: 2, Storage: v1alpha1.Storage{Size: "1Gi"}, Database: "shop",
			// Recovery refuses settings below the source's.
			Parameters: map[string]string{"max_connections": "150"},
			Bootstrap: &v1alpha1.Bootstrap{FromBackup: &v1alpha1.BootstrapFromBackup{
				TargetTime: &metav1.Time{Time: target},
				S3: v1alpha1.S3Store{Endpoint: s.s3.Endpoint, Bucket: "pgbackups", Path: s.ns + "/shopdb", Insecure: true,
					SecretRef: v1alpha1.LocalObjectReference{Name: "s3-creds"}},
			}},
		},
	}
	if err := env.Client.Create(s.ctx, pitr); err != nil {
		t.Fatal(err)
	}
	s.waitReady("shopdb-pitr", 2)
	s.waitStreaming("shopdb-pitr", 1)
	s.distinctPasswords("shopdb", "shopdb-pitr")
	db := s.db("shopdb-pitr", RWService("shopdb-pitr"))
	var n, max int
	if err := db.QueryRowContext(s.ctx, `SELECT count(*), max(id) FROM orders`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != 100 || max != 100 {
		t.Errorf("restored to %s: %d rows up to id %d, want exactly the 100 committed before the target", target, n, max)
	}
}

// distinctPasswords fails when two clusters share a password: the restored
// cluster must prove its own secrets work, not the source's.
func (s *story) distinctPasswords(a, b string) {
	s.t.Helper()
	for _, kind := range secretKinds {
		var sa, sb corev1.Secret
		if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: SecretName(a, kind)}, &sa); err != nil {
			s.t.Fatal(err)
		}
		if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: SecretName(b, kind)}, &sb); err != nil {
			s.t.Fatal(err)
		}
		if string(sa.Data["password"]) == string(sb.Data["password"]) {
			s.t.Errorf("%s and %s have the same %s password", a, b, kind)
		}
	}
}
