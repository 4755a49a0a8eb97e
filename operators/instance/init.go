package instance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/lib/pq"

	"homeostat.dev/homeostat/backup/pgbin"
)

// InitOptions create a primary.
type InitOptions struct {
	PGData string
	Config Config
	// Database is created owned by Owner (the application's role).
	Database string
	Owner    string
	// Passwords; empty leaves the role without a password (no network login).
	SuperuserPassword   string
	ReplicationPassword string
	OwnerPassword       string
	Log                 *slog.Logger
}

// Init makes PGData a primary: initdb with data checksums, homeostat's
// configuration, then (on a temporary socket-only server) the replication
// role, the application role and its database. On a directory that already
// holds a cluster it only rewrites the configuration, so a pod can run it on
// every start.
func Init(ctx context.Context, opts InitOptions) error {
	log := logger(opts.Log)
	if exists, err := hasCluster(opts.PGData); err != nil || exists {
		if err == nil {
			log.Info("data directory already initialised; rewriting configuration only", "pgdata", opts.PGData)
			err = writeConfig(opts.PGData, opts.Config)
		}
		return err
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"initdb", func() error { return initdb(ctx, opts) }},
		{"configure", func() error { return writeConfig(opts.PGData, opts.Config) }},
		{"create roles and database", func() error {
			return withTemporaryServer(ctx, opts.PGData, opts.Config, func(db *sql.DB) error { return createRoles(ctx, db, opts) })
		}},
	}
	for _, s := range steps {
		log.Info("instance init", "step", s.name, "pgdata", opts.PGData)
		if err := s.run(); err != nil {
			return fmt.Errorf("instance init %s: %s: %w", opts.PGData, s.name, err)
		}
	}
	return nil
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}

func hasCluster(pgdata string) (bool, error) {
	_, err := os.Stat(filepath.Join(pgdata, "PG_VERSION"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func initdb(ctx context.Context, opts InitOptions) error {
	if err := pgbin.PrepareDir(opts.PGData, 0o700); err != nil {
		return err
	}
	args := []string{"-D", opts.PGData, "-U", opts.Config.Superuser, "--data-checksums", "--encoding=UTF8", "--locale=C",
		"--auth-local=trust", "--auth-host=scram-sha-256"}
	if opts.SuperuserPassword != "" {
		// initdb reads the password from a file the server account can read;
		// it lives only for the duration of initdb.
		dir, err := privateTempDir()
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		pw := filepath.Join(dir, "pw")
		if err := pgbin.WriteFile(pw, []byte(opts.SuperuserPassword+"\n")); err != nil {
			return err
		}
		args = append(args, "--pwfile="+pw)
	}
	cmd, err := pgbin.Command(ctx, "initdb", args...)
	if err != nil {
		return err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	return nil
}

// privateTempDir is a directory only the server account can read.
func privateTempDir() (string, error) {
	dir, err := os.MkdirTemp("", "homeostat-instance-")
	if err != nil {
		return "", err
	}
	return dir, pgbin.PrepareDir(dir, 0o700)
}

// withTemporaryServer starts postgres reachable only on a private unix
// socket (no network, no archiving), runs f and stops it again.
func withTemporaryServer(ctx context.Context, pgdata string, c Config, f func(*sql.DB) error) (err error) {
	sock, err := privateTempDir()
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(sock) }()
	port := strconv.Itoa(c.Port)
	start, err := pgbin.Command(ctx, "pg_ctl", "-D", pgdata, "-w", "-t", "120", "-l", filepath.Join(sock, "log"),
		"-o", "-c listen_addresses= -c archive_mode=off -p "+port+" -c unix_socket_directories="+sock, "start")
	if err != nil {
		return err
	}
	if out, err := start.CombinedOutput(); err != nil {
		logText, _ := os.ReadFile(filepath.Join(sock, "log"))
		return fmt.Errorf("start temporary server: %w: %s %s", err, out, logText)
	}
	defer func() {
		stop, serr := pgbin.Command(context.WithoutCancel(ctx), "pg_ctl", "-D", pgdata, "-w", "-t", "120", "-m", "fast", "stop")
		if serr == nil {
			if out, serr2 := stop.CombinedOutput(); serr2 != nil {
				serr = fmt.Errorf("stop temporary server: %w: %s", serr2, out)
			}
		}
		err = errors.Join(err, serr)
	}()
	db, err := sql.Open("postgres", fmt.Sprintf("host=%s port=%s user=%s dbname=postgres sslmode=disable", sock, port, c.Superuser))
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	return f(db)
}

// createRoles creates the replication and application roles and the
// application database. Passwords are sent as scram verifiers, never in clear.
func createRoles(ctx context.Context, db *sql.DB, opts InitOptions) error {
	password := func(pw string) (string, error) {
		if pw == "" {
			return "PASSWORD NULL", nil
		}
		v, err := ScramVerifier(pw)
		return "PASSWORD " + pq.QuoteLiteral(v), err
	}
	repl, err := password(opts.ReplicationPassword)
	if err != nil {
		return err
	}
	owner, err := password(opts.OwnerPassword)
	if err != nil {
		return err
	}
	stmts := []string{
		"CREATE ROLE " + pq.QuoteIdentifier(opts.Config.ReplicationUser) + " WITH LOGIN REPLICATION " + repl,
	}
	if opts.Owner != "" {
		stmts = append(stmts, "CREATE ROLE "+pq.QuoteIdentifier(opts.Owner)+" WITH LOGIN "+owner)
	}
	if opts.Database != "" {
		own := opts.Owner
		if own == "" {
			own = opts.Config.Superuser
		}
		stmts = append(stmts, "CREATE DATABASE "+pq.QuoteIdentifier(opts.Database)+" OWNER "+pq.QuoteIdentifier(own))
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			// The statement carries a verifier, not a password, but keep it
			// out of errors all the same: name the first words only.
			return fmt.Errorf("%s: %w", firstWords(s, 3), err)
		}
	}
	return nil
}

func firstWords(s string, n int) string {
	words := 0
	for i, c := range s {
		if c == ' ' {
			words++
			if words == n {
				return s[:i]
			}
		}
	}
	return s
}
