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

// Login is one role whose password follows its secret.
type Login struct {
	Role     string
	Password string
	// Attributes a role created because it was missing gets besides LOGIN
	// (" REPLICATION").
	Attributes string
}

// logins are the roles whose passwords were given; a role without one is
// left alone (its password may be managed by hand).
func (o RunOptions) logins() []Login {
	all := []Login{
		{Role: o.Superuser, Password: o.SuperuserPassword},
		{Role: o.ReplicationUser, Password: o.ReplicationPassword, Attributes: " REPLICATION"},
		{Role: o.Owner, Password: o.OwnerPassword},
	}
	var out []Login
	for _, l := range all {
		if l.Role != "" && l.Password != "" {
			out = append(out, l)
		}
	}
	return out
}

func roleNames(ls []Login) []string {
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = l.Role
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
		_, err = SetPasswords(ctx, db, logins, true)
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

// SetPasswords makes each login's password the one given, on the primary
// db is connected to as a superuser, and returns the roles it wrote. A role
// whose stored verifier was made from its password is not written (a check
// every reconcile or start costs no catalog write); a missing role is
// created WITH LOGIN and its Attributes when create is set (a restored
// cluster may name another owner), else left alone. Passwords go as scram
// verifiers, so none reaches the server. One transaction, committed only
// locally: a primary whose synchronous standbys are gone must not wait for
// them.
func SetPasswords(ctx context.Context, db *sql.DB, logins []Login, create bool) ([]string, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "SET LOCAL synchronous_commit = local"); err != nil {
		return nil, err
	}
	stored, err := storedVerifiers(ctx, tx, roleNames(logins))
	if err != nil {
		return nil, err
	}
	var written []string
	for _, l := range logins {
		verifier, exists := stored[l.Role]
		if (exists && VerifierMatches(verifier, l.Password)) || (!exists && !create) {
			continue
		}
		stmt, err := passwordStatement(l, exists)
		if err != nil {
			return nil, fmt.Errorf("role %s: %w", l.Role, err)
		}
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			// The statement carries a verifier, not a password, but keep
			// it out of errors all the same: name the first words only.
			return nil, fmt.Errorf("%s: %w", firstWords(stmt, 3), err)
		}
		written = append(written, l.Role)
	}
	return written, tx.Commit()
}

// storedVerifiers are the password verifiers pg_authid holds for the roles
// that exist among roles ("" for a role without a password).
func storedVerifiers(ctx context.Context, tx *sql.Tx, roles []string) (map[string]string, error) {
	rows, err := tx.QueryContext(ctx, "SELECT rolname, COALESCE(rolpassword, '') FROM pg_authid WHERE rolname = ANY($1)", pq.Array(roles))
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	out := map[string]string{}
	for rows.Next() {
		var role, verifier string
		if err := rows.Scan(&role, &verifier); err != nil {
			return nil, err
		}
		out[role] = verifier
	}
	return out, rows.Err()
}

// passwordStatement is ALTER ROLE for an existing role, CREATE ROLE ... WITH
// LOGIN for a missing one.
func passwordStatement(l Login, exists bool) (string, error) {
	verifier, err := ScramVerifier(l.Password)
	if err != nil {
		return "", err
	}
	password := " PASSWORD " + pq.QuoteLiteral(verifier)
	if exists {
		return "ALTER ROLE " + pq.QuoteIdentifier(l.Role) + " WITH" + password, nil
	}
	return "CREATE ROLE " + pq.QuoteIdentifier(l.Role) + " WITH LOGIN" + l.Attributes + password, nil
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
