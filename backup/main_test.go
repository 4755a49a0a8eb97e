package backup_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/internal/pgtest"
	"homeostat.dev/homeostat/internal/s3test"
)

// The package's tests share one MinIO and one homeostat binary; each test
// uses its own bucket prefix and its own PostgreSQL server.
var (
	minio     *s3test.Server
	homeostat string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	if minio, err = s3test.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "backup tests:", err)
		return 1
	}
	defer func() { _ = minio.Stop() }()
	binDir, err := os.MkdirTemp("", "homeostat-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(binDir) }()
	if homeostat, err = pgtest.BuildHomeostat(binDir); err != nil {
		fmt.Fprintln(os.Stderr, "backup tests:", err)
		return 1
	}
	code := m.Run()
	// The benchmarks' shared server lives as long as the test binary.
	if bench.srv != nil {
		_ = bench.srv.Close()
	}
	if bench.script != "" {
		_ = os.RemoveAll(filepath.Dir(bench.script))
	}
	return code
}

// archivingServer starts a PostgreSQL server whose archive_command pushes WAL
// to prefix in the shared MinIO with the real homeostat binary.
func archivingServer(t *testing.T, s3 *s3test.Server, prefix string) (*pgtest.Server, *backup.S3) {
	t.Helper()
	store, err := s3.Open(context.Background(), "backups", prefix)
	if err != nil {
		t.Fatal(err)
	}
	cfg := store.Config()
	srv, err := pgtest.New(pgtest.Options{
		Settings: map[string]string{
			"archive_mode":    "on",
			"archive_command": backup.ArchiveCommand(homeostat, cfg),
		},
		Env: s3.Env(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv, store
}

func openDB(t *testing.T, srv *pgtest.Server) *sql.DB {
	t.Helper()
	db, err := srv.DB("postgres")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func exec1(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// switchAndArchive ends the current WAL segment and waits until it is in the
// store: everything committed before is then restorable.
func switchAndArchive(t *testing.T, db *sql.DB, store backup.Store) string {
	t.Helper()
	var name string
	if err := db.QueryRow("SELECT pg_walfile_name(pg_switch_wal())").Scan(&name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "wal "+name+" archived", func() bool {
		_, err := store.Stat(context.Background(), "wal/"+name+".zst")
		return err == nil
	})
	return name
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// homeostatCmd runs the real binary against the shared MinIO.
func homeostatCmd(s3 *s3test.Server, prefix string, args ...string) *exec.Cmd {
	cfg := s3.Config("backups", prefix)
	full := append(append([]string{}, args[:2]...), cfg.Args()...)
	full = append(full, args[2:]...)
	cmd := exec.Command(homeostat, full...)
	cmd.Env = append(os.Environ(), s3.Env()...)
	return cmd
}

func runHomeostat(t *testing.T, s3 *s3test.Server, prefix string, args ...string) string {
	t.Helper()
	cmd := homeostatCmd(s3, prefix, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("homeostat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func scratchDir(t *testing.T) string {
	t.Helper()
	dir, err := pgtest.TempDir("homeostat-restore-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "data")
}
