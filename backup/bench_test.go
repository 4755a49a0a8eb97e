package backup_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/backup/pgbin"
	"homeostat.dev/homeostat/internal/pgtest"
)

// The benchmarks share one server with about 1 GiB of pgbench data (scale 70),
// archiving to the shared MinIO. They run only with -bench; see BENCHMARKS.md.
var bench struct {
	once  sync.Once
	srv   *pgtest.Server
	store *backup.S3
	// script is the server's archive_command (`/bin/sh script %p`), which
	// the side-by-side WAL benchmark rewrites to switch archivers.
	script string
	err    error
}

// benchScale is the pgbench scale of the shared server: 70 is about 1 GiB.
// HOMEOSTAT_BENCH_SCALE lowers it for a quick trial run of the benchmarks.
var benchScale = envInt("HOMEOSTAT_BENCH_SCALE", 70)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func benchServer(b *testing.B) (*pgtest.Server, *backup.S3) {
	b.Helper()
	bench.once.Do(func() {
		ctx := context.Background()
		bench.store, bench.err = minio.Open(ctx, "bench", "pgbench")
		if bench.err != nil {
			return
		}
		dir, err := pgtest.TempDir("homeostat-bench-")
		if err != nil {
			bench.err = err
			return
		}
		bench.script = filepath.Join(dir, "archive.sh")
		cmd := strings.ReplaceAll(backup.ArchiveCommand(homeostat, bench.store.Config()), "%p", `"$1"`)
		if bench.err = os.WriteFile(bench.script, []byte("#!/bin/sh\n"+cmd+"\n"), 0o755); bench.err != nil {
			return
		}
		if bench.err = os.Chmod(dir, 0o755); bench.err != nil {
			return
		}
		// wal_recycle off: the WAL benchmark hard-links segments it keeps, and
		// a recycled segment would be overwritten under the link.
		bench.srv, bench.err = pgtest.New(pgtest.Options{
			Settings: map[string]string{
				"archive_mode":    "on",
				"archive_command": "/bin/sh " + bench.script + " %p",
				"max_wal_size":    "1GB",
				"wal_recycle":     "off",
			},
			Env: minio.Env(),
		})
		if bench.err != nil {
			return
		}
		pgbench, err := pgbin.Path("pgbench")
		if err != nil {
			bench.err = err
			return
		}
		init := exec.Command(pgbench, "-i", "-s", strconv.Itoa(benchScale), "-q", "-h", bench.srv.SocketDir, "-p", strconv.Itoa(bench.srv.Port), "-U", "postgres", "postgres")
		if out, err := init.CombinedOutput(); err != nil {
			bench.err = fmt.Errorf("pgbench -i: %w: %s", err, out)
			return
		}
		// Write out pgbench's dirty pages now, not in the first backup's checkpoint.
		if db, err := bench.srv.DB("postgres"); err == nil {
			_, bench.err = db.Exec("CHECKPOINT")
			_ = db.Close()
		}
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.srv, bench.store
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// BenchmarkBaseBackup compares `backup push` (pg_basebackup -Ft to stdout,
// zstd, parts to S3) with plain `pg_basebackup -Ft -D dir` to local disk on
// the same database. Each iteration runs both, alternating which goes first,
// so that both see the same machine load; the metrics are the throughput of
// each over the uncompressed tar, their ratio, and the compression ratio.
func BenchmarkBaseBackup(b *testing.B) {
	srv, store := benchServer(b)
	ctx := context.Background()
	bin, err := pgbin.Path("pg_basebackup")
	if err != nil {
		b.Fatal(err)
	}
	var pushTime, localTime time.Duration
	var size, compressed, localSize int64
	push := func() {
		start := time.Now()
		m, err := backup.Push(ctx, store, backup.PushOptions{Host: srv.SocketDir, Port: srv.Port, User: "postgres"})
		if err != nil {
			b.Fatal(err)
		}
		pushTime += time.Since(start)
		size += m.Size
		compressed += m.CompressedSize
		if err := backup.Delete(ctx, store, m.ID); err != nil {
			b.Fatal(err)
		}
	}
	local := func() {
		dir := filepath.Join(b.TempDir(), "base")
		start := time.Now()
		cmd := exec.Command(bin, "-Ft", "-X", "none", "--checkpoint=fast", "-D", dir, "-h", srv.SocketDir, "-p", strconv.Itoa(srv.Port), "-U", "postgres")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("pg_basebackup: %v: %s", err, out)
		}
		localTime += time.Since(start)
		localSize += dirSize(dir)
		_ = os.RemoveAll(dir)
	}
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			push()
			local()
		} else {
			local()
			push()
		}
	}
	pushRate := float64(size) / 1e6 / pushTime.Seconds()
	localRate := float64(localSize) / 1e6 / localTime.Seconds()
	b.ReportMetric(pushRate, "push-MB/s")
	b.ReportMetric(localRate, "pg_basebackup-MB/s")
	b.ReportMetric(pushRate/localRate, "throughput-ratio")
	b.ReportMetric(float64(size)/float64(compressed), "compression-ratio")
	b.ReportMetric(float64(size)/float64(b.N)/1e6, "tar-MB")
}

// BenchmarkRestoreFiles compares writing a data directory from the S3 backup
// (download, sha256, zstd, untar) with untarring a pg_basebackup -Ft copy
// from local disk, alternating like BenchmarkBaseBackup. WAL replay
// afterwards is the same for both and not included.
func BenchmarkRestoreFiles(b *testing.B) {
	srv, store := benchServer(b)
	ctx := context.Background()
	m, err := backup.Push(ctx, store, backup.PushOptions{Host: srv.SocketDir, Port: srv.Port, User: "postgres"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = backup.Delete(ctx, store, m.ID) })
	bin, _ := pgbin.Path("pg_basebackup")
	src := filepath.Join(b.TempDir(), "base")
	cmd := exec.Command(bin, "-Ft", "-X", "none", "--checkpoint=fast", "-D", src, "-h", srv.SocketDir, "-p", strconv.Itoa(srv.Port), "-U", "postgres")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("pg_basebackup: %v: %s", err, out)
	}
	var s3Time, tarTime time.Duration
	fromS3 := func() {
		to := filepath.Join(b.TempDir(), "data")
		start := time.Now()
		if _, err := backup.Restore(ctx, store, backup.RestoreOptions{To: to, BackupID: m.ID, RestoreCommand: "false"}); err != nil {
			b.Fatal(err)
		}
		s3Time += time.Since(start)
		_ = os.RemoveAll(to)
	}
	fromTar := func() {
		to := filepath.Join(b.TempDir(), "data")
		if err := os.MkdirAll(to, 0o700); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if out, err := exec.Command("tar", "-xf", filepath.Join(src, "base.tar"), "-C", to).CombinedOutput(); err != nil {
			b.Fatalf("tar: %v: %s", err, out)
		}
		tarTime += time.Since(start)
		_ = os.RemoveAll(to)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			fromS3()
			fromTar()
		} else {
			fromTar()
			fromS3()
		}
	}
	b.ReportMetric(s3Time.Seconds()/float64(b.N), "s3-restore-s")
	b.ReportMetric(tarTime.Seconds()/float64(b.N), "local-untar-s")
	b.ReportMetric(float64(m.Size)/1e6/(s3Time.Seconds()/float64(b.N)), "s3-restore-MB/s")
}

// BenchmarkWALPush is the latency of archiving one 16 MiB segment of real
// WAL: in process, and as archive_command runs it (a new process each time).
func BenchmarkWALPush(b *testing.B) {
	srv, store := benchServer(b)
	segs, err := filepath.Glob(filepath.Join(srv.DataDir, "pg_wal", "0000000100000000000000*"))
	if err != nil || len(segs) == 0 {
		b.Fatalf("no WAL segment in %s: %v", srv.DataDir, err)
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	seq := 0
	next := func() string {
		seq++
		p := filepath.Join(dir, fmt.Sprintf("00000009%016X", seq))
		if err := os.WriteFile(p, data, 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	ctx := context.Background()
	wal, err := minio.Open(ctx, "bench", "walpush")
	if err != nil {
		b.Fatal(err)
	}
	_ = store
	b.Run("in-process", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			p := next()
			b.StartTimer()
			if err := backup.WALPush(ctx, wal, p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("archive_command", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			p := next()
			cmd := homeostatCmd(minio, "walpush", "backup", "wal-push", p)
			b.StartTimer()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("wal-push: %v: %s", err, out)
			}
		}
	})
}

// BenchmarkWALFetchSequence is restore_command's side of recovery alone: the
// real binary run once per segment, in order, as PostgreSQL runs it (working
// directory the data directory, DEST pg_wal/RECOVERYXLOG), with prefetching
// and one segment at a time, over 48 archived 16 MiB segments of real WAL.
// Replay itself is not included: this is the most the fetch side can deliver.
func BenchmarkWALFetchSequence(b *testing.B) {
	srv, _ := benchServer(b)
	segs, err := filepath.Glob(filepath.Join(srv.DataDir, "pg_wal", "0000000*"))
	if err != nil || len(segs) == 0 {
		b.Fatalf("no WAL segment in %s: %v", srv.DataDir, err)
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	prefix := fmt.Sprintf("walfetch-%d", time.Now().UnixNano())
	store, err := minio.Open(ctx, "backups", prefix) // the bucket homeostatCmd names
	if err != nil {
		b.Fatal(err)
	}
	const n = 48
	src := b.TempDir()
	var names []string
	for i := range n {
		name := fmt.Sprintf("00000009000000%02X000000%02X", i/256, i%256)
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			b.Fatal(err)
		}
		if err := backup.WALPush(ctx, store, p); err != nil {
			b.Fatal(err)
		}
		names = append(names, name)
	}
	for _, mode := range []struct{ name, flag string }{{"prefetch-8", "--prefetch=8"}, {"one-at-a-time", "--prefetch=0"}} {
		b.Run(mode.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)) * n)
			for i := 0; i < b.N; i++ {
				data := filepath.Join(b.TempDir(), "data")
				if err := os.MkdirAll(filepath.Join(data, "pg_wal"), 0o700); err != nil {
					b.Fatal(err)
				}
				for _, name := range names {
					cmd := homeostatCmd(minio, prefix, "backup", "wal-fetch", mode.flag, name, "pg_wal/RECOVERYXLOG")
					cmd.Dir = data
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("wal-fetch %s: %v: %s", name, err, out)
					}
				}
			}
		})
	}
}
