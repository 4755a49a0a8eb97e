package instance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"

	"homeostat.dev/homeostat/backup/pgbin"
)

// login is one role whose password Run keeps in step with its secret.
type login struct {
	role     string
	password string
	// attributes a role created here gets besides LOGIN.
	attributes string
}

// logins are the roles whose passwords were given; a role without one is
// left alone (its password may be managed by hand).
func (o RunOptions) logins() []login {
	all := []login{
		{role: o.Superuser, password: o.SuperuserPassword},
		{role: o.ReplicationUser, password: o.ReplicationPassword, attributes: " REPLICATION"},
		{role: o.Owner, password: o.OwnerPassword},
	}
	var out []login
	for _, l := range all {
		if l.role != "" && l.password != "" {
			out = append(out, l)
		}
	}
	return out
}

func roleNames(ls []login) []string {
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = l.role
	}
	return names
}

// Polling and retry bounds of syncPasswords.
const (
	primaryPollMin   = 500 * time.Millisecond
	primaryPollMax   = 5 * time.Second
	passwordAttempts = 3
)

// startPasswordSync runs syncPasswords beside the server; the returned stop
// cancels it and waits for it, so nothing outlives the server.
func startPasswordSync(opts RunOptions, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		syncPasswords(ctx, opts, log)
	}()
	return func() { cancel(); <-done }
}

// syncPasswords sets the given roles' passwords once the server is a
// primary. The secrets are the source of truth: a data directory restored
// from another cluster's backup still holds that cluster's passwords, and
// replicas, the operator and applications log in with this cluster's. It
// runs once per start; a replica waits for as long as it lives, so a
// promotion (a restore's end, a failover) sets them too. Failures are logged
// and retried a few times, never fatal to the server.
func syncPasswords(ctx context.Context, opts RunOptions, log *slog.Logger) {
	logins := opts.logins()
	if len(logins) == 0 {
		return
	}
	roles := roleNames(logins)
	log.Info("will set role passwords once the server is a primary", "roles", roles)
	for attempt := 1; attempt <= passwordAttempts; attempt++ {
		db, err := waitForPrimary(ctx, opts.PGData, opts.Superuser)
		if err != nil {
			return // the server is gone
		}
		err = setPasswords(ctx, db, logins)
		_ = db.Close()
		if err == nil {
			log.Info("role passwords set from secrets", "roles", roles)
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("setting role passwords failed", "roles", roles, "attempt", attempt, "of", passwordAttempts, "err", err)
		if !sleep(ctx, primaryPollMax) {
			return
		}
	}
	log.Error("gave up setting role passwords; they keep the values the data directory holds", "roles", roles)
}

// waitForPrimary polls, with a growing interval, until the server accepts a
// socket connection and is out of recovery; it fails only when ctx ends.
func waitForPrimary(ctx context.Context, pgdata, superuser string) (*sql.DB, error) {
	interval := primaryPollMin
	for {
		if db, err := primaryConn(ctx, pgdata, superuser); err == nil {
			return db, nil
		}
		if !sleep(ctx, interval) {
			return nil, ctx.Err()
		}
		interval = min(2*interval, primaryPollMax)
	}
}

// primaryConn connects as the superuser over the unix socket (trusted by
// pg_hba.conf) and succeeds only on a primary.
func primaryConn(ctx context.Context, pgdata, superuser string) (*sql.DB, error) {
	db, err := Connect(pgdata, superuser)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	var inRecovery bool
	err = db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery)
	if err == nil && inRecovery {
		err = errors.New("in recovery")
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// setPasswords sets every login's password in one transaction, as a scram
// verifier so no plain password reaches the server, creating a missing role
// (a restored cluster may name another owner). The commit is only local: a
// primary whose synchronous standbys are gone must not wait for them.
func setPasswords(ctx context.Context, db *sql.DB, logins []login) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "SET LOCAL synchronous_commit = local"); err != nil {
		return err
	}
	for _, l := range logins {
		stmt, err := passwordStatement(ctx, tx, l)
		if err != nil {
			return fmt.Errorf("role %s: %w", l.role, err)
		}
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			// The statement carries a verifier, not a password, but keep
			// it out of errors all the same: name the first words only.
			return fmt.Errorf("%s: %w", firstWords(stmt, 3), err)
		}
	}
	return tx.Commit()
}

// passwordStatement is ALTER ROLE for an existing role, CREATE ROLE ... WITH
// LOGIN for a missing one.
func passwordStatement(ctx context.Context, tx *sql.Tx, l login) (string, error) {
	var exists bool
	if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", l.role).Scan(&exists); err != nil {
		return "", err
	}
	verifier, err := ScramVerifier(l.password)
	if err != nil {
		return "", err
	}
	password := " PASSWORD " + pq.QuoteLiteral(verifier)
	if exists {
		return "ALTER ROLE " + pq.QuoteIdentifier(l.role) + " WITH" + password, nil
	}
	return "CREATE ROLE " + pq.QuoteIdentifier(l.role) + " WITH LOGIN" + l.attributes + password, nil
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// refreshPassFile puts password into a replica's passfile (written by
// Join), so that a rotated replication secret reaches the replica at its
// next start: until then its primary_conninfo would present the old one and
// streaming would stop once the primary has the new one. No passfile (a
// primary) or no password given leaves everything as it is.
func refreshPassFile(path, password string) (changed bool, err error) {
	if password == "" {
		return false, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read passfile: %w", err)
	}
	var out strings.Builder
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if entry, ok := withPassword(strings.TrimSuffix(line, "\n"), password); ok {
			out.WriteString(entry)
		} else {
			out.WriteString(line) // not an entry Join writes: keep it
		}
	}
	if out.String() == string(data) {
		return false, nil
	}
	if err := pgbin.WriteFile(path, []byte(out.String())); err != nil {
		return false, err
	}
	return true, nil
}

// withPassword is a Join-written entry (host:port:*:user:password) with
// another password.
func withPassword(line, password string) (string, bool) {
	f := splitPassfileLine(line)
	if len(f) != 5 {
		return "", false
	}
	port, err := strconv.Atoi(f[1])
	if err != nil {
		return "", false
	}
	return passfileLine(f[0], port, f[3], password), true
}

// splitPassfileLine splits a libpq passfile entry at its unescaped colons
// and unescapes the fields.
func splitPassfileLine(line string) []string {
	var fields []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == ':':
			fields = append(fields, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(fields, cur.String())
}
