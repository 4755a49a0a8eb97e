package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// ReasonPlannedRestart is the PrimaryAvailable reason while the operator
// itself restarts the primary in place (a rolling update that lowers a
// hot-standby setting): failover waits for it rather than promoting.
const ReasonPlannedRestart = "PlannedRestart"

// hotStandbySettings must be at least as high on a standby as on its
// primary, or the standby does not start (PostgreSQL: "insufficient
// parameter settings"). Lowering one therefore restarts the primary first.
var hotStandbySettings = []string{"max_connections", "max_locks_per_transaction", "max_prepared_transactions",
	"max_wal_senders", "max_worker_processes"}

// settingValues are a primary's hot-standby settings: the value it runs
// with, and the one its configuration files give it at the next start.
type settingValues struct {
	Running, Next int64
}

// observeHotStandby reads the primary's hot-standby settings. The next
// value is the last line of the configuration files that sets it
// (postgresql.auto.conf comes last), else the built-in default. Nil when
// they cannot be read: the rolling update then keeps its usual order.
func observeHotStandby(ctx context.Context, db *sql.DB) map[string]settingValues {
	rows, err := db.QueryContext(ctx, `SELECT s.name, s.setting,
		coalesce((SELECT f.setting FROM pg_file_settings f WHERE f.name = s.name ORDER BY f.seqno DESC LIMIT 1), s.boot_val)
		FROM pg_settings s WHERE s.name = ANY($1)`, pq.Array(hotStandbySettings))
	if err != nil {
		return nil
	}
	defer rows.Close()
	out := map[string]settingValues{}
	for rows.Next() {
		var name, running, next string
		if rows.Scan(&name, &running, &next) != nil {
			return nil
		}
		r, err1 := strconv.ParseInt(running, 10, 64)
		n, err2 := strconv.ParseInt(next, 10, 64)
		if err1 == nil && err2 == nil {
			out[name] = settingValues{Running: r, Next: n}
		}
	}
	if rows.Err() != nil {
		return nil
	}
	return out
}

// refreshHotStandby reads the primary's hot-standby settings again after
// applyParameters wrote to the configuration: pg_file_settings reads the
// files when asked, so a setting just reset shows the value it falls back
// to in this very reconcile, before the rolling update chooses its order.
func (r *PostgresReconciler) refreshHotStandby(ctx context.Context, c *cluster) {
	primary := c.pg.Status.Primary
	db, _, err := r.conn(ctx, c, primary)
	if err != nil {
		return
	}
	if hs := observeHotStandby(ctx, db); hs != nil {
		o := c.obs[primary]
		o.HotStandby = hs
		c.obs[primary] = o
	}
}

// loweredHotStandby names the hot-standby settings the spec sets lower
// than the primary runs with. A name in spec.parameters is judged by its
// value there (the rolling update may begin before the new value is
// written); one that is not, by the primary's configuration files (a
// setting removed from the spec is reset there). A value that is not a
// number is the server's to refuse, not a lowering.
func loweredHotStandby(params map[string]string, primary map[string]settingValues) []string {
	want := lowerKeys(params)
	var out []string
	for _, name := range hotStandbySettings {
		got, ok := primary[name]
		if !ok {
			continue
		}
		next := got.Next
		if v, set := want[name]; set {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				continue
			}
			next = n
		}
		if next < got.Running {
			out = append(out, fmt.Sprintf("%s %d to %d", name, got.Running, next))
		}
	}
	return out
}

// restartPrimary restarts the primary in place on its volume ahead of the
// replicas: PrimaryAvailable says ReasonPlannedRestart, written before the
// pod is deleted so that no reconcile sees the primary gone without it,
// and failover waits (see plannedRestart).
func (r *PostgresReconciler) restartPrimary(ctx context.Context, c *cluster, v rolloutView, left string) error {
	msg := fmt.Sprintf("restarting primary %s in place before its replicas: %s lowered (a standby needs them at least as high as its primary's)",
		v.primary, strings.Join(v.lowered, ", "))
	setCondition(c.pg, ConditionPrimaryAvailable, metav1.ConditionFalse, ReasonPlannedRestart, msg)
	if err := r.patchConditions(ctx, c.pg); err != nil {
		return err
	}
	r.event(c.pg, ReasonPlannedRestart, "%s", msg)
	return r.replacePod(ctx, c, v.primary, v.outdated[v.primary], left)
}

// patchConditions writes status.conditions at once, ahead of the status
// patch that ends the reconcile.
func (r *PostgresReconciler) patchConditions(ctx context.Context, pg *v1alpha1.Postgres) error {
	b, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": pg.Status.Conditions}})
	if err != nil {
		return err
	}
	ref := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: pg.Name, Namespace: pg.Namespace}}
	if err := r.Status().Patch(ctx, ref, client.RawPatch(types.MergePatchType, b)); err != nil {
		return fmt.Errorf("record the planned restart of %s: %w", pg.Status.Primary, err)
	}
	return nil
}

// plannedRestartBound is how long failover waits for a primary the
// operator restarted: past it, the restart counts as failed, and the usual
// failover (after failoverDelay, counted from the restart) applies.
func plannedRestartBound(pg *v1alpha1.Postgres) time.Duration {
	return failoverDelay(pg) + 2*time.Minute
}

// plannedRestart holds failover while the operator restarts the primary
// itself: true while the restart is under way and within its bound; never
// for a healthy primary, nor for a switchover or forced promotion someone
// asked for (healthyOrAsked). The workflow goes on (EnsurePods makes the
// primary's pod anew; the rolling update waits for it). The cache may lag
// the condition written just before the pod was deleted, so when it does
// not show one the Postgres is read past it (only while the primary does
// not answer).
func (r *PostgresReconciler) plannedRestart(ctx context.Context, c *cluster, healthyOrAsked bool) (bool, error) {
	if healthyOrAsked {
		return false, nil
	}
	cond := meta.FindStatusCondition(c.pg.Status.Conditions, ConditionPrimaryAvailable)
	if cond == nil || cond.Reason != ReasonPlannedRestart {
		live, err := r.livePostgres(ctx, c)
		if err != nil {
			return true, err
		}
		cond = meta.FindStatusCondition(live.Status.Conditions, ConditionPrimaryAvailable)
		if cond == nil || cond.Reason != ReasonPlannedRestart || live.Status.Primary != c.pg.Status.Primary {
			return false, nil
		}
		// Kept, so that this reconcile's status patch does not drop it.
		meta.SetStatusCondition(&c.pg.Status.Conditions, *cond)
	}
	if !r.now().Before(cond.LastTransitionTime.Add(plannedRestartBound(c.pg))) {
		return false, nil
	}
	c.requeue = min(c.requeue, time.Second)
	return true, nil
}

// livePostgres reads the Postgres past the cache.
func (r *PostgresReconciler) livePostgres(ctx context.Context, c *cluster) (*v1alpha1.Postgres, error) {
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	live := &v1alpha1.Postgres{}
	if err := reader.Get(ctx, client.ObjectKeyFromObject(c.pg), live); err != nil {
		return nil, fmt.Errorf("read %s: %w", c.pg.Name, err)
	}
	return live, nil
}
