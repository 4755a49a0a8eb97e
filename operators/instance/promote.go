package instance

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/lib/pq"

	"homeostat.dev/homeostat/backup/pgbin"
)

// Promote turns the standby running on pgdata into a primary (pg_ctl promote)
// and waits until it accepts writes.
func Promote(ctx context.Context, pgdata string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	cmd, err := pgbin.Command(ctx, "pg_ctl", "promote", "-D", pgdata, "-w", "-t", strconv.Itoa(int(timeout.Seconds())))
	if err != nil {
		return err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("promote %s: %w: %s", pgdata, err, out)
	}
	return nil
}

// SetSynchronousStandbys sets synchronous_standby_names with ALTER SYSTEM and
// reloads, so it takes effect at once and survives restarts; an empty value
// makes replication asynchronous again. Use the standbys' application names
// (SlotName of their instance names), e.g. "ANY 1 (db_1, db_2)".
func SetSynchronousStandbys(ctx context.Context, db *sql.DB, value string) error {
	if _, err := db.ExecContext(ctx, "ALTER SYSTEM SET synchronous_standby_names = "+pq.QuoteLiteral(value)); err != nil {
		return fmt.Errorf("set synchronous_standby_names: %w", err)
	}
	if _, err := db.ExecContext(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reload configuration: %w", err)
	}
	return nil
}

// Connect opens a connection pool to the server running on pgdata, over the
// unix socket its postmaster.pid names, as user (local trust).
func Connect(pgdata, user string) (*sql.DB, error) {
	pm, err := pgbin.ReadPostmaster(pgdata)
	if err != nil {
		return nil, err
	}
	return sql.Open("postgres", fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable connect_timeout=10",
		pm.SocketDir, pm.Port, user))
}
