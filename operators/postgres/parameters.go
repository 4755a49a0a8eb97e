package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"

	"github.com/lib/pq"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConditionParametersApplied is False while a changed spec.parameters
// setting waits for instances to restart.
const ConditionParametersApplied = "ParametersApplied"

// applyParameters brings spec.parameters to the running instances with
// ALTER SYSTEM and a reload, replicas first: a standby needs hot-standby
// settings such as max_connections no lower than its primary's. A setting
// that needs a restart is written and reported (condition
// ParametersApplied, reason RestartPending) rather than restarted by force.
// Names that left the spec are reset, once every instance took the spec.
// Once every instance has the spec and none waits for a restart, the step
// is skipped until spec.parameters or the instances change
// (AnnotationParametersSynced).
func (r *PostgresReconciler) applyParameters(ctx context.Context, c *cluster) error {
	primary := c.pg.Status.Primary
	if o := c.obs[primary]; primary == "" || !o.Reachable || o.InRecovery {
		return nil
	}
	key := parametersKey(c)
	if c.pg.Annotations[AnnotationParametersSynced] == key {
		return nil
	}
	want := lowerKeys(c.pg.Spec.Parameters)
	var reset []string
	for _, k := range strings.Split(c.pg.Annotations[AnnotationParameters], ",") {
		if _, ok := want[k]; k != "" && !ok {
			reset = append(reset, k)
		}
	}
	order := append(replicasOf(c), primary)
	var pending []string
	everywhere, wrote := true, false
	for _, name := range order {
		if o := c.obs[name]; !o.Reachable {
			everywhere = false
			continue
		}
		db, _, err := r.conn(ctx, c, name)
		if err != nil {
			return err
		}
		changed, restart, err := setParametersOn(ctx, db, want, reset)
		if err != nil {
			// A value the server refuses must not hold up the rest of the
			// workflow (replicas, failover): say so and go on.
			r.parametersFailed(c, fmt.Errorf("%s: %w", name, err))
			return nil
		}
		if len(changed) > 0 {
			wrote = true
			r.event(c.pg, "ParametersApplied", "%s: %s", name, strings.Join(changed, ", "))
		}
		if len(restart) > 0 {
			pending = append(pending, fmt.Sprintf("%s (%s)", name, strings.Join(restart, ", ")))
		}
	}
	if len(pending) > 0 {
		setCondition(c.pg, ConditionParametersApplied, metav1.ConditionFalse, "RestartPending",
			"restart to apply: "+strings.Join(pending, "; ")+" (the rolling update restarts them, replicas first)")
	} else {
		setCondition(c.pg, ConditionParametersApplied, metav1.ConditionTrue, "Applied", "spec.parameters are in effect on every running instance")
	}
	if wrote {
		r.refreshHotStandby(ctx, c)
	}
	names := sortedKeys(want)
	if everywhere && c.pg.Annotations[AnnotationParameters] != strings.Join(names, ",") {
		if err := r.annotate(ctx, c.pg, AnnotationParameters, strings.Join(names, ",")); err != nil {
			return err
		}
	}
	if everywhere && len(pending) == 0 && !wrote {
		// Every instance had the spec already and none waits for a
		// restart (a pass that wrote something is checked by the next:
		// the reload is asynchronous, so pending_restart shows late): the
		// next reconciles skip this step until the spec or the members
		// change.
		return r.annotate(ctx, c.pg, AnnotationParametersSynced, key)
	}
	return nil
}

// parametersFailed reports spec.parameters a server refused (an unknown
// setting, a bad value), with a warning event when it is news.
func (r *PostgresReconciler) parametersFailed(c *cluster, err error) {
	msg := "spec.parameters not applied: " + err.Error()
	if prev := meta.FindStatusCondition(c.pg.Status.Conditions, ConditionParametersApplied); prev == nil || prev.Message != msg {
		r.warn(c.pg, "ParametersRefused", "%s", msg)
	}
	setCondition(c.pg, ConditionParametersApplied, metav1.ConditionFalse, "ParametersRefused", msg)
}

// replicasOf are the instances other than the primary, in serial order.
func replicasOf(c *cluster) []string {
	var out []string
	for _, name := range readyPVCs(c) {
		if name != c.pg.Status.Primary {
			out = append(out, name)
		}
	}
	return out
}

// setParameters makes postgresql.auto.conf of the instance at addr hold
// want and none of reset, reloads when it changed anything, and returns
// what it changed and the settings that wait for a restart.
func setParameters(ctx context.Context, addr string, superPassword superLogin, want map[string]string, reset []string) (changed, restart []string, err error) {
	db, err := pgConn(addr, superPassword)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = db.Close() }()
	return setParametersOn(ctx, db, want, reset)
}

// setParametersOn is setParameters on an open connection.
func setParametersOn(ctx context.Context, db *sql.DB, want map[string]string, reset []string) (changed, restart []string, err error) {
	current, err := autoConf(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range sortedKeys(want) {
		if v, ok := current[k]; ok && v == want[k] {
			continue
		}
		// ALTER SYSTEM cannot run in a transaction block; one statement each.
		if _, err := db.ExecContext(ctx, "ALTER SYSTEM SET "+settingName(k)+" = "+pq.QuoteLiteral(want[k])); err != nil {
			return nil, nil, fmt.Errorf("set %s: %w", k, err)
		}
		changed = append(changed, k+"="+want[k])
	}
	for _, k := range reset {
		if _, ok := current[k]; !ok {
			continue
		}
		if _, err := db.ExecContext(ctx, "ALTER SYSTEM RESET "+settingName(k)); err != nil {
			return nil, nil, fmt.Errorf("reset %s: %w", k, err)
		}
		changed = append(changed, "reset "+k)
	}
	if len(changed) > 0 {
		if _, err := db.ExecContext(ctx, "SELECT pg_reload_conf()"); err != nil {
			return nil, nil, fmt.Errorf("reload: %w", err)
		}
	}
	restart, err = pendingRestart(ctx, db)
	return changed, restart, err
}

// autoConf is what ALTER SYSTEM has written (postgresql.auto.conf), by
// lower-case name.
func autoConf(ctx context.Context, db *sql.DB) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT lower(name), setting FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf' ORDER BY seqno`)
	if err != nil {
		return nil, fmt.Errorf("read postgresql.auto.conf: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

// pendingRestart lists the settings changed in the files that take effect
// only at the next server start. The reload is asynchronous (the postmaster
// rereads on SIGHUP), so a setting written just now may show up at the
// next reconcile instead.
func pendingRestart(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM pg_settings WHERE pending_restart ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read pending_restart: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// settingName quotes each part of a setting name ("work_mem",
// "pg_stat_statements.max") as an identifier.
func settingName(k string) string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		parts[i] = pq.QuoteIdentifier(p)
	}
	return strings.Join(parts, ".")
}

func lowerKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
