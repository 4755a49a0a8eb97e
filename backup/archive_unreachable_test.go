package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"homeostat.dev/homeostat/internal/s3test"
)

// While the store is down, archive_command fails, PostgreSQL keeps the
// segment (its .ready marker stays), and once the store is back on the same
// address the segment is archived: no WAL is lost.
func TestWALIsKeptWhileStoreUnreachable(t *testing.T) {
	s3, err := s3test.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s3.Stop() }()
	srv, store := archivingServer(t, s3, "down")
	db := openDB(t, srv)
	exec1(t, db, "CREATE TABLE t (v int)")
	switchAndArchive(t, db, store)

	if err := s3.Pause(); err != nil {
		t.Fatal(err)
	}
	exec1(t, db, "INSERT INTO t VALUES (1)")
	var name string
	if err := db.QueryRow("SELECT pg_walfile_name(pg_switch_wal())").Scan(&name); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(srv.DataDir, "pg_wal", "archive_status", name+".ready")
	waitFor(t, 60*time.Second, "a failed archive attempt", func() bool {
		var failed int
		_ = db.QueryRow("SELECT failed_count FROM pg_stat_archiver").Scan(&failed)
		return failed > 0
	})
	if _, err := os.Stat(ready); err != nil {
		t.Fatalf("segment %s is not waiting for archiving after a failure: %v", name, err)
	}
	if _, err := os.Stat(filepath.Join(srv.DataDir, "pg_wal", name)); err != nil {
		t.Fatalf("postgres removed unarchived segment %s: %v", name, err)
	}

	if err := s3.Resume(); err != nil {
		t.Fatal(err)
	}
	// The archiver waits up to a minute after failures; a new segment wakes it.
	exec1(t, db, "INSERT INTO t VALUES (2)")
	_ = db.QueryRow("SELECT pg_switch_wal()").Scan(new(string))
	waitFor(t, 90*time.Second, "segment "+name+" archived after the store came back", func() bool {
		_, err := store.Stat(context.Background(), "wal/"+name+".zst")
		return err == nil
	})
	waitFor(t, 30*time.Second, name+".done", func() bool {
		_, err := os.Stat(filepath.Join(srv.DataDir, "pg_wal", "archive_status", name+".done"))
		return err == nil
	})
}
