package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/lib/pq" // the "postgres" database/sql driver

	"homeostat.dev/homeostat/backup/pgbin"
)

// VerifyOptions configures Verify.
type VerifyOptions struct {
	BackupID string
	// RestoreCommand fetches archived WAL (see RestoreCommand).
	RestoreCommand string
	// User is a role of the backed-up cluster to connect as ("postgres" by default).
	User string
	// ScratchDir is where the scratch directory is made (os.TempDir() by default).
	ScratchDir string
	// Timeout bounds the recovery (10 minutes by default).
	Timeout time.Duration
	Log     *slog.Logger
}

// VerifyReport is the result of Verify, printed as JSON by `backup verify`.
type VerifyReport struct {
	Backup          string   `json:"backup"`
	OK              bool     `json:"ok"`
	Error           string   `json:"error,omitempty"`
	PGVersion       string   `json:"pgVersion,omitempty"`
	StopLSN         string   `json:"stopLSN,omitempty"`
	RecoveredLSN    string   `json:"recoveredLSN,omitempty"`
	Timeline        int      `json:"timeline,omitempty"`
	Databases       []string `json:"databases,omitempty"`
	Relations       int      `json:"relations,omitempty"`
	RestoreSeconds  float64  `json:"restoreSeconds"`
	RecoverySeconds float64  `json:"recoverySeconds"`
}

// Verify proves a backup can be restored: it restores it into a scratch
// directory, recovers it to its consistency point (recovery_target
// 'immediate'), starts it on a private unix socket with archiving off (so the
// scratch copy never writes to the store), checks that it left recovery and
// that every database answers a catalog query, and removes everything again.
// The report says what was found; err is set whenever OK is false.
func Verify(ctx context.Context, s Store, opts VerifyOptions) (rep VerifyReport, err error) {
	rep.Backup = opts.BackupID
	defer func() {
		rep.OK = err == nil
		if err != nil {
			rep.Error = err.Error()
		}
	}()
	if opts.User == "" {
		opts.User = "postgres"
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	scratch, err := os.MkdirTemp(opts.ScratchDir, "homeostat-verify-")
	if err != nil {
		return rep, fmt.Errorf("verify: scratch directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(scratch) }()
	if err := os.Chmod(scratch, 0o755); err != nil {
		return rep, err
	}
	data := filepath.Join(scratch, "data")
	start := time.Now()
	m, err := Restore(ctx, s, RestoreOptions{To: data, BackupID: opts.BackupID, Target: Target{Immediate: true},
		RestoreCommand: opts.RestoreCommand, Log: opts.Log})
	if err != nil {
		return rep, err
	}
	rep.Backup, rep.PGVersion, rep.StopLSN = m.ID, m.PGVersion, m.StopLSN
	rep.RestoreSeconds = time.Since(start).Seconds()
	hba := filepath.Join(scratch, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte("local all all trust\n"), 0o644); err != nil {
		return rep, err
	}
	if err := pgbin.Chown(scratch); err != nil {
		return rep, err
	}
	start = time.Now()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	srv, err := startScratch(ctx, scratch, data, hba)
	if err != nil {
		return rep, err
	}
	defer srv.stop()
	db, err := srv.waitPromoted(ctx, opts.User)
	if err != nil {
		return rep, err
	}
	defer func() { _ = db.Close() }()
	rep.RecoverySeconds = time.Since(start).Seconds()
	return rep, checkConsistent(ctx, srv, opts.User, db, &rep)
}

// scratchServer is the postgres process Verify runs on the restored copy.
type scratchServer struct {
	cmd    *exec.Cmd
	socket string
	log    string
	// exited is closed when postgres ended; err is then its Wait error.
	exited chan struct{}
	err    error
}

const scratchPort = 5432 // only a unix socket in a private directory: no clash

func startScratch(ctx context.Context, scratch, data, hba string) (*scratchServer, error) {
	logPath := filepath.Join(scratch, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	cmd, err := pgbin.Command(context.WithoutCancel(ctx), "postgres", "-D", data, "-p", strconv.Itoa(scratchPort),
		"-c", "listen_addresses=", "-c", "unix_socket_directories="+scratch, "-c", "hba_file="+hba,
		"-c", "archive_mode=off", "-c", "synchronous_standby_names=", "-c", "primary_conninfo=",
		// ssl off: the source instance's certificate files (beside its
		// data directory) are not here, and only the socket is used.
		"-c", "logging_collector=off", "-c", "ssl=off")
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("verify: start postgres: %w", err)
	}
	s := &scratchServer{cmd: cmd, socket: scratch, log: logPath, exited: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	return s, nil
}

func (s *scratchServer) dsn(user, db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable connect_timeout=5", s.socket, scratchPort, user, db)
}

// logTail is the end of the server log, for errors.
func (s *scratchServer) logTail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// waitPromoted waits until recovery finished and the server accepts writes.
func (s *scratchServer) waitPromoted(ctx context.Context, user string) (*sql.DB, error) {
	db, err := sql.Open("postgres", s.dsn(user, "postgres"))
	if err != nil {
		return nil, err
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		var inRecovery bool
		if last = db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); last == nil && !inRecovery {
			return db, nil
		}
		select {
		case <-s.exited:
			_ = db.Close()
			return nil, fmt.Errorf("verify: postgres exited during recovery (%w): %s", s.err, s.logTail())
		case <-ctx.Done():
			_ = db.Close()
			return nil, fmt.Errorf("verify: recovery did not finish: %w (last: %w): %s", ctx.Err(), last, s.logTail())
		case <-tick.C:
		}
	}
}

func checkConsistent(ctx context.Context, s *scratchServer, user string, db *sql.DB, rep *VerifyReport) error {
	var walfile string
	if err := db.QueryRowContext(ctx, "SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())").Scan(&rep.RecoveredLSN, &walfile); err != nil {
		return fmt.Errorf("verify: read lsn: %w", err)
	}
	tli, _ := strconv.ParseInt(walfile[:8], 16, 32)
	rep.Timeline = int(tli)
	rows, err := db.QueryContext(ctx, "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1")
	if err != nil {
		return fmt.Errorf("verify: list databases: %w", err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			_ = rows.Close()
			return err
		}
		rep.Databases = append(rep.Databases, name)
	}
	_ = rows.Close()
	if len(rep.Databases) == 0 {
		return errors.New("verify: no database accepts connections")
	}
	for _, name := range rep.Databases {
		n, err := countRelations(ctx, s.dsn(user, name))
		if err != nil {
			return fmt.Errorf("verify: database %s: %w", name, err)
		}
		rep.Relations += n
	}
	return nil
}

// countRelations reads every table's catalog entry and the size of each
// relation file, which fails when a file the catalog names is missing.
func countRelations(ctx context.Context, dsn string) (int, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return 0, err
	}
	defer func() { _ = db.Close() }()
	var n int
	err = db.QueryRowContext(ctx, `SELECT count(pg_relation_size(c.oid)) FROM pg_class c WHERE c.relkind IN ('r','i','m','t','S')`).Scan(&n)
	return n, err
}

func (s *scratchServer) stop() {
	// SIGINT is PostgreSQL's fast shutdown.
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}
