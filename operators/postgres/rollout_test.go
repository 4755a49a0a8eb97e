package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// SpecHash changes with what a running pod cannot take without a restart,
// and only with that: a setting applied by reload, the number of
// instances or the backup schedule leave every pod current.
func TestSpecHashCoversThePodAndRestartSettingsOnly(t *testing.T) {
	base := func() *v1alpha1.Postgres {
		return &v1alpha1.Postgres{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "web"},
			Spec: v1alpha1.PostgresSpec{Version: "16", Instances: 3, Synchronous: 1, Storage: v1alpha1.Storage{Size: "1Gi"},
				Parameters: map[string]string{"max_connections": "100", "work_mem": "4MB"},
				Backup: &v1alpha1.PostgresBackup{Schedule: "@daily", S3: v1alpha1.S3Store{Endpoint: "s3:9000", Bucket: "b",
					SecretRef: v1alpha1.LocalObjectReference{Name: "s3"}}}},
		}
	}
	o := Options{HomeostatImage: "homeostat:1"}
	want := SpecHash(base(), o)
	if want == "" || want != SpecHash(base(), o) {
		t.Fatalf("SpecHash is not a stable value: %q", want)
	}
	for _, tc := range []struct {
		name    string
		mutate  func(*v1alpha1.Postgres, *Options)
		changes bool
	}{
		{"image (minor version)", func(pg *v1alpha1.Postgres, _ *Options) { pg.Spec.Image = "postgres:16.4" }, true},
		{"homeostat image (operator upgrade)", func(_ *v1alpha1.Postgres, o *Options) { o.HomeostatImage = "homeostat:2" }, true},
		{"resources", func(pg *v1alpha1.Postgres, _ *Options) { pg.Spec.Resources = &v1alpha1.Resources{Memory: "1Gi"} }, true},
		{"max_connections", func(pg *v1alpha1.Postgres, _ *Options) { pg.Spec.Parameters["max_connections"] = "200" }, true},
		{"shared_buffers, any case", func(pg *v1alpha1.Postgres, _ *Options) { pg.Spec.Parameters["Shared_Buffers"] = "256MB" }, true},
		{"backup store", func(pg *v1alpha1.Postgres, _ *Options) { pg.Spec.Backup.S3.Bucket = "other" }, true},
		{"failoverDelay (the fencing bound)", func(pg *v1alpha1.Postgres, _ *Options) {
			pg.Spec.FailoverDelay = &metav1.Duration{Duration: 5 * time.Second}
		}, true},
		{"work_mem (reload)", func(pg *v1alpha1.Postgres, _ *Options) { pg.Spec.Parameters["work_mem"] = "64MB" }, false},
		{"instances", func(pg *v1alpha1.Postgres, _ *Options) { pg.Spec.Instances = 5 }, false},
		{"synchronous", func(pg *v1alpha1.Postgres, _ *Options) { pg.Spec.Synchronous = 2 }, false},
		{"backup schedule", func(pg *v1alpha1.Postgres, _ *Options) { pg.Spec.Backup.Schedule = "@hourly" }, false},
		{"update strategy", func(pg *v1alpha1.Postgres, _ *Options) { pg.Spec.PrimaryUpdateStrategy = PrimaryUpdateSupervised }, false},
	} {
		pg, opts := base(), o
		tc.mutate(pg, &opts)
		if got := SpecHash(pg, opts) != want; got != tc.changes {
			t.Errorf("%s: hash changes = %v, want %v", tc.name, got, tc.changes)
		}
	}
}

// The pods of two instances differ only in what SpecHash leaves out: so
// the hash of one instance's pod is every instance's.
func TestInstancePodsDifferOnlyInIdentity(t *testing.T) {
	pg := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "web"},
		Spec: v1alpha1.PostgresSpec{Version: "16", Storage: v1alpha1.Storage{Size: "1Gi"}}}
	a := InstancePod(pg, "db-1", RolePrimary, Options{})
	b := InstancePod(pg, "db-2", RoleReplica, Options{})
	for _, p := range []*corev1.Pod{a, b} {
		p.Name, p.Spec.Hostname = "", ""
		delete(p.Labels, LabelInstance)
		delete(p.Labels, LabelRole)
		for i := range p.Spec.Volumes {
			if v := p.Spec.Volumes[i].PersistentVolumeClaim; v != nil {
				v.ClaimName = ""
			}
		}
	}
	if ja, jb := mustJSON(t, a), mustJSON(t, b); ja != jb {
		t.Errorf("instance pods differ beyond name, role and volume:\n%s\n%s", ja, jb)
	}
}

func TestPlanRolloutReplacesReplicasFirstThePrimaryLast(t *testing.T) {
	members := []string{"db-1", "db-2", "db-3"}
	all := map[string]bool{"db-1": true, "db-2": true, "db-3": true}
	tpl := outdatedTemplate
	for _, tc := range []struct {
		name       string
		ready      map[string]bool
		outdated   map[string]string
		supervised bool
		advanced   string
		want       rolloutStep
	}{
		{"nothing outdated", all, map[string]string{}, false, "db-2", rolloutStep{rolloutDone, ""}},
		{"first outdated replica", all, map[string]string{"db-1": tpl, "db-2": tpl, "db-3": tpl}, false, "", rolloutStep{rolloutReplace, "db-2"}},
		{"the replaced replica not back yet", map[string]bool{"db-1": true, "db-2": false, "db-3": true},
			map[string]string{"db-1": tpl, "db-3": tpl}, false, "", rolloutStep{rolloutWait, "db-2"}},
		{"then the next replica", all, map[string]string{"db-1": tpl, "db-3": "pending restart: shared_buffers"}, false, "db-2", rolloutStep{rolloutReplace, "db-3"}},
		{"an outdated replica that is not ready goes at once", map[string]bool{"db-1": true, "db-2": true, "db-3": false},
			map[string]string{"db-1": tpl, "db-2": tpl, "db-3": tpl}, false, "", rolloutStep{rolloutReplace, "db-3"}},
		{"primary last, by switchover", all, map[string]string{"db-1": tpl}, false, "db-3", rolloutStep{rolloutSwitchover, "db-3"}},
		{"supervised: wait for pg switchover", all, map[string]string{"db-1": tpl}, true, "db-3", rolloutStep{rolloutSupervised, "db-1"}},
		{"no updated replica to switch to", all, map[string]string{"db-1": tpl}, false, "", rolloutStep{rolloutWait, "db-1"}},
		{"primary not ready: wait, never switch over", map[string]bool{"db-1": false, "db-2": true, "db-3": true},
			map[string]string{"db-1": tpl}, false, "db-2", rolloutStep{rolloutWait, "db-1"}},
	} {
		got := planRollout(rolloutView{primary: "db-1", members: members, ready: tc.ready, outdated: tc.outdated,
			supervised: tc.supervised, advanced: tc.advanced})
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// Lowering a hot-standby setting: the primary first, in place, once it
	// is ready; the replicas after it, in the usual order.
	lowered := []string{"max_connections 100 to 80"}
	for _, tc := range []struct {
		name     string
		ready    map[string]bool
		outdated map[string]string
		lowered  []string
		want     rolloutStep
	}{
		{"lowered: the primary first", all, map[string]string{"db-1": tpl, "db-2": tpl, "db-3": tpl}, lowered, rolloutStep{rolloutRestartPrimary, "db-1"}},
		{"lowered, the primary pending a restart", all, map[string]string{"db-1": "pending restart: max_connections", "db-2": tpl}, lowered,
			rolloutStep{rolloutRestartPrimary, "db-1"}},
		{"lowered: a replica stuck below its primary does not go before it", map[string]bool{"db-1": true, "db-2": false, "db-3": true},
			map[string]string{"db-1": tpl, "db-3": tpl}, lowered, rolloutStep{rolloutRestartPrimary, "db-1"}},
		{"lowered, the primary not ready: wait for it", map[string]bool{"db-1": false, "db-2": true, "db-3": true},
			map[string]string{"db-1": tpl, "db-2": tpl}, lowered, rolloutStep{rolloutWait, "db-1"}},
		{"the primary restarting: no replica goes, even not ready", map[string]bool{"db-1": false, "db-2": false, "db-3": true},
			map[string]string{"db-2": tpl, "db-3": tpl}, nil, rolloutStep{rolloutWait, "db-1"}},
		{"primary restarted: then the replicas", all, map[string]string{"db-2": tpl, "db-3": tpl}, nil, rolloutStep{rolloutReplace, "db-2"}},
		{"raised (nothing lowered): replicas first", all, map[string]string{"db-1": tpl, "db-2": tpl}, nil, rolloutStep{rolloutReplace, "db-2"}},
	} {
		got := planRollout(rolloutView{primary: "db-1", members: members, ready: tc.ready, outdated: tc.outdated, lowered: tc.lowered, advanced: "db-3"})
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// A single instance has no replica to switch to: it restarts.
	alone := rolloutView{primary: "db-1", members: []string{"db-1"}, ready: map[string]bool{"db-1": true},
		outdated: map[string]string{"db-1": tpl}, supervised: true}
	if got := planRollout(alone); got != (rolloutStep{rolloutReplace, "db-1"}) {
		t.Errorf("single instance: %+v, want its pod replaced", got)
	}
}

// A pod without the hash (made before homeostat put it there) or with
// another one is outdated; so is a current pod whose server waits for a
// restart.
func TestOutdatedReason(t *testing.T) {
	pod := func(hash string) *corev1.Pod {
		p := &corev1.Pod{}
		if hash != "" {
			p.Annotations = map[string]string{AnnotationSpecHash: hash}
		}
		return p
	}
	c := &cluster{
		pods: map[string]*corev1.Pod{"db-1": pod("h1"), "db-2": pod(""), "db-3": pod("h0"), "db-4": pod("h1")},
		obs:  map[string]Observation{"db-4": {Reachable: true, PendingRestart: []string{"max_connections", "shared_buffers"}}},
	}
	for name, want := range map[string]string{"db-1": "", "db-2": outdatedTemplate, "db-3": outdatedTemplate,
		"db-4": "pending restart: max_connections,shared_buffers", "db-5": ""} {
		if got := outdatedReason(c, name, "h1"); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// restartSettings holds every setting the real server reads only at start
// (so a change to one in spec.parameters rolls the cluster at once), and
// observeInstance reports a setting written but waiting for a restart.
func TestRestartSettingsAndPendingRestartOfARealServer(t *testing.T) {
	const super = "super-pw"
	addr, db := scramServer(t, super)
	rows, err := db.Query(`SELECT name FROM pg_settings WHERE context = 'postmaster'`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		n++
		if !restartSettings[name] {
			t.Errorf("%s needs a restart but is not in restartSettings", name)
		}
	}
	if err := rows.Err(); err != nil || n < 40 {
		t.Fatalf("%d postmaster settings read (%v)", n, err)
	}
	rows.Close()

	op, err := pgConn(addr, superLogin{password: super})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	if o := observeInstance(context.Background(), op, addr); !o.Reachable || len(o.PendingRestart) != 0 {
		t.Fatalf("fresh server: %+v", o)
	}
	if _, err := db.Exec(`ALTER SYSTEM SET shared_buffers = '48MB'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "shared_buffers pending restart", func() bool {
		o := observeInstance(context.Background(), op, addr)
		return o.Reachable && strings.Join(o.PendingRestart, ",") == "shared_buffers"
	})

	// A primary reports its hot-standby settings: the running value, and
	// the one it will start with (from the configuration files).
	var running int64
	if err := db.QueryRow(`SELECT setting::bigint FROM pg_settings WHERE name = 'max_connections'`).Scan(&running); err != nil {
		t.Fatal(err)
	}
	if o := observeInstance(context.Background(), op, addr); len(o.HotStandby) != len(hotStandbySettings) ||
		o.HotStandby["max_connections"] != (settingValues{running, running}) {
		t.Fatalf("hot-standby settings of a fresh server: %+v, want max_connections %d", o.HotStandby, running)
	}
	if _, err := db.Exec(`ALTER SYSTEM SET max_connections = 20`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "max_connections 20 read as the next value", func() bool {
		o := observeInstance(context.Background(), op, addr)
		return o.HotStandby["max_connections"] == settingValues{running, 20} &&
			strings.Join(loweredHotStandby(nil, o.HotStandby), ",") == fmt.Sprintf("max_connections %d to 20", running)
	})
	// A reset shows at once, before any reload: the files are read when
	// asked (refreshHotStandby relies on it).
	if _, err := db.Exec(`ALTER SYSTEM SET max_connections = 30`); err != nil {
		t.Fatal(err)
	}
	if hs := observeHotStandby(context.Background(), op); hs["max_connections"] != (settingValues{running, 30}) {
		t.Errorf("after ALTER SYSTEM SET, no reload: %+v, want max_connections 30 next", hs["max_connections"])
	}
	if _, err := db.Exec(`ALTER SYSTEM RESET max_connections`); err != nil {
		t.Fatal(err)
	}
	if hs := observeHotStandby(context.Background(), op); hs["max_connections"] != (settingValues{running, running}) {
		t.Errorf("after ALTER SYSTEM RESET: %+v, want postgresql.conf's %d next", hs["max_connections"], running)
	}
}

// A spec.parameters value the server refuses holds the rolling update:
// replacing pods cannot apply it.
func TestRollingUpdateWaitsForRefusedParameters(t *testing.T) {
	pg := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "web"},
		Spec: v1alpha1.PostgresSpec{Instances: 1, Storage: v1alpha1.Storage{Size: "1Gi"}}}
	pg.Status.Primary = "db-1"
	setCondition(pg, ConditionParametersApplied, metav1.ConditionFalse, "ParametersRefused", "spec.parameters not applied: db-1: set shared_buffers: invalid value")
	c := &cluster{pg: pg, requeue: time.Second,
		pvcs: map[string]*corev1.PersistentVolumeClaim{"db-1": {ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationPVCStatus: pvcReady}}}},
		pods: map[string]*corev1.Pod{"db-1": {}}}
	err := (&PostgresReconciler{}).rollingUpdate(context.Background(), c)
	if !errors.Is(err, errWait) || c.phase != PhaseRollingUpdate || !strings.Contains(c.message, "held until spec.parameters are fixed") {
		t.Fatalf("rolling update with refused parameters: %v, phase %q, message %q", err, c.phase, c.message)
	}
}

// A hot-standby setting is lowered when the value the primary will start
// with (spec.parameters, else its configuration files) is below the one
// it runs with; raising one, or any other setting, keeps the usual order.
func TestLoweredHotStandby(t *testing.T) {
	running := map[string]settingValues{"max_connections": {100, 100}, "max_wal_senders": {10, 10},
		"max_worker_processes": {8, 8}, "max_locks_per_transaction": {64, 32}}
	for _, tc := range []struct {
		name    string
		params  map[string]string
		primary map[string]settingValues
		want    string
	}{
		{"nothing set", nil, running, "max_locks_per_transaction 64 to 32"},
		{"max_connections lowered, any case", map[string]string{"Max_Connections": " 80", "max_locks_per_transaction": "64"}, running,
			"max_connections 100 to 80"},
		{"raised", map[string]string{"max_connections": "200", "max_wal_senders": "10", "max_locks_per_transaction": "128"}, running, ""},
		{"two lowered", map[string]string{"max_wal_senders": "5", "max_worker_processes": "4", "max_locks_per_transaction": "64"}, running,
			"max_wal_senders 10 to 5; max_worker_processes 8 to 4"},
		{"not a number: the server's to refuse", map[string]string{"max_connections": "lots", "max_locks_per_transaction": "64"}, running, ""},
		{"another setting", map[string]string{"shared_buffers": "16MB", "max_locks_per_transaction": "64"}, running, ""},
		{"primary not observed", map[string]string{"max_connections": "10"}, nil, ""},
	} {
		if got := strings.Join(loweredHotStandby(tc.params, tc.primary), "; "); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// Failover waits for a primary the operator restarts itself, within a
// bound; past it, or without the condition, the primary counts as lost.
func TestPlannedRestartHoldsFailoverWithinItsBound(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	pg := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "web"},
		Spec: v1alpha1.PostgresSpec{FailoverDelay: &metav1.Duration{Duration: 2 * time.Second}}}
	pg.Status.Primary = "db-1"
	pg.Status.Conditions = []metav1.Condition{{Type: ConditionPrimaryAvailable, Status: metav1.ConditionFalse, Reason: ReasonPlannedRestart,
		LastTransitionTime: metav1.NewTime(now)}}
	for _, tc := range []struct {
		after time.Duration
		held  bool
	}{{0, true}, {time.Minute, true}, {plannedRestartBound(pg) - time.Second, true}, {plannedRestartBound(pg), false}, {time.Hour, false}} {
		r := &PostgresReconciler{Now: func() time.Time { return now.Add(tc.after) }}
		c := &cluster{pg: pg, requeue: 5 * time.Second}
		held, err := r.plannedRestart(context.Background(), c, false)
		if err != nil || held != tc.held {
			t.Errorf("%s after the restart: held %v (%v), want %v", tc.after, held, err, tc.held)
		}
	}
	// A healthy primary, or a switchover asked for, is never held.
	if held, _ := (&PostgresReconciler{Now: func() time.Time { return now }}).plannedRestart(context.Background(), &cluster{pg: pg}, true); held {
		t.Error("held while the primary is healthy or a switchover was asked for")
	}
}

// A spec.image whose tag names another major than spec.version stalls the
// cluster before any pod runs it; a tag without a version passes.
func TestValidateRefusesAnImageOfAnotherMajor(t *testing.T) {
	r := &PostgresReconciler{}
	for image, refused := range map[string]bool{"postgres:16.4": true, "postgres:15.8-bookworm": false, "postgres:latest": false, "": false} {
		pg := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "web"}, Spec: v1alpha1.PostgresSpec{Version: "15", Image: image}}
		err := r.validate(context.Background(), &cluster{pg: pg})
		var st *stalled
		got := errors.As(err, &st) && st.reason == ReasonImageVersionMismatch && isTerminal(err) &&
			strings.Contains(err.Error(), `spec.image "postgres:16.4" is PostgreSQL 16`) && strings.Contains(err.Error(), `spec.version is "15"`)
		if got != refused || (!refused && err != nil) {
			t.Errorf("image %q: %v, want refused %v", image, err, refused)
		}
	}
}
