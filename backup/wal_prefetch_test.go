package backup_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/backup/pgbin"
	"homeostat.dev/homeostat/internal/pgtest"
)

// prefetchOptions prefetches in process and synchronously, so the test sees
// the spool exactly as the background prefetcher leaves it.
func prefetchOptions(store *backup.S3, spool string, n int) backup.FetchOptions {
	id := store.Config().String()
	return backup.FetchOptions{Prefetch: n, SpoolDir: spool, StoreID: id, Start: func(names []string) error {
		return backup.Prefetch(context.Background(), store, spool, id, names, 2)
	}}
}

// wal-fetch serves the segments after the first from the spool, and a
// spooled copy that is corrupt, missing, or from another store is fetched
// again from the archive: what lands in DEST is always the archived content.
func TestWALFetchPrefetchServesOnlyVerifiedSegments(t *testing.T) {
	ctx := context.Background()
	store, err := minio.Open(ctx, "backups", "prefetch")
	if err != nil {
		t.Fatal(err)
	}
	_, paths := fakeWALDir(t, 6)
	for _, p := range paths {
		if err := backup.WALPush(ctx, store, p); err != nil {
			t.Fatal(err)
		}
	}
	spool := filepath.Join(t.TempDir(), "spool")
	opts := prefetchOptions(store, spool, 4)
	fetch := func(i int) error {
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		if err := backup.WALFetchPrefetch(ctx, store, filepath.Base(paths[i]), dest, opts); err != nil {
			return err
		}
		want, _ := os.ReadFile(paths[i])
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, want) {
			t.Fatalf("segment %d: wal-fetch wrote content that is not the archived segment", i)
		}
		return nil
	}
	if err := fetch(0); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		if _, err := os.Stat(filepath.Join(spool, filepath.Base(paths[i]))); err != nil {
			t.Fatalf("segment %d was not prefetched: %v", i, err)
		}
	}
	spooled := func(i int) string { return filepath.Join(spool, filepath.Base(paths[i])) }
	// Segment 1 served from the spool; 2 corrupt on disk; 3 gone; 4 recorded
	// from another store.
	data, _ := os.ReadFile(spooled(2))
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(spooled(2), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(spooled(3)); err != nil {
		t.Fatal(err)
	}
	meta, _ := os.ReadFile(spooled(4) + ".meta")
	sum, _, _ := strings.Cut(string(meta), " ")
	if err := os.WriteFile(spooled(4)+".meta", []byte(sum+" http://elsewhere/bucket\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(paths); i++ {
		if err := fetch(i); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	if err := backup.WALFetchPrefetch(ctx, store, "000000010000000000000099", filepath.Join(t.TempDir(), "x"), opts); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("end of the archive: got %v, want ErrNotFound", err)
	}
}

// A segment whose archived copy does not match the sha256 recorded at push
// time is never written to DEST nor spooled, whichever path fetches it.
func TestWALFetchRefusesCorruptArchivedSegment(t *testing.T) {
	ctx := context.Background()
	store, err := minio.Open(ctx, "backups", "prefetch-corrupt")
	if err != nil {
		t.Fatal(err)
	}
	_, paths := fakeWALDir(t, 3)
	for _, p := range paths[:1] {
		if err := backup.WALPush(ctx, store, p); err != nil {
			t.Fatal(err)
		}
	}
	// Segments 1 and 2 are stored with a sha256 their content does not have.
	enc, _ := zstd.NewWriter(nil)
	for _, p := range paths[1:] {
		data, _ := os.ReadFile(p)
		data[100] ^= 0xff
		z := enc.EncodeAll(data, nil)
		if err := store.Put(ctx, "wal/"+filepath.Base(p)+".zst", bytes.NewReader(z), int64(len(z)),
			map[string]string{"sha256": strings.Repeat("ab", 32)}); err != nil {
			t.Fatal(err)
		}
	}
	spool := filepath.Join(t.TempDir(), "spool")
	opts := prefetchOptions(store, spool, 4)
	if err := backup.WALFetchPrefetch(ctx, store, filepath.Base(paths[0]), filepath.Join(t.TempDir(), "a"), opts); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(spool, filepath.Base(paths[1]))); err == nil {
		t.Fatal("a segment failing its checksum was spooled")
	}
	dest := filepath.Join(t.TempDir(), "b")
	err = backup.WALFetchPrefetch(ctx, store, filepath.Base(paths[1]), dest, opts)
	if !errors.Is(err, backup.ErrChecksum) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("corrupt archived segment: got %v, want a sha256 error", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatal("a corrupt segment was written to DEST")
	}
}

// Point-in-time recovery through the real restore_command (prefetching,
// batching archive_command on the source), with the spool already holding a
// corrupt copy of one segment and missing another: the restored server has
// every row, and the log says the corrupt copy was refused.
func TestRecoveryWithPrefetchRefusesCorruptSpooledSegment(t *testing.T) {
	ctx := context.Background()
	srv, store := archivingServer(t, minio, "prefetch-pitr")
	db := openDB(t, srv)
	exec1(t, db, "CREATE TABLE t (i int, pad text)")
	if _, err := backup.Push(ctx, store, backup.PushOptions{Host: srv.SocketDir, Port: srv.Port, User: pgtest.Superuser}); err != nil {
		t.Fatal(err)
	}
	// Eight segments of rows, each closed and archived.
	var segs []string
	for i := range 8 {
		exec1(t, db, "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series($1::int * 1000 + 1, $1::int * 1000 + 1000) g", i)
		segs = append(segs, switchAndArchive(t, db, store))
	}
	var want int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&want); err != nil {
		t.Fatal(err)
	}

	to := scratchDir(t)
	out := runHomeostat(t, minio, "prefetch-pitr", "backup", "restore", "--to", to, "--parallel", "3")
	if !strings.Contains(out, `"framedParts": true`) {
		t.Fatalf("restore printed %s", out)
	}
	spool := backup.DefaultSpoolDir(to)
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := backup.Prefetch(ctx, store, spool, store.Config().String(), segs, 2); err != nil {
		t.Fatal(err)
	}
	corrupt, missing := filepath.Join(spool, segs[3]), filepath.Join(spool, segs[5])
	data, err := os.ReadFile(corrupt)
	if err != nil {
		t.Fatal(err)
	}
	// A flipped byte in the middle of the segment: in a record PostgreSQL
	// would replay, or fail on, if it were served.
	data[len(data)/3] ^= 0x55
	if err := os.WriteFile(corrupt, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(missing); err != nil {
		t.Fatal(err)
	}
	if err := pgbin.Chown(spool); err != nil {
		t.Fatal(err)
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
	var got int
	if err := rdb.QueryRow("SELECT count(*) FROM t").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("restored %d rows, want %d\n%s", got, want, r.Log())
	}
	if !strings.Contains(r.Log(), "spooled "+segs[3]+" is corrupt") {
		t.Fatalf("the log does not say the corrupt spooled segment was refused:\n%s", r.Log())
	}
}
