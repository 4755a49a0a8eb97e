package backup_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/internal/pgtest"
)

// A base backup taken while rows are being written, then a restore to a point
// in time between two known writes: the restored server has every row written
// before the target and not the row written after it. The same backup then
// passes `homeostat backup verify`.
func TestPushWhileWritingThenPointInTimeRestore(t *testing.T) {
	ctx := context.Background()
	srv, store := archivingServer(t, minio, "pitr")
	db := openDB(t, srv)
	exec1(t, db, "CREATE TABLE load (i int PRIMARY KEY, pad text)")
	exec1(t, db, "CREATE TABLE marks (v text)")

	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.Exec("INSERT INTO load VALUES ($1, repeat('x', 500))", i); err != nil {
				t.Errorf("concurrent insert %d: %v", i, err)
				return
			}
			written.Store(int64(i))
		}
	}()
	waitFor(t, 30*time.Second, "writes before the backup", func() bool { return written.Load() > 100 })
	// Small parts: several upload at once and must still restore in order.
	m, err := backup.Push(ctx, store, backup.PushOptions{Host: srv.SocketDir, Port: srv.Port, User: pgtest.Superuser, PartSize: 128 << 10, Label: "pitr/nightly"})
	if err != nil {
		t.Fatal(err)
	}
	during := written.Load()
	waitFor(t, 30*time.Second, "writes after the backup", func() bool { return written.Load() > during+100 })
	close(stop)
	wg.Wait()
	if m.StartLSN == "" || m.StopLSN == "" || m.Timeline != 1 || m.PGVersion == "" || len(m.Parts) < 5 || m.Parts[0].SHA256 == "" {
		t.Fatalf("incomplete manifest: %+v", m)
	}
	if listed, _, err := backup.List(ctx, store); err != nil || len(listed) != 1 || listed[0].Label != "pitr/nightly" {
		t.Fatalf("the stored manifest must carry the label: %+v (%v)", listed, err)
	}

	exec1(t, db, "INSERT INTO marks VALUES ('before')")
	var target time.Time
	if err := db.QueryRow("SELECT clock_timestamp()").Scan(&target); err != nil {
		t.Fatal(err)
	}
	exec1(t, db, "INSERT INTO marks VALUES ('after')")
	switchAndArchive(t, db, store)

	to := scratchDir(t)
	out := runHomeostat(t, minio, "pitr", "backup", "restore", "--to", to, "--target-time", target.Format(time.RFC3339Nano))
	var restored backup.Manifest
	if err := json.Unmarshal([]byte(out), &restored); err != nil || restored.ID != m.ID {
		t.Fatalf("restore printed %q (%v), want backup %s", out, err, m.ID)
	}
	r, err := pgtest.Start(to, pgtest.Options{Settings: map[string]string{"archive_mode": "off"}, Env: minio.Env()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Stop() }()
	if err := r.WaitPromoted(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	rdb, err := r.DB("postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rdb.Close() }()
	var marks []string
	rows, err := rdb.Query("SELECT v FROM marks ORDER BY v")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v string
		_ = rows.Scan(&v)
		marks = append(marks, v)
	}
	_ = rows.Close()
	if len(marks) != 1 || marks[0] != "before" {
		t.Fatalf("restored to %s: marks = %v, want exactly [before]\n%s", target, marks, r.Log())
	}
	var n, max int64
	if err := rdb.QueryRow("SELECT count(*), coalesce(max(i), 0) FROM load").Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != written.Load() || max != written.Load() {
		t.Fatalf("restored %d rows (max %d) of the table written during the backup, want %d", n, max, written.Load())
	}

	out = runHomeostat(t, minio, "pitr", "backup", "verify", m.ID)
	var rep backup.VerifyReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("verify printed %q: %v", out, err)
	}
	if !rep.OK || rep.Backup != m.ID || len(rep.Databases) < 2 || rep.Relations == 0 || rep.Timeline != 2 {
		t.Fatalf("verify report: %+v", rep)
	}
}

// A server that does not archive WAL cannot produce a restorable backup:
// push refuses and leaves nothing behind.
func TestPushRefusesServerWithoutArchiving(t *testing.T) {
	ctx := context.Background()
	srv, err := pgtest.New(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	store, err := minio.Open(ctx, "backups", "noarchive")
	if err != nil {
		t.Fatal(err)
	}
	_, err = backup.Push(ctx, store, backup.PushOptions{Host: srv.SocketDir, Port: srv.Port, User: pgtest.Superuser})
	if err == nil || !strings.Contains(err.Error(), "does not archive WAL") {
		t.Fatalf("push from a server without archiving: %v", err)
	}
	if objs, _ := store.List(ctx, "basebackups/"); len(objs) != 0 {
		t.Fatalf("a refused push left %d objects", len(objs))
	}
}
