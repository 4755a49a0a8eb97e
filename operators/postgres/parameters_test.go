package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// spec.parameters reach a running server: a reloadable setting at once, one
// that needs a restart is written and reported, a second pass changes
// nothing, and a name that leaves the spec is reset.
func TestParametersReachRunningInstances(t *testing.T) {
	const super = "super-pw"
	addr, db := scramServer(t, super)
	ns := newNamespace(t)
	pg := createPostgres(t, ns, func(pg *v1alpha1.Postgres) {
		pg.Spec.Instances = 1
		pg.Spec.Synchronous = 0
		pg.Spec.Parameters = map[string]string{"work_mem": "8MB", "max_connections": "120"}
	})
	r, c := onRealPrimary(t, pg, addr, super)
	show := func(name string) string {
		t.Helper()
		var v string
		if err := db.QueryRow("SHOW " + name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	if err := r.applyParameters(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "work_mem reloaded", func() bool { return show("work_mem") == "8MB" })
	// The reload is asynchronous: pending_restart shows up by the next pass,
	// which must write nothing more.
	c.pg = get(t, &v1alpha1.Postgres{}, ns, pg.Name)
	c.pg.Status.Primary = "db-1"
	if err := r.applyParameters(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	cond := meta.FindStatusCondition(c.pg.Status.Conditions, ConditionParametersApplied)
	if cond == nil || cond.Reason != "RestartPending" || !strings.Contains(cond.Message, "db-1 (max_connections)") {
		t.Fatalf("condition = %+v, want RestartPending naming max_connections on db-1", cond)
	}
	changed, _, err := setParameters(context.Background(), addr, superLogin{password: super}, lowerKeys(c.pg.Spec.Parameters), nil)
	if err != nil || len(changed) != 0 {
		t.Fatalf("a pass with nothing new changed %v (%v)", changed, err)
	}
	if got := c.pg.Annotations[AnnotationParameters]; got != "max_connections,work_mem" {
		t.Fatalf("applied-parameters annotation %q", got)
	}

	// work_mem leaves the spec: it is reset to the server's default.
	c.pg.Spec.Parameters = map[string]string{"max_connections": "120"}
	if err := r.applyParameters(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "work_mem reset", func() bool { return show("work_mem") == "4MB" })

	// A value the server refuses is reported, and the workflow goes on.
	c.pg.Spec.Parameters = map[string]string{"work_mem": "lots"}
	if err := r.applyParameters(context.Background(), c); err != nil {
		t.Fatalf("a refused value must not fail the reconcile: %v", err)
	}
	cond = meta.FindStatusCondition(c.pg.Status.Conditions, ConditionParametersApplied)
	if cond == nil || cond.Status != "False" || cond.Reason != "ParametersRefused" || !strings.Contains(cond.Message, "work_mem") {
		t.Fatalf("condition = %+v, want ParametersRefused naming work_mem", cond)
	}
}

// waitFor polls ok for up to ten seconds.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
