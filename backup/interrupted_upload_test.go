package backup_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"homeostat.dev/homeostat/backup"
)

// A `backup push` killed while uploading leaves parts but no manifest: list
// ignores it, restore does not pick it, and retention later removes it.
func TestInterruptedUploadLeavesNoCompleteBackup(t *testing.T) {
	ctx := context.Background()
	srv, store := archivingServer(t, minio, "cut")
	db := openDB(t, srv)
	// About 40 MB that compresses poorly, sent at 4 MB/s: the upload is
	// certainly still running when the first 1 MiB part has arrived.
	exec1(t, db, "CREATE TABLE big AS SELECT i, md5(random()::text) || md5(random()::text) AS pad FROM generate_series(1, 400000) i")

	cmd := homeostatCmd(minio, "cut", "backup", "push", "--host", srv.SocketDir, "--port", strconv.Itoa(srv.Port),
		"--part-size", "1048576", "--max-rate", "4M")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the first part uploaded", func() bool {
		objs, err := store.List(ctx, "basebackups/")
		return err == nil && len(objs) > 0
	})
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()

	complete, incomplete, err := backup.List(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	if len(complete) != 0 || len(incomplete) != 1 {
		t.Fatalf("after a cut-off upload: complete %v, incomplete %v; want none and one\n%s", complete, incomplete, stderr.String())
	}
	if out := runHomeostat(t, minio, "cut", "backup", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("backup list shows the cut-off upload: %s", out)
	}
	_, err = backup.Restore(ctx, store, backup.RestoreOptions{To: scratchDir(t)})
	if !errors.Is(err, backup.ErrNoBackup) {
		t.Fatalf("restore from only a cut-off upload: got %v, want ErrNoBackup", err)
	}

	// A complete backup afterwards makes the leftover parts garbage.
	if _, err := backup.Push(ctx, store, backup.PushOptions{Host: srv.SocketDir, Port: srv.Port, User: "postgres"}); err != nil {
		t.Fatal(err)
	}
	plan, err := backup.Retain(ctx, store, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Backups) != 1 || plan.Backups[0] != incomplete[0] {
		t.Fatalf("retention deleted %v, want the cut-off upload %s", plan.Backups, incomplete[0])
	}
	if _, incomplete, _ = backup.List(ctx, store); len(incomplete) != 0 {
		t.Fatalf("leftover parts remain: %v", incomplete)
	}
}
