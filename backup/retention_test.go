package backup_test

import (
	"context"
	"strings"
	"testing"

	"homeostat.dev/homeostat/backup"
)

// Keeping two of three backups deletes the oldest and the WAL only it needed;
// the oldest kept backup still verifies, so the WAL it needs stayed.
func TestRetentionKeepsNewestBackupsAndTheirWAL(t *testing.T) {
	ctx := context.Background()
	srv, store := archivingServer(t, minio, "keep")
	db := openDB(t, srv)
	exec1(t, db, "CREATE TABLE t (v int)")
	var ids []string
	for i := 0; i < 3; i++ {
		exec1(t, db, "INSERT INTO t VALUES ($1)", i)
		switchAndArchive(t, db, store)
		m, err := backup.Push(ctx, store, backup.PushOptions{Host: srv.SocketDir, Port: srv.Port, User: "postgres"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	kept, _ := backup.ReadManifest(ctx, store, ids[1])

	out := runHomeostat(t, minio, "keep", "backup", "delete", "--keep", "2")
	if !strings.Contains(out, ids[0]) {
		t.Fatalf("delete --keep 2 did not delete %s: %s", ids[0], out)
	}
	backups, _, err := backup.List(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	if len(backups) != 2 || backups[0].ID != ids[1] || backups[1].ID != ids[2] {
		t.Fatalf("backups after retention: %v, want %v", backups, ids[1:])
	}
	wal, err := store.List(ctx, "wal/")
	if err != nil {
		t.Fatal(err)
	}
	if len(wal) == 0 {
		t.Fatal("retention deleted all WAL")
	}
	for _, o := range wal {
		name := strings.TrimSuffix(strings.TrimPrefix(o.Key, "wal/"), ".zst")
		if !strings.HasSuffix(name, ".history") && name[8:24] < kept.StartWAL[8:24] {
			t.Errorf("%s is older than the oldest kept backup (starts at %s) but was kept", name, kept.StartWAL)
		}
	}
	if _, err := store.Stat(ctx, "wal/"+kept.StartWAL+".zst"); err != nil {
		t.Fatalf("the first segment of the oldest kept backup is gone: %v", err)
	}
	if out := runHomeostat(t, minio, "keep", "backup", "verify", ids[1]); !strings.Contains(out, `"ok": true`) {
		t.Fatalf("oldest kept backup does not verify: %s", out)
	}
}
