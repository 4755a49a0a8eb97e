package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// TestProductionSurface runs one real two-instance cluster through what a
// production cluster has around its data: disruption budgets and a spread
// that follow a switchover, readiness from the instance manager's health
// endpoint (a replica cut off from its primary, or whose replay lags past
// the bound, is not ready, and is again once it streams and catches up),
// one connection per instance per reconcile, and the password and
// parameter steps skipped while neither the secrets nor the spec changed.
func TestProductionSurface(t *testing.T) {
	s := startStory(t)
	pg := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: "surf", Namespace: s.ns}, Spec: v1alpha1.PostgresSpec{
		Version: "16", Instances: 2, Storage: v1alpha1.Storage{Size: "1Gi"}, Database: "app",
		FailoverDelay: &metav1.Duration{Duration: 3 * time.Second},
		Parameters:    map[string]string{"work_mem": "4MB"},
		Probes:        &v1alpha1.PostgresProbes{Readiness: &v1alpha1.ReadinessProbe{MaximumLag: "1Mi"}},
	}}
	if err := env.Client.Create(s.ctx, pg); err != nil {
		t.Fatal(err)
	}
	pg = s.waitReady("surf", 2)
	primary, replica := pg.Status.Primary, InstanceName("surf", 1)
	if primary == replica {
		replica = InstanceName("surf", 2)
	}
	s.waitStreaming("surf", 1)
	for _, name := range []string{primary, replica} {
		s.podReadyIs(name, true)
		var pod corev1.Pod
		if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, &pod); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(pod.Spec.TopologySpreadConstraints, DefaultSpread(pg)) {
			t.Errorf("%s spreads by %+v, want the default spread over hostnames", name, pod.Spec.TopologySpreadConstraints)
		}
	}
	s.budgetsSelect("surf", primary, replica)

	s.replicaReadinessFollowsStreaming(primary, replica)
	s.oneConnectionPerInstance("surf", primary, replica)

	// A switchover: the budgets select by role, so they follow at once.
	s.homeostat("pg", "switchover", "surf", "-n", s.ns)
	s.eventually("primary moved to "+replica, 3*time.Minute, func() (bool, string) {
		p := s.postgres("surf")
		return p.Status.Primary == replica && p.Status.ReadyInstances == 2, fmt.Sprintf("primary %s, ready %d, phase %s", p.Status.Primary, p.Status.ReadyInstances, p.Status.Phase)
	})
	s.podReadyIs(replica, true)
	s.podReadyIs(primary, true)
	s.budgetsSelect("surf", replica, primary)

	// One instance: no budget (a drain would wait for ever for a
	// switchover that cannot happen).
	p := s.postgres("surf")
	p.Spec.Instances = 1
	if err := env.Client.Update(s.ctx, p); err != nil {
		t.Fatal(err)
	}
	s.eventually("budgets removed at one instance", 2*time.Minute, func() (bool, string) {
		var names []string
		for _, n := range []string{PrimaryPDBName("surf"), ReplicasPDBName("surf")} {
			err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: n}, &policyv1.PodDisruptionBudget{})
			if !apierrors.IsNotFound(err) {
				names = append(names, n)
			}
		}
		return len(names) == 0, fmt.Sprintf("still there: %v", names)
	})
}

// podReadyIs waits for a pod's Ready condition, which the harness takes
// from the readiness probe (the instance manager's /readyz).
func (s *story) podReadyIs(name string, want bool) {
	s.t.Helper()
	s.eventually(fmt.Sprintf("pod %s ready = %v", name, want), 2*time.Minute, func() (bool, string) {
		var pod corev1.Pod
		if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, &pod); err != nil {
			return false, err.Error()
		}
		ready := false
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady {
				ready = c.Status == corev1.ConditionTrue
			}
		}
		return podRunning(&pod) && ready == want, fmt.Sprintf("phase %s, conditions %v", pod.Status.Phase, pod.Status.Conditions)
	})
}

// readyzSays waits until an instance manager's health endpoint answers
// with code and a body that contains want.
func (s *story) readyzSays(pod string, code int, want string) {
	s.t.Helper()
	s.eventually(fmt.Sprintf("%s /readyz answers %d %q", pod, code, want), time.Minute, func() (bool, string) {
		addr, err := s.kube.PortAddr(s.ns, pod, healthPort)
		if err != nil {
			return false, err.Error()
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == code && strings.Contains(string(body), want), fmt.Sprintf("%d %s", resp.StatusCode, body)
	})
}

// budgetsSelect checks the cluster's disruption budgets: owned by the
// Postgres, the primary's allowing no eviction and selecting exactly the
// primary's pod, the replicas' allowing one and selecting the replica.
func (s *story) budgetsSelect(cluster, primary, replica string) {
	s.t.Helper()
	for _, b := range []struct {
		name, pod   string
		unavailable int
	}{{PrimaryPDBName(cluster), primary, 0}, {ReplicasPDBName(cluster), replica, 1}} {
		s.eventually("budget "+b.name+" selects "+b.pod, time.Minute, func() (bool, string) {
			var pdb policyv1.PodDisruptionBudget
			if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: b.name}, &pdb); err != nil {
				return false, err.Error()
			}
			owner := metav1.GetControllerOf(&pdb)
			if owner == nil || owner.Kind != "Postgres" || owner.Name != cluster || pdb.Spec.MaxUnavailable.IntValue() != b.unavailable {
				return false, fmt.Sprintf("owner %+v, spec %+v", owner, pdb.Spec)
			}
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil {
				return false, err.Error()
			}
			var pods corev1.PodList
			if err := env.Client.List(s.ctx, &pods, client.InNamespace(s.ns), client.MatchingLabelsSelector{Selector: sel}); err != nil {
				return false, err.Error()
			}
			var names []string
			for _, p := range pods.Items {
				names = append(names, p.Name)
			}
			return reflect.DeepEqual(names, []string{b.pod}), fmt.Sprintf("selects %v", names)
		})
	}
}

// replicaReadinessFollowsStreaming cuts the replica off from its primary
// (a partition of its node) and pauses its replay past the lag bound: each
// time its pod turns not ready while the primary stays ready, and ready
// again once it streams and has caught up.
func (s *story) replicaReadinessFollowsStreaming(primary, replica string) {
	t := s.t
	s.readyzSays(primary, http.StatusOK, "primary: accepts writes")
	s.readyzSays(replica, http.StatusOK, "replica: streams from the primary")
	s.kube.Partition(s.ns, replica)
	s.podReadyIs(replica, false)
	s.readyzSays(replica, http.StatusServiceUnavailable, "replica: not streaming from the primary")
	s.podReadyIs(primary, true)
	s.kube.Heal(s.ns, replica)
	s.podReadyIs(replica, true)

	direct, err := s.kube.DirectAddr(s.ns, replica)
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := pgConn(direct, s.superLogin("surf"))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if _, err := rdb.ExecContext(s.ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	wdb := s.superDB("surf")
	defer wdb.Close()
	// About 4 MB of WAL, past the 1Mi bound, received but not replayed.
	if _, err := wdb.ExecContext(s.ctx, `CREATE TABLE pad AS SELECT repeat('x', 1000) AS v FROM generate_series(1, 4000)`); err != nil {
		t.Fatal(err)
	}
	s.podReadyIs(replica, false)
	s.readyzSays(replica, http.StatusServiceUnavailable, "bytes behind the primary (bound 1048576)")
	var status string
	if err := rdb.QueryRowContext(s.ctx, `SELECT status FROM pg_stat_wal_receiver`).Scan(&status); err != nil || status != "streaming" {
		t.Errorf("the lagging replica's WAL receiver: %q (%v), want streaming: not ready for its lag alone", status, err)
	}
	if _, err := rdb.ExecContext(s.ctx, `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
	s.podReadyIs(replica, true)
}

// oneConnectionPerInstance runs reconciles of the cluster with a resolver
// that counts the connections made to each instance: every reconcile opens
// one per instance, however many steps query it. With the secrets and the
// spec unchanged, the password and parameter steps are skipped: a password
// and a setting changed by hand in the database stay as they are, until a
// secret or the spec changes.
func (s *story) oneConnectionPerInstance(cluster, primary, replica string) {
	t := s.t
	cc := &connCounter{s: s, fronts: map[string]string{}, counts: map[string]int{}}
	r := &PostgresReconciler{Client: env.Client, Scheme: env.Scheme, Options: Options{HomeostatImage: testHomeostatImage}, Resolve: cc.resolve}
	req := ctrl.Request{NamespacedName: client.ObjectKey{Namespace: s.ns, Name: cluster}}
	// The manager's reconciler runs beside this one: after a change both
	// may write the same role at once, and PostgreSQL refuses the second
	// ("tuple concurrently updated"), which a reconcile retries. Each
	// attempt opens at most one connection per instance.
	reconcile := func() map[string]int {
		t.Helper()
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			cc.take()
			_, err = r.Reconcile(s.ctx, req)
			got := cc.take()
			for name, n := range got {
				if n > 1 {
					t.Errorf("reconcile opened %d connections to %s", n, name)
				}
			}
			if err == nil {
				return got
			}
			time.Sleep(time.Second)
		}
		t.Fatalf("reconcile: %v", err)
		return nil
	}
	for i := 0; i < 3; i++ {
		if got, want := reconcile(), map[string]int{primary: 1, replica: 1}; !reflect.DeepEqual(got, want) {
			t.Errorf("reconcile %d: connections %v, want %v", i, got, want)
		}
	}
	p := s.postgres(cluster)
	if p.Annotations[AnnotationPasswordsSynced] == "" || p.Annotations[AnnotationParametersSynced] == "" {
		t.Fatalf("no record of the steps' success: %v", p.Annotations)
	}

	// Changes behind the operator's back, then a reconcile: skipped.
	sdb := s.superDB(cluster)
	defer sdb.Close()
	for _, q := range []string{`ALTER ROLE app PASSWORD 'changed-by-hand'`, `ALTER SYSTEM SET work_mem = '7MB'`, `SELECT pg_reload_conf()`} {
		if _, err := sdb.ExecContext(s.ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	reconcile()
	if err := s.appLogin(cluster, ""); !isAuthFailure(err) {
		t.Errorf("login with the secret's password: %v; want it refused (the password step must not run while no secret changed)", err)
	}
	s.settingIs(sdb, "work_mem", "7MB")

	// A new password in the app secret: the step runs again.
	var sec corev1.Secret
	if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: SecretName(cluster, SecretApp)}, &sec); err != nil {
		t.Fatal(err)
	}
	sec.Data["password"] = []byte("rotated-app-password")
	if err := env.Client.Update(s.ctx, &sec); err != nil {
		t.Fatal(err)
	}
	if got := reconcile(); got[primary] != 1 {
		t.Errorf("connections after the secret changed: %v", got)
	}
	s.eventually("login with the rotated password", 30*time.Second, func() (bool, string) {
		err := s.appLogin(cluster, "rotated-app-password")
		return err == nil, fmt.Sprintf("the password step did not run after the secret changed: %v", err)
	})
	// A new spec.parameters: the parameter step runs again.
	p = s.postgres(cluster)
	p.Spec.Parameters = map[string]string{"work_mem": "5MB"}
	if err := env.Client.Update(s.ctx, p); err != nil {
		t.Fatal(err)
	}
	reconcile()
	s.settingIs(sdb, "work_mem", "5MB")
}

// appLogin logs in as the app role through NAME-rw with password (the
// secret's when ""), and returns the error.
func (s *story) appLogin(cluster, password string) error {
	var sec corev1.Secret
	if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: SecretName(cluster, SecretApp)}, &sec); err != nil {
		return err
	}
	if password == "" {
		password = string(sec.Data["password"])
	}
	addr, err := s.kube.Resolve(s.ctx, s.ns, RWService(cluster))
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(addr)
	db, err := sql.Open("postgres", fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s %s connect_timeout=5",
		host, port, sec.Data["username"], quoteConnValue(password), sec.Data["dbname"], s.verifyFull(&sec)))
	if err != nil {
		return err
	}
	defer db.Close()
	return db.PingContext(s.ctx)
}

// settingIs waits until the server reports a setting's value.
func (s *story) settingIs(db *sql.DB, name, want string) {
	s.t.Helper()
	s.eventually(name+" = "+want, 30*time.Second, func() (bool, string) {
		var v string
		err := db.QueryRowContext(s.ctx, `SELECT current_setting($1)`, name).Scan(&v)
		return err == nil && v == want, fmt.Sprintf("%q (%v)", v, err)
	})
}

// connCounter is a Resolver that puts a counting TCP forwarder in front of
// each instance: what it counts are the connections the operator opens.
type connCounter struct {
	s      *story
	mu     sync.Mutex
	fronts map[string]string
	counts map[string]int
}

func (cc *connCounter) resolve(ctx context.Context, ns, name string) (string, error) {
	back, err := cc.s.kube.Resolve(ctx, ns, name)
	if err != nil {
		return "", err
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if f, ok := cc.fronts[name+"|"+back]; ok {
		return f, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	cc.s.t.Cleanup(func() { l.Close() })
	go cc.forward(l, name, back)
	cc.fronts[name+"|"+back] = l.Addr().String()
	return l.Addr().String(), nil
}

func (cc *connCounter) forward(l net.Listener, name, back string) {
	for {
		in, err := l.Accept()
		if err != nil {
			return
		}
		cc.mu.Lock()
		cc.counts[name]++
		cc.mu.Unlock()
		go func() {
			defer in.Close()
			out, err := net.DialTimeout("tcp", back, 5*time.Second)
			if err != nil {
				return
			}
			defer out.Close()
			go func() { _, _ = io.Copy(out, in) }()
			_, _ = io.Copy(in, out)
		}()
	}
}

// take returns the counts so far and starts again from zero.
func (cc *connCounter) take() map[string]int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	out := cc.counts
	cc.counts = map[string]int{}
	return out
}
