package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/operators/instance"
)

// Resolver maps the name of an instance's pod or of a Service in a namespace
// to the host:port where its PostgreSQL answers. Production uses
// KubeResolver; the test harness maps names to its loopback ports.
type Resolver func(ctx context.Context, namespace, name string) (string, error)

// KubeResolver resolves a Service to its cluster DNS name and a pod to its
// IP, both on PostgreSQL's port: what a controller running in the cluster
// can reach.
func KubeResolver(c client.Reader) Resolver {
	return func(ctx context.Context, ns, name string) (string, error) {
		var svc corev1.Service
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc)
		if err == nil {
			return net.JoinHostPort(fmt.Sprintf("%s.%s.svc", name, ns), strconv.Itoa(postgresPort)), nil
		}
		if !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("resolve service %s/%s: %w", ns, name, err)
		}
		var pod corev1.Pod
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil {
			return "", fmt.Errorf("resolve pod %s/%s: %w", ns, name, err)
		}
		if pod.Status.PodIP == "" {
			return "", fmt.Errorf("resolve pod %s/%s: no IP yet", ns, name)
		}
		return net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(postgresPort)), nil
	}
}

// Observation is what one instance said about itself.
type Observation struct {
	Reachable  bool
	InRecovery bool
	Timeline   int64
	// Current is the last WAL location written (primary) or replayed (replica).
	Current LSN
	// Received is how far a replica has received WAL (or replayed it, when
	// more: a restarted WAL receiver reports the start of its segment).
	Received LSN
	// SyncStandbyNames is the running synchronous_standby_names.
	SyncStandbyNames string
	// Streaming: a replica's WAL receiver streams from a primary.
	Streaming bool
	// Standbys are the application names streaming from a primary, with
	// their sync_state ("quorum", "sync", "async", "potential").
	Standbys map[string]string
	Err      error
	// Disk is the data volume's usage as the instance manager last
	// measured it (nil until it has, or when the file cannot be read).
	Disk *instance.DiskUsage
	// PendingRestart are the settings changed in the configuration files
	// that take effect only at the server's next start.
	PendingRestart []string
	// AuthFailed: the server answered but refused the superuser's password,
	// because the secret no longer matches what the data directory holds
	// (edited by hand). The instance is alive: never a reason to fail over.
	AuthFailed bool
	// HotStandby are a primary's settings a standby needs at least as
	// high (nil on a replica): lowering one restarts the primary first.
	HotStandby map[string]settingValues
}

func quoteConnValue(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}

// observeInstance asks one instance (db, at addr) for its role, timeline
// and WAL positions.
func observeInstance(ctx context.Context, db *sql.DB, addr string) Observation {
	ctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	var err error
	var o Observation
	var dataDir, pending string
	if err := db.QueryRowContext(ctx, `SELECT pg_is_in_recovery(), current_setting('synchronous_standby_names'), current_setting('data_directory'),
		(SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM pg_settings WHERE pending_restart)`).
		Scan(&o.InRecovery, &o.SyncStandbyNames, &dataDir, &pending); err != nil {
		return Observation{AuthFailed: isAuthFailure(err), Err: fmt.Errorf("query %s: %w", addr, err)}
	}
	if pending != "" {
		o.PendingRestart = strings.Split(pending, ",")
	}
	var cur, recv, tli string
	if o.InRecovery {
		// The timeline: what the WAL receiver streams, else the newest
		// this standby knows of: the newest timeline history file it
		// received (recovery_target_timeline = latest follows it), or
		// what the control file says. A stopped WAL receiver reports
		// nothing, and the control file lags until a restartpoint.
		err = db.QueryRowContext(ctx, `SELECT pg_last_wal_replay_lsn()::text,
			GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text,
			GREATEST((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT min_recovery_end_timeline FROM pg_control_recovery()),
				(SELECT timeline_id FROM pg_control_checkpoint()),
				(SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{8}\.history$'))::text,
			COALESCE((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false)`).Scan(&cur, &recv, &tli, &o.Streaming)
	} else {
		err = db.QueryRowContext(ctx, `SELECT pg_current_wal_lsn()::text, pg_current_wal_lsn()::text,
			('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int::text`).Scan(&cur, &recv, &tli)
	}
	if err == nil && !o.InRecovery {
		o.Standbys, err = streamingStandbys(ctx, db)
		o.HotStandby = observeHotStandby(ctx, db)
	}
	if err != nil {
		return Observation{Err: fmt.Errorf("query %s: %w", addr, err)}
	}
	o.Reachable = true
	o.Disk = diskUsage(ctx, db, dataDir)
	o.Current, _ = ParseLSN(cur)
	o.Received, _ = ParseLSN(recv)
	o.Timeline, _ = strconv.ParseInt(tli, 10, 64)
	return o
}

// diskUsage reads the instance manager's last measurement of the data
// volume through the server (superusers may read any file the server's
// account can), so it needs no access of its own to the pod's volume.
// Unknown (nil) until the first measurement, or when it cannot be read.
func diskUsage(ctx context.Context, db *sql.DB, dataDir string) *instance.DiskUsage {
	var raw sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT pg_read_file($1, 0, 65536, true)`, instance.DiskUsageFile(dataDir)).Scan(&raw); err != nil || !raw.Valid {
		return nil
	}
	var u instance.DiskUsage
	if err := json.Unmarshal([]byte(raw.String), &u); err != nil {
		return nil
	}
	return &u
}

// streamingStandbys reads pg_stat_replication: who streams, and whether
// each counts for synchronous commit.
func streamingStandbys(ctx context.Context, db *sql.DB) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT application_name, sync_state FROM pg_stat_replication WHERE state = 'streaming'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, state string
		if err := rows.Scan(&name, &state); err != nil {
			return nil, err
		}
		out[name] = state
	}
	return out, rows.Err()
}

// isAuthFailure is SQLSTATE class 28, invalid authorization: a wrong
// password or a role pg_hba.conf refuses.
func isAuthFailure(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code.Class() == "28"
}

// promote turns the replica at addr into a primary and waits for it.
func promote(ctx context.Context, addr string, password superLogin) error {
	db, err := pgConn(addr, password)
	if err != nil {
		return err
	}
	defer db.Close()
	var ok bool
	if err := db.QueryRowContext(ctx, `SELECT pg_promote(true, 60)`).Scan(&ok); err != nil {
		return fmt.Errorf("promote %s: %w", addr, err)
	}
	if !ok {
		return errors.New("promote " + addr + ": not promoted within 60s")
	}
	return nil
}

// setSyncStandbyNames writes synchronous_standby_names with ALTER SYSTEM and
// reloads the configuration, so it survives restarts of the primary.
func setSyncStandbyNames(ctx context.Context, addr string, password superLogin, value string) error {
	db, err := pgConn(addr, password)
	if err != nil {
		return err
	}
	defer db.Close()
	return setSyncStandbyNamesOn(ctx, db, addr, value)
}

// setSyncStandbyNamesOn is setSyncStandbyNames on an open connection.
func setSyncStandbyNamesOn(ctx context.Context, db *sql.DB, addr, value string) error {
	if _, err := db.ExecContext(ctx, `ALTER SYSTEM SET synchronous_standby_names = `+pq.QuoteLiteral(value)); err != nil {
		return fmt.Errorf("set synchronous_standby_names on %s: %w", addr, err)
	}
	if _, err := db.ExecContext(ctx, `SELECT pg_reload_conf()`); err != nil {
		return fmt.Errorf("reload configuration on %s: %w", addr, err)
	}
	return nil
}

// syncSlotsOn makes the primary (db, at addr) hold a physical replication slot for
// each replica in want, and drops the cluster's slots (names starting with
// prefix) that no instance in keep or want needs any more, so they do not
// keep WAL forever.
// A promoted replica starts without the slots its old primary had. It
// returns which slots are in use (a replica streams through it).
func syncSlotsOn(ctx context.Context, db *sql.DB, addr, prefix string, want, keep []string) (active map[string]bool, created, dropped []string, err error) {
	rows, err := db.QueryContext(ctx, `SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical'`)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list replication slots on %s: %w", addr, err)
	}
	have := map[string]bool{}
	for rows.Next() {
		var name string
		var active bool
		if err := rows.Scan(&name, &active); err != nil {
			rows.Close()
			return nil, nil, nil, err
		}
		have[name] = active
	}
	rows.Close()
	wanted := map[string]bool{}
	for _, k := range keep {
		wanted[k] = true
	}
	for _, w := range want {
		if _, ok := have[w]; ok {
			continue
		}
		if _, err := db.ExecContext(ctx, `SELECT pg_create_physical_replication_slot($1, true)`, w); err != nil {
			return have, created, dropped, fmt.Errorf("create replication slot %s on %s: %w", w, addr, err)
		}
		created = append(created, w)
	}
	for name, active := range have {
		if wanted[name] || active || !strings.HasPrefix(name, prefix) {
			continue
		}
		if _, err := db.ExecContext(ctx, `SELECT pg_drop_replication_slot($1)`, name); err != nil {
			return have, created, dropped, fmt.Errorf("drop replication slot %s on %s: %w", name, addr, err)
		}
		dropped = append(dropped, name)
	}
	return have, created, dropped, nil
}
