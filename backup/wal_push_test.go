package backup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/internal/pgtest"
)

func TestWALPushIsIdempotentAndRefusesDifferentContent(t *testing.T) {
	ctx := context.Background()
	store, err := minio.Open(ctx, "backups", "walpush")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	seg := filepath.Join(dir, "000000010000000000000007")
	content := make([]byte, 1<<20)
	_, _ = rand.Read(content)
	if err := os.WriteFile(seg, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := backup.WALPush(ctx, store, seg); err != nil {
		t.Fatalf("first push: %v", err)
	}
	if err := backup.WALPush(ctx, store, seg); err != nil {
		t.Fatalf("same content again must succeed (PostgreSQL retries after a crash): %v", err)
	}
	content[0] ^= 0xff
	if err := os.WriteFile(seg, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := backup.WALPush(ctx, store, seg); !errors.Is(err, backup.ErrConflict) {
		t.Fatalf("different content: got %v, want ErrConflict", err)
	}
	content[0] ^= 0xff

	dest := filepath.Join(dir, "RECOVERYXLOG")
	if err := backup.WALFetch(ctx, store, "000000010000000000000007", dest); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dest)
	if !bytes.Equal(got, content) {
		t.Fatal("fetched segment differs from the pushed one")
	}
	if err := backup.WALFetch(ctx, store, "000000010000000000000008", dest+"2"); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("missing segment: got %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(dest + "2"); !os.IsNotExist(err) {
		t.Fatal("a failed fetch left a file behind")
	}
	if err := backup.WALPush(ctx, store, filepath.Join(dir, "../../etc/passwd")); err == nil {
		t.Fatal("a file that is not WAL was archived")
	}
}

// The commands PostgreSQL runs must exit non-zero on every failure, and the
// log must tell "not archived" from "store unreachable" without the secret.
func TestWALCommandsExitCodesAndMessages(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "x")
	cmd := homeostatCmd(minio, "walcmd", "backup", "wal-fetch", "000000010000000000000001", dest)
	out, err := cmd.CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "not in the archive") {
		t.Fatalf("wal-fetch of a missing segment: exit %d, output %s", code, out)
	}

	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	down := minio.Config("backups", "walcmd")
	down.Endpoint = "127.0.0.1:" + strconv.Itoa(port)
	for _, args := range [][]string{
		{"backup", "wal-fetch", "000000010000000000000001", dest},
		{"backup", "wal-push", filepath.Join(t.TempDir(), "000000010000000000000001")},
	} {
		c := exec.Command(homeostat, append(args[:2:2], append(down.Args(), args[2:]...)...)...)
		c.Env = append(os.Environ(), minio.Env()...)
		out, err := c.CombinedOutput()
		if code := exitCode(err); code != 1 {
			t.Fatalf("%v with the store down: exit %d, want 1: %s", args[:2], code, out)
		}
		if args[1] == "wal-fetch" && !strings.Contains(string(out), "unreachable") {
			t.Errorf("wal-fetch with the store down does not say so: %s", out)
		}
		if strings.Contains(string(out), minio.SecretKey) {
			t.Errorf("%v printed the secret key: %s", args[:2], out)
		}
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
