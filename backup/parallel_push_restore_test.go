package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/internal/pgtest"
)

// A push on four workers with small parts restores on three, byte for byte
// the same data; a backup in the older single-stream layout restores to the
// same files; a part changed in the store fails the restore by name and
// leaves no directory.
func TestParallelPushAndRestore(t *testing.T) {
	ctx := context.Background()
	srv, store := archivingServer(t, minio, "parallel")
	db := openDB(t, srv)
	exec1(t, db, "CREATE TABLE big AS SELECT i, md5(i::text) || md5(random()::text) AS pad FROM generate_series(1, 200000) i")
	var want string
	sumQuery := "SELECT md5(string_agg(pad, ',' ORDER BY i)) FROM big"
	if err := db.QueryRow(sumQuery).Scan(&want); err != nil {
		t.Fatal(err)
	}
	m, err := backup.Push(ctx, store, backup.PushOptions{Host: srv.SocketDir, Port: srv.Port, User: pgtest.Superuser,
		PartSize: 1 << 20, CompressLevel: 1, Parallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	var raw int64
	for i, p := range m.Parts {
		raw += p.RawSize
		if want := fmt.Sprintf("part-%05d.tar.zst", i); !strings.HasSuffix(p.Key, want) {
			t.Fatalf("part %d is %s, want stream order", i, p.Key)
		}
	}
	if !m.FramedParts || m.CompressLevel != 1 || len(m.Parts) < 20 || raw != m.Size {
		t.Fatalf("manifest: framed %v level %d, %d parts of %d raw bytes for a %d-byte tar", m.FramedParts, m.CompressLevel, len(m.Parts), raw, m.Size)
	}
	exec1(t, db, "INSERT INTO big VALUES (0, 'after the backup')")
	switchAndArchive(t, db, store)

	to := scratchDir(t)
	if _, err := backup.Restore(ctx, store, backup.RestoreOptions{To: to, BackupID: m.ID, Target: backup.Target{Immediate: true},
		Parallel: 3, RestoreCommand: backup.RestoreCommand(homeostat, store.Config())}); err != nil {
		t.Fatal(err)
	}
	old := writeUnframedCopy(t, store, m)
	oldTo := scratchDir(t)
	if _, err := backup.Restore(ctx, store, backup.RestoreOptions{To: oldTo, BackupID: old.ID, RestoreCommand: "false"}); err != nil {
		t.Fatalf("restore of a single-stream backup: %v", err)
	}
	if a, b := treeSums(t, to), treeSums(t, oldTo); a != b {
		t.Fatal("the single-stream copy of the backup restores to different files")
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
	var got string
	if err := rdb.QueryRow(sumQuery).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("restored table differs: md5 %s, want %s", got, want)
	}

	// The same size, other bytes: only the sha256 can tell.
	victim := m.Parts[len(m.Parts)/2]
	junk := bytes.Repeat([]byte{0x5a}, int(victim.Size))
	if err := store.Put(ctx, victim.Key, bytes.NewReader(junk), int64(len(junk)), nil); err != nil {
		t.Fatal(err)
	}
	bad := scratchDir(t)
	_, err = backup.Restore(ctx, store, backup.RestoreOptions{To: bad, BackupID: m.ID, Parallel: 3, RestoreCommand: "false"})
	if err == nil || !strings.Contains(err.Error(), victim.Key) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("restore with a changed part: got %v, want an error naming %s and its sha256", err, victim.Key)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatal("a failed restore left its directory")
	}
}

func TestPushRefusesBadCompressLevel(t *testing.T) {
	for _, level := range []int{-1, 23} {
		_, err := backup.Push(context.Background(), nil, backup.PushOptions{CompressLevel: level})
		if err == nil || !strings.Contains(err.Error(), "compress level") {
			t.Errorf("level %d: got %v", level, err)
		}
	}
}

// writeUnframedCopy stores backup m again the way pushes before parallel
// compression did: one zstd stream cut into three parts at byte boundaries.
func writeUnframedCopy(t *testing.T, store backup.Store, m *backup.Manifest) *backup.Manifest {
	t.Helper()
	ctx := context.Background()
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	var tarball []byte
	for _, p := range m.Parts {
		r, err := store.Get(ctx, p.Key)
		if err != nil {
			t.Fatal(err)
		}
		z, _ := io.ReadAll(r)
		_ = r.Close()
		if tarball, err = dec.DecodeAll(z, tarball); err != nil {
			t.Fatal(err)
		}
	}
	enc, _ := zstd.NewWriter(nil)
	stream := enc.EncodeAll(tarball, nil)
	old := *m
	old.ID, old.FramedParts, old.CompressLevel, old.Parts = m.ID+"-old", false, 0, nil
	third := len(stream)/3 + 1
	for i := 0; i*third < len(stream); i++ {
		chunk := stream[i*third : min((i+1)*third, len(stream))]
		key := fmt.Sprintf("basebackups/%s/part-%05d.tar.zst", old.ID, i)
		if err := store.Put(ctx, key, bytes.NewReader(chunk), int64(len(chunk)), nil); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(chunk)
		old.Parts = append(old.Parts, backup.Part{Key: key, Size: int64(len(chunk)), SHA256: hex.EncodeToString(sum[:])})
	}
	data, _ := json.Marshal(old)
	if err := store.Put(ctx, "basebackups/"+old.ID+"/manifest.json", bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
	return &old
}

// treeSums hashes every regular file's path and content under dir, leaving
// out the recovery settings a restore appends.
func treeSums(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || d.Name() == "postgresql.auto.conf" {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		_, _ = fmt.Fprintf(h, "%s %d %x\n", rel, len(data), sha256.Sum256(data))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
