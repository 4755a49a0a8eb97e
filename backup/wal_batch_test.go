package backup_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"homeostat.dev/homeostat/backup"
)

// countingStore is the real store, counting the requests that reach it.
type countingStore struct {
	backup.Store
	calls atomic.Int64
}

func (c *countingStore) Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	c.calls.Add(1)
	return c.Store.Put(ctx, key, r, size, meta)
}

func (c *countingStore) Stat(ctx context.Context, key string) (backup.Object, error) {
	c.calls.Add(1)
	return c.Store.Stat(ctx, key)
}

// fakeWALDir makes a pg_wal with n segments of 1 MiB random content, each
// marked ready the way PostgreSQL marks them.
func fakeWALDir(t *testing.T, n int) (string, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pg_wal")
	if err := os.MkdirAll(filepath.Join(dir, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i := range n {
		name := "0000000100000000000000" + string("0123456789ABCDEF"[i/16]) + string("0123456789ABCDEF"[i%16])
		data := make([]byte, 1<<20)
		_, _ = rand.Read(data)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "archive_status", name+".ready"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return dir, paths
}

// markDone does what PostgreSQL does after archive_command succeeded.
func markDone(t *testing.T, p string) {
	t.Helper()
	status := filepath.Join(filepath.Dir(p), "archive_status", filepath.Base(p))
	if err := os.Rename(status+".ready", status+".done"); err != nil {
		t.Fatal(err)
	}
}

// One wal-push uploads the ready segments behind the one it was given; the
// calls for those then return without a request to the store, and what they
// report archived is in the store with the right content.
func TestWALPushBatchArchivesReadySegmentsAhead(t *testing.T) {
	ctx := context.Background()
	real, err := minio.Open(ctx, "backups", "walbatch")
	if err != nil {
		t.Fatal(err)
	}
	store := &countingStore{Store: real}
	opts := backup.BatchOptions{Batch: 4, Parallel: 3, StoreID: real.Config().String()}
	_, paths := fakeWALDir(t, 7)

	if err := backup.WALPushBatch(ctx, store, paths[0], opts); err != nil {
		t.Fatal(err)
	}
	markDone(t, paths[0])
	for i, p := range paths[1:5] {
		before := store.calls.Load()
		if err := backup.WALPushBatch(ctx, store, p, opts); err != nil {
			t.Fatalf("segment %d: %v", i+1, err)
		}
		if n := store.calls.Load() - before; n != 0 && i < 4 {
			t.Fatalf("segment %d was archived ahead, yet its own call made %d requests", i+1, n)
		}
		markDone(t, p)
	}
	// The next call pushes its own file (not recorded) plus the last one.
	before := store.calls.Load()
	if err := backup.WALPushBatch(ctx, store, paths[5], opts); err != nil {
		t.Fatal(err)
	}
	if store.calls.Load() == before {
		t.Fatal("a segment that was not archived ahead made no request")
	}
	for _, p := range paths[:7] {
		want, _ := os.ReadFile(p)
		dest := filepath.Join(t.TempDir(), "seg")
		if err := backup.WALFetch(ctx, real, filepath.Base(p), dest); err != nil {
			t.Fatalf("%s reported archived but: %v", filepath.Base(p), err)
		}
		if got, _ := os.ReadFile(dest); string(got) != string(want) {
			t.Fatalf("%s archived with different content", filepath.Base(p))
		}
	}
	if recs, _ := os.ReadDir(filepath.Join(filepath.Dir(paths[0]), ".homeostat-archived")); len(recs) != 1 {
		t.Fatalf("records left: %d, want 1 (the last segment, still waiting for its call)", len(recs))
	}
}

// A record is trusted only for the same file content and the same store, and
// a file the store refuses is never recorded.
func TestWALPushBatchNeverReportsWhatIsNotArchived(t *testing.T) {
	ctx := context.Background()
	store, err := minio.Open(ctx, "backups", "walbatch-safe")
	if err != nil {
		t.Fatal(err)
	}
	opts := backup.BatchOptions{Batch: 8, Parallel: 2, StoreID: store.Config().String()}
	walDir, paths := fakeWALDir(t, 4)
	records := filepath.Join(walDir, ".homeostat-archived")

	// Segment 2 is already archived with other content (a split brain).
	other := filepath.Join(t.TempDir(), filepath.Base(paths[2]))
	if err := os.WriteFile(other, []byte("not the same segment"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := backup.WALPush(ctx, store, other); err != nil {
		t.Fatal(err)
	}
	if err := backup.WALPushBatch(ctx, store, paths[0], opts); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(records, filepath.Base(paths[2]))); err == nil {
		t.Fatal("a segment the store holds with other content was recorded as archived")
	}
	if err := backup.WALPushBatch(ctx, store, paths[2], opts); !errors.Is(err, backup.ErrConflict) {
		t.Fatalf("pushing the conflicting segment: got %v, want ErrConflict", err)
	}

	// Segment 1 changes after it was archived ahead: its call must not
	// report the new content archived.
	if err := os.WriteFile(paths[1], []byte("rewritten"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := backup.WALPushBatch(ctx, store, paths[1], opts); !errors.Is(err, backup.ErrConflict) {
		t.Fatalf("a changed file after its record: got %v, want ErrConflict", err)
	}

	// A record made for another store does not answer for this one.
	elsewhere, err := minio.Open(ctx, "backups", "walbatch-other")
	if err != nil {
		t.Fatal(err)
	}
	if err := backup.WALPushBatch(ctx, elsewhere, paths[3], backup.BatchOptions{Batch: 1, StoreID: elsewhere.Config().String()}); err != nil {
		t.Fatal(err)
	}
	if _, err := elsewhere.Stat(ctx, "wal/"+filepath.Base(paths[3])+".zst"); err != nil {
		t.Fatalf("a record for another store answered for this one: %v", err)
	}
}
