package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"homeostat.dev/homeostat/operators/instance"
)

// syncStandbySlots keeps, on the replica at addr, a physical replication
// slot for every other member of the cluster, advanced to where that member
// is known to have received WAL (PostgreSQL never moves a standby's slot past
// its own replay position), and drops the cluster's slots (names starting
// with prefix) of members that are gone. A promoted replica so starts with a
// slot for each survivor that still holds the WAL the survivor needs, and
// each survivor follows the new timeline at once instead of failing with
// "replication slot does not exist" or "requested WAL segment has already
// been removed".
func syncStandbySlots(ctx context.Context, addr string, password superLogin, prefix string, positions map[string]LSN) error {
	db, err := pgConn(addr, password)
	if err != nil {
		return err
	}
	defer db.Close()
	return syncStandbySlotsOn(ctx, db, addr, prefix, positions)
}

// syncStandbySlotsOn is syncStandbySlots on an open connection.
func syncStandbySlotsOn(ctx context.Context, db *sql.DB, addr, prefix string, positions map[string]LSN) error {
	rows, err := db.QueryContext(ctx, `SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical'`)
	if err != nil {
		return fmt.Errorf("list replication slots on %s: %w", addr, err)
	}
	have := map[string]bool{}
	for rows.Next() {
		var name string
		var active bool
		if err := rows.Scan(&name, &active); err != nil {
			rows.Close()
			return err
		}
		have[name] = active
	}
	rows.Close()
	for slot, lsn := range positions {
		if _, ok := have[slot]; !ok {
			if _, err := db.ExecContext(ctx, `SELECT pg_create_physical_replication_slot($1, true)`, slot); err != nil {
				return fmt.Errorf("create replication slot %s on %s: %w", slot, addr, err)
			}
		}
		if lsn == 0 {
			continue
		}
		// Advancing backwards is an error; a slot is only ever moved on.
		if _, err := db.ExecContext(ctx, `SELECT pg_replication_slot_advance(slot_name, $2::pg_lsn) FROM pg_replication_slots
			WHERE slot_name = $1 AND restart_lsn IS NOT NULL AND restart_lsn < $2::pg_lsn`, slot, lsn.String()); err != nil {
			return fmt.Errorf("advance replication slot %s on %s: %w", slot, addr, err)
		}
	}
	for name, active := range have {
		if _, want := positions[name]; want || active || !strings.HasPrefix(name, prefix) {
			continue
		}
		if _, err := db.ExecContext(ctx, `SELECT pg_drop_replication_slot($1)`, name); err != nil {
			return fmt.Errorf("drop replication slot %s on %s: %w", name, addr, err)
		}
	}
	return nil
}

// memberPositions are the slots a replica keeps for the other members (by
// slot name), each at the WAL position that member was last seen to hold:
// the primary's current position, a replica's received position, or 0 (kept
// where it is) for a member that does not answer.
func memberPositions(c *cluster, self string) map[string]LSN {
	out := map[string]LSN{}
	for _, name := range readyPVCs(c) {
		if name == self {
			continue
		}
		o := c.obs[name]
		var lsn LSN
		switch {
		case !o.Reachable:
		case o.InRecovery:
			lsn = o.Received
		default:
			lsn = o.Current
		}
		out[instance.SlotName(name)] = lsn
	}
	return out
}

// syncReplicaSlots runs syncStandbySlots on every replica that answers.
// A replica that fails is skipped (and logged by the caller's next
// reconcile): its slots only matter once it is promoted.
func (r *PostgresReconciler) syncReplicaSlots(ctx context.Context, c *cluster) error {
	var errs []string
	for _, name := range readyPVCs(c) {
		o := c.obs[name]
		if name == c.pg.Status.Primary || !o.Reachable || !o.InRecovery {
			continue
		}
		db, addr, err := r.conn(ctx, c, name)
		if err == nil {
			err = syncStandbySlotsOn(ctx, db, addr, instance.SlotName(c.pg.Name+"-"), memberPositions(c, name))
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("replica slots: %s", strings.Join(errs, "; "))
	}
	return nil
}
