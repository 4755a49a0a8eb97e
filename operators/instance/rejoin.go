package instance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"homeostat.dev/homeostat/backup/pgbin"
)

// ExitRewindFailed is instance run's exit code when a former primary could
// not be rewound to follow the new one: the operator then clones the
// instance afresh (and says so in an event).
const ExitRewindFailed = 3

// Authority tells an instance manager which instance the cluster's primary
// is (the operator's decision, from the API server). cmd/homeostat reads it
// from the Postgres object; tests give a fixed answer.
type Authority interface {
	// Primary is the instance that is (or is becoming) the primary; "" while
	// none is chosen (bootstrap).
	Primary(ctx context.Context) (string, error)
	// Heartbeat tells the operator, through the API server, that this
	// instance runs as a primary and can reach the API server.
	Heartbeat(ctx context.Context) error
}

// Membership is what an instance manager needs to follow the primary.
type Membership struct {
	// Name is this instance (its replication slot is SlotName(Name)).
	Name string
	// Authority answers who the primary is; nil leaves the data directory's
	// role as it is.
	Authority Authority
	// Upstream is how a replica reaches whoever is primary (the -rw Service):
	// Host, Port, User (the replication role) and PassFile; Slot and
	// ApplicationName are taken from Name.
	Upstream Upstream
	// Wait bounds how long a former primary waits for the authority and the
	// new primary before giving up (the pod restarts); 2 minutes when 0.
	Wait time.Duration
	// FenceAfter is the fencing bound: a primary that reaches neither the
	// authority nor any replica for longer shuts down (see
	// watchIsolation); 0 turns fencing off.
	FenceAfter time.Duration
}

// ErrRefused wraps an Authority's error when the API server answered but
// refused (no permission, no such object): it is reachable, so this is no
// partition, but it tells nothing about roles. The instance then keeps the
// role its data directory has, and counts the answer as contact.
var ErrRefused = errors.New("the API server refused")

// errRewind marks a failed pg_rewind: the directory cannot follow the
// primary and must be cloned again.
var errRewind = errors.New("rewind failed")

// followPrimary makes the data directory agree with the authority before
// postgres starts. A replica (standby.signal) is pointed at the primary
// through its own slot, on the newest timeline. A directory that was a
// primary but is not the chosen one any more (a failover or switchover
// happened while it was down) is rewound with pg_rewind from the new primary
// and rejoins as its standby: no re-clone. While the authority cannot be
// asked, a former primary does not start at all (it could be stale), a
// replica starts as it is.
func followPrimary(ctx context.Context, opts RunOptions, log *slog.Logger) error {
	m := opts.Membership
	if m.Authority == nil {
		return nil
	}
	standby := fileExists(filepath.Join(opts.PGData, "standby.signal"))
	wait := m.Wait
	if wait <= 0 {
		wait = 2 * time.Minute
	}
	primary, err := askAuthority(ctx, m.Authority, standby, wait)
	if errors.Is(err, ErrRefused) {
		log.Warn("the API server does not say who the primary is; keeping this data directory's role", "err", err)
		return nil
	}
	if err != nil && standby {
		log.Warn("cannot ask who the primary is; starting as the standby this is", "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	if primary == "" || primary == m.Name {
		return nil
	}
	log.Info("following the primary", "primary", primary)
	return Rejoin(ctx, opts)
}

// Rejoin makes the stopped data directory a standby of the primary behind
// opts.Membership.Upstream: a former primary is rewound first (pg_rewind;
// an error wrapping a rewind failure means it must be cloned again, see
// ExitRewindFailed); a standby is only repointed.
func Rejoin(ctx context.Context, opts RunOptions) error {
	log := logger(opts.Log)
	if opts.Superuser == "" {
		opts.Superuser = "postgres"
	}
	if opts.PassFile == "" {
		opts.PassFile = DefaultPassFile(opts.PGData)
	}
	wait := opts.Membership.Wait
	if wait <= 0 {
		wait = 2 * time.Minute
	}
	if !fileExists(filepath.Join(opts.PGData, "standby.signal")) {
		log.Info("this instance was a primary; rewinding it to follow the new one", "pgdata", opts.PGData)
		if err := rewind(ctx, opts, wait, log); err != nil {
			return err
		}
	}
	return writeStandbyConfig(opts)
}

// IsRewindFailure tells whether Rejoin failed in pg_rewind itself (the
// directory must be cloned again) rather than, say, reaching the primary.
func IsRewindFailure(err error) bool { return errors.Is(err, errRewind) }

// askAuthority retries until the authority answers; a standby does not
// need the answer to start safely, so it gives up at once.
func askAuthority(ctx context.Context, a Authority, standby bool, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		p, err := a.Primary(ctx)
		if err == nil || standby || errors.Is(err, ErrRefused) {
			return p, err
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("ask who the primary is: %w (a former primary does not start without the answer)", err)
		}
		if !sleep(ctx, time.Second) {
			return "", ctx.Err()
		}
	}
}

// rewind runs pg_rewind against the primary behind Upstream, as the
// superuser (pg_rewind reads files through SQL functions only superusers
// may call), and keeps this instance's own homeostat.conf (pg_rewind copies
// the source's configuration files). A clean former primary that is not
// ahead of the fork point needs no rewind; pg_rewind says so and changes
// nothing.
func rewind(ctx context.Context, opts RunOptions, wait time.Duration, log *slog.Logger) error {
	up := opts.Membership.Upstream
	conninfo := fmt.Sprintf("host=%s port=%d user=%s dbname=postgres connect_timeout=10 %s",
		conninfoQuote(up.Host), up.Port, conninfoQuote(opts.Superuser), up.sslParams())
	if err := waitForSourcePrimary(ctx, conninfo, opts.SuperuserPassword, wait); err != nil {
		return err
	}
	conf := filepath.Join(opts.PGData, ConfFile)
	own, err := os.ReadFile(conf)
	if err != nil {
		return fmt.Errorf("rewind: %w", err)
	}
	args := []string{"--target-pgdata", opts.PGData, "--source-server", conninfo}
	if strings.Contains(string(own), "restore_command = ") {
		// WAL the old primary has removed since the fork point's
		// checkpoint comes from the archive.
		args = append(args, "--restore-target-wal")
	}
	cmd, err := pgbin.Command(ctx, "pg_rewind", args...)
	if err != nil {
		return err
	}
	cmd.Env = append(cmd.Env, "PGPASSWORD="+opts.SuperuserPassword)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: pg_rewind from %s:%d: %w: %s", errRewind, up.Host, up.Port, err, strings.TrimSpace(string(out)))
	}
	log.Info("pg_rewind done", "output", strings.TrimSpace(string(out)))
	return pgbin.WriteFile(conf, own)
}

// waitForSourcePrimary waits until the Upstream answers as a primary, and
// makes it checkpoint.
func waitForSourcePrimary(ctx context.Context, conninfo, password string, wait time.Duration) error {
	db, err := sql.Open("postgres", conninfo+" password="+conninfoQuote(password))
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(wait)
	for {
		var inRecovery bool
		err := db.QueryRowContext(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery)
		if err == nil && !inRecovery {
			// A freshly promoted primary's control file names its new
			// timeline only after its first checkpoint; until then
			// pg_rewind finds "the same timeline" and rewinds nothing.
			if _, err := db.ExecContext(ctx, `CHECKPOINT`); err != nil {
				return fmt.Errorf("checkpoint on the new primary before pg_rewind: %w", err)
			}
			return nil
		}
		if err == nil {
			err = errors.New("it is still in recovery")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("new primary not reachable for pg_rewind: %w", err)
		}
		if !sleep(ctx, time.Second) {
			return ctx.Err()
		}
	}
}

// writeStandbyConfig points the instance at the primary: primary_conninfo
// (the -rw Service), its own slot, recovery_target_timeline = latest, a
// passfile with the replication password, and standby.signal.
func writeStandbyConfig(opts RunOptions) error {
	m := opts.Membership
	up := m.Upstream
	if up.PassFile == "" {
		up.PassFile = opts.PassFile
	}
	up.Slot, up.ApplicationName = SlotName(m.Name), SlotName(m.Name)
	up = upstreamSSL(opts.PGData, up)
	if opts.ReplicationPassword != "" {
		if err := pgbin.WriteFile(up.PassFile, []byte(passfileLine(up.Host, up.Port, up.User, opts.ReplicationPassword))); err != nil {
			return err
		}
	}
	want := Config{Primary: &up}.Settings()
	keys := map[string]string{}
	for _, k := range []string{"primary_conninfo", "primary_slot_name", "recovery_target_timeline"} {
		keys[k] = want[k]
	}
	if err := setConf(filepath.Join(opts.PGData, ConfFile), keys); err != nil {
		return err
	}
	return pgbin.WriteFile(filepath.Join(opts.PGData, "standby.signal"), nil)
}

// setConf replaces (or adds) settings in a file RenderConf wrote.
func setConf(path string, settings map[string]string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	cur := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		k, v, ok := strings.Cut(line, " = ")
		if !ok || strings.HasPrefix(line, "#") {
			continue // RenderConf writes its header again
		}
		cur[k] = unquoteConf(v)
	}
	for k, v := range settings {
		cur[k] = v
	}
	return pgbin.WriteFile(path, []byte(RenderConf(cur)))
}

// unquoteConf reads a value QuoteConf wrote: '...' with ” for a quote.
func unquoteConf(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return strings.ReplaceAll(v[1:len(v)-1], "''", "'")
	}
	return v
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
