package backup_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/backup/pgbin"
	"homeostat.dev/homeostat/internal/pgtest"
)

// The side-by-side benchmarks: homeostat against Barman Cloud (what
// CloudNativePG runs) on the shared scale-70 pgbench server and the shared
// MinIO. Barman comes from Debian's barman-cli-cloud unpacked by
// hack/barman-peer.sh into ~/.cache/homeostat/barman-VERSION (or
// $HOMEOSTAT_BARMAN_DIR); without it the barman rows are skipped with a
// message and the homeostat rows still run. hack/bench-backup.sh runs both.

// barman is the unpacked barman-cli-cloud.
type barman struct {
	dir string
	env []string
}

func findBarman(b *testing.B) *barman {
	b.Helper()
	dir := os.Getenv("HOMEOSTAT_BARMAN_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		found, _ := filepath.Glob(filepath.Join(home, ".cache", "homeostat", "barman-*", ".complete"))
		sort.Strings(found)
		if len(found) > 0 {
			dir = filepath.Dir(found[len(found)-1])
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "usr", "bin", "barman-cloud-backup")); dir == "" || err != nil {
		b.Log("barman-cloud not found (run hack/barman-peer.sh, or set HOMEOSTAT_BARMAN_DIR): skipping the Barman Cloud rows")
		return nil
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		b.Log("no /usr/bin/python3: skipping the Barman Cloud rows")
		return nil
	}
	// PostgreSQL runs archive and restore commands as its own user, who may
	// not read root's cache: use a world-readable copy.
	copyDir, err := pgtest.TempDir("homeostat-barman-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(copyDir) })
	if out, err := exec.Command("cp", "-a", filepath.Join(dir, "usr"), copyDir).CombinedOutput(); err != nil {
		b.Fatalf("copy barman: %v: %s", err, out)
	}
	if out, err := exec.Command("chmod", "-R", "a+rX", copyDir).CombinedOutput(); err != nil {
		b.Fatalf("chmod barman copy: %v: %s", err, out)
	}
	dir = copyDir
	env := append(minio.Env(),
		"PYTHONPATH="+filepath.Join(dir, "usr", "lib", "python3", "dist-packages"),
		"LD_LIBRARY_PATH="+filepath.Join(dir, "usr", "lib", "x86_64-linux-gnu"),
		"AWS_DEFAULT_REGION=us-east-1")
	return &barman{dir: dir, env: env}
}

// args are the options every barman-cloud command takes, then the bucket URL
// and server name.
func (p *barman) args(extra ...string) []string {
	return append([]string{"--cloud-provider", "aws-s3", "--endpoint-url", "http://" + minio.Endpoint}, extra...)
}

const barmanURL = "s3://bench/barman"

func (p *barman) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("/usr/bin/python3", append([]string{filepath.Join(p.dir, "usr", "bin", name)}, args...)...)
	cmd.Env = append(os.Environ(), p.env...)
	return cmd
}

// shellCommand is the command line PostgreSQL runs (archive/restore_command).
func (p *barman) shellCommand(name string, args ...string) string {
	words := append([]string{"env"}, p.env...)
	words = append(words, "/usr/bin/python3", filepath.Join(p.dir, "usr", "bin", name))
	return strings.Join(append(words, args...), " ")
}

func (p *barman) run(b *testing.B, name string, args ...string) {
	b.Helper()
	if out, err := p.command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s: %v: %s", name, err, out)
	}
}

// timed runs f and returns how long it took.
func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// row is one line of the printed side-by-side table.
type row struct {
	what, tool string
	seconds    float64
	mbps       float64
	note       string
}

func logTable(b *testing.B, rows []row) {
	b.Helper()
	var s strings.Builder
	s.WriteString("\n| measure | tool | seconds | MB/s | notes |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&s, "| %s | %s | %.1f | %.0f | %s |\n", r.what, r.tool, r.seconds, r.mbps, r.note)
	}
	b.Log(s.String())
}

// BenchmarkSideBySideBackup: base backup to S3 (homeostat push, barman-cloud-
// backup --gzip: Barman 3.4 offers gzip, bzip2 and snappy, Debian's
// python3-snappy fails on Python 3.11, and bzip2 is the slowest) and to local disk (pg_basebackup -Ft, the
// floor), then restore of each S3 backup into a data directory (files only;
// replay is BenchmarkSideBySideWAL's). MB/s are over the database's tar size.
// Run with -benchtime 1x: one iteration is minutes.
func BenchmarkSideBySideBackup(b *testing.B) {
	srv, store := benchServer(b)
	peer := findBarman(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		var rows []row
		var m *backup.Manifest
		var err error
		d := timed(func() {
			m, err = backup.Push(ctx, store, backup.PushOptions{Host: srv.SocketDir, Port: srv.Port, User: "postgres"})
		})
		if err != nil {
			b.Fatal(err)
		}
		mb := float64(m.Size) / 1e6
		rows = append(rows, row{"base backup to S3", fmt.Sprintf("homeostat push (zstd %d, %d workers)", m.CompressLevel, backup.DefaultParallel()),
			d.Seconds(), mb / d.Seconds(), fmt.Sprintf("%.0f MB stored (%.1f×)", float64(m.CompressedSize)/1e6, float64(m.Size)/float64(m.CompressedSize))})
		// The same push at level 1: what the CPU spent on level 3 buys.
		var fast *backup.Manifest
		d = timed(func() {
			fast, err = backup.Push(ctx, store, backup.PushOptions{Host: srv.SocketDir, Port: srv.Port, User: "postgres", CompressLevel: 1})
		})
		if err != nil {
			b.Fatal(err)
		}
		rows = append(rows, row{"base backup to S3", fmt.Sprintf("homeostat push --compress-level 1 (%d workers)", backup.DefaultParallel()),
			d.Seconds(), mb / d.Seconds(), fmt.Sprintf("%.0f MB stored (%.1f×)", float64(fast.CompressedSize)/1e6, float64(fast.Size)/float64(fast.CompressedSize))})
		if err := backup.Delete(ctx, store, fast.ID); err != nil {
			b.Fatal(err)
		}
		local := filepath.Join(b.TempDir(), "base")
		d = timed(func() { runPGBaseBackup(b, srv, local) })
		rows = append(rows, row{"base backup", "pg_basebackup -Ft to local disk", d.Seconds(), mb / d.Seconds(), fmt.Sprintf("%.0f MB on disk", float64(dirSize(local))/1e6)})
		_ = os.RemoveAll(local)
		names := map[string]string{}
		if peer != nil {
			for _, comp := range []string{"--gzip"} {
				name := fmt.Sprintf("bench-%d%s", time.Now().UnixNano(), strings.TrimPrefix(comp, "--"))
				before := bucketSize(b, "barman/pgbench/base/")
				d = timed(func() {
					peer.run(b, "barman-cloud-backup", peer.args(comp, "-h", srv.SocketDir, "-p", strconv.Itoa(srv.Port), "-U", "postgres",
						"--immediate-checkpoint", "-J", "2", "-n", name, barmanURL, "pgbench")...)
				})
				stored := bucketSize(b, "barman/pgbench/base/") - before
				rows = append(rows, row{"base backup to S3", "barman-cloud-backup " + comp + " -J 2", d.Seconds(), mb / d.Seconds(),
					fmt.Sprintf("%.0f MB stored (%.1f×)", float64(stored)/1e6, float64(m.Size)/float64(stored))})
				names[comp] = name
			}
		}

		to := filepath.Join(b.TempDir(), "data")
		d = timed(func() {
			if _, err := backup.Restore(ctx, store, backup.RestoreOptions{To: to, BackupID: m.ID, RestoreCommand: "false"}); err != nil {
				b.Fatal(err)
			}
		})
		rows = append(rows, row{"restore from S3", fmt.Sprintf("homeostat restore (%d workers)", backup.DefaultParallel()), d.Seconds(), mb / d.Seconds(), ""})
		_ = os.RemoveAll(to)
		for _, comp := range []string{"--gzip"} {
			if names[comp] == "" {
				continue
			}
			d = timed(func() {
				peer.run(b, "barman-cloud-restore", peer.args(barmanURL, "pgbench", names[comp], to)...)
			})
			rows = append(rows, row{"restore from S3", "barman-cloud-restore (" + strings.TrimPrefix(comp, "--") + " backup)", d.Seconds(), mb / d.Seconds(), ""})
			_ = os.RemoveAll(to)
		}
		if err := backup.Delete(ctx, store, m.ID); err != nil {
			b.Fatal(err)
		}
		logTable(b, rows)
		for _, r := range rows {
			b.ReportMetric(r.seconds, metricName(r.what+" "+r.tool)+"-s")
		}
	}
}

func metricName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '_'
	}, s)
}

func runPGBaseBackup(b *testing.B, srv *pgtest.Server, dir string) {
	b.Helper()
	bin, err := pgbin.Path("pg_basebackup")
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-Ft", "-X", "none", "--checkpoint=fast", "-D", dir, "-h", srv.SocketDir, "-p", strconv.Itoa(srv.Port), "-U", "postgres")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("pg_basebackup: %v: %s", err, out)
	}
}

// bucketSize sums the objects under prefix in the bench bucket.
func bucketSize(b *testing.B, prefix string) int64 {
	b.Helper()
	raw, err := minio.Open(context.Background(), "bench", "")
	if err != nil {
		b.Fatal(err)
	}
	objs, err := raw.List(context.Background(), prefix)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, o := range objs {
		n += o.Size
	}
	return n
}

// walBytes is how much WAL pgbench writes in each archiving run: 1 GiB, or
// HOMEOSTAT_BENCH_WAL_MB for a quick trial run.
var walBytes = uint64(envInt("HOMEOSTAT_BENCH_WAL_MB", 1024)) << 20

// BenchmarkSideBySideWAL: archiving 1 GiB of write-heavy pgbench WAL with
// homeostat wal-push (batching) and with barman-cloud-wal-archive (each run
// archives alone: the backlog of .ready segments and pg_wal at the end say
// whether it kept up), then a point-in-time restore replaying the same 1 GiB
// from S3 with homeostat wal-fetch (prefetching), homeostat wal-fetch
// --prefetch 0 (one segment at a time) and barman-cloud-wal-restore.
func BenchmarkSideBySideWAL(b *testing.B) {
	srv, store := benchServer(b)
	peer := findBarman(b)
	ctx := context.Background()
	db, err := srv.DB("postgres")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	hs := backup.ArchiveCommand(homeostat, store.Config())
	for i := 0; i < b.N; i++ {
		var rows []row
		// Both archives get everything up to the base backups.
		both := hs
		if peer != nil {
			both += " && " + peer.shellCommand("barman-cloud-wal-archive", append(peer.args("--gzip", barmanURL, "pgbench"), "%p")...)
		}
		setArchive(b, both)
		waitArchived(b, srv, db)
		m, err := backup.Push(ctx, store, backup.PushOptions{Host: srv.SocketDir, Port: srv.Port, User: "postgres"})
		if err != nil {
			b.Fatal(err)
		}
		barmanName := ""
		if peer != nil {
			barmanName = fmt.Sprintf("walbench-%d", time.Now().UnixNano())
			peer.run(b, "barman-cloud-backup", peer.args("--gzip", "-h", srv.SocketDir, "-p", strconv.Itoa(srv.Port), "-U", "postgres",
				"--immediate-checkpoint", "-n", barmanName, barmanURL, "pgbench")...)
		}
		// Each tool archives its own 1 GiB alone, Barman first. The replays
		// below go up to the end of the first run; a hard link keeps each of
		// its segments (wal_recycle is off) to give homeostat's archive too.
		keep := keepDir(b)
		link := fmt.Sprintf(` && ln -f %%p %s/`, keep)
		type archiver struct{ tool, cmd string }
		var runs []archiver
		if peer != nil {
			runs = append(runs, archiver{"barman-cloud-wal-archive --gzip",
				peer.shellCommand("barman-cloud-wal-archive", append(peer.args("--gzip", barmanURL, "pgbench"), "%p")...)})
		} else {
			b.Log("barman-cloud-wal-archive: skipped (not found)")
		}
		runs = append(runs, archiver{"homeostat wal-push (batch 8)", hs})
		var target string
		for j, r := range runs {
			if j == 0 {
				r.cmd += link
			}
			setArchive(b, r.cmd)
			res := pgbenchWAL(b, srv, db)
			if j == 0 {
				target = res.endLSN
			}
			rows = append(rows, row{fmt.Sprintf("archive %d MiB of pgbench WAL", walBytes>>20), r.tool, res.total.Seconds(), float64(walBytes) / 1e6 / res.total.Seconds(),
				fmt.Sprintf("pgbench wrote WAL at %.0f MB/s; at its end %d segments waited (peak %d), pg_wal %d MB; drained %.1f s later",
					float64(walBytes)/1e6/res.write.Seconds(), res.backlogEnd, res.backlogPeak, res.pgWALEnd>>20, res.drain.Seconds())})
		}
		fillArchive(b, keep)
		lsnStart, _ := backup.ParseLSN(m.StartLSN)
		lsnEnd, _ := backup.ParseLSN(target)
		mb := float64(lsnEnd-lsnStart) / 1e6
		for _, r := range []struct{ tool, cmd string }{
			{"homeostat wal-fetch (prefetch 8)", backup.RestoreCommand(homeostat, store.Config())},
			{"homeostat wal-fetch --prefetch 0", strings.Replace(backup.RestoreCommand(homeostat, store.Config()), " %f %p", " --prefetch 0 %f %p", 1)},
		} {
			d := replay(b, func(dir string) {
				if _, err := backup.Restore(ctx, store, backup.RestoreOptions{To: dir, BackupID: m.ID, Target: backup.Target{LSN: target}, RestoreCommand: r.cmd}); err != nil {
					b.Fatal(err)
				}
			})
			rows = append(rows, row{"PITR: replay WAL from S3", r.tool, d.Seconds(), mb / d.Seconds(), fmt.Sprintf("%.0f MB of WAL", mb)})
		}
		if peer != nil {
			restoreCmd := peer.shellCommand("barman-cloud-wal-restore", append(peer.args(barmanURL, "pgbench"), "%f", "%p")...)
			d := replay(b, func(dir string) {
				peer.run(b, "barman-cloud-restore", peer.args(barmanURL, "pgbench", barmanName, dir)...)
				writeRecovery(b, dir, restoreCmd, target)
			})
			rows = append(rows, row{"PITR: replay WAL from S3", "barman-cloud-wal-restore", d.Seconds(), mb / d.Seconds(), fmt.Sprintf("%.0f MB of WAL (from a slightly later base backup)", mb)})
		}
		setArchive(b, hs)
		_ = backup.Delete(ctx, store, m.ID)
		logTable(b, rows)
		for _, r := range rows {
			b.ReportMetric(r.seconds, metricName(r.what+" "+r.tool)+"-s")
		}
	}
}

// setArchive points the bench server's archive script at cmd (%p is the
// segment's path).
func setArchive(b *testing.B, cmd string) {
	b.Helper()
	script := "#!/bin/sh\n" + strings.ReplaceAll(cmd, "%p", `"$1"`) + "\n"
	if err := os.WriteFile(bench.script+".tmp", []byte(script), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(bench.script+".tmp", bench.script); err != nil {
		b.Fatal(err)
	}
}

// keepDir is a folder the server can hard-link its segments into.
func keepDir(b *testing.B) string {
	b.Helper()
	dir, err := pgtest.TempDir("homeostat-keepwal-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := pgbin.Chown(dir); err != nil {
		b.Fatal(err)
	}
	return dir
}

// waitArchived switches to a new segment and waits until nothing waits for
// archiving: it fails with the server log when archive_command keeps failing.
func waitArchived(b *testing.B, srv *pgtest.Server, db *sql.DB) {
	b.Helper()
	if _, err := db.Exec("SELECT pg_switch_wal()"); err != nil {
		b.Fatal(err)
	}
	status := filepath.Join(srv.DataDir, "pg_wal", "archive_status")
	deadline := time.Now().Add(3 * time.Minute)
	for countReady(status) > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("archive_command does not succeed:\n%s", srv.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type walRun struct {
	endLSN                  string
	write, total, drain     time.Duration
	backlogEnd, backlogPeak int
	pgWALEnd                int64
}

// pgbenchWAL runs write-heavy pgbench until it has written walBytes of WAL,
// then waits until every segment is archived.
func pgbenchWAL(b *testing.B, srv *pgtest.Server, db *sql.DB) walRun {
	b.Helper()
	var res walRun
	var startLSN string
	if err := db.QueryRow("SELECT pg_current_wal_lsn()").Scan(&startLSN); err != nil {
		b.Fatal(err)
	}
	start, _ := backup.ParseLSN(startLSN)
	bin, err := pgbin.Path("pgbench")
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-n", "-c", "4", "-j", "2", "-T", "1200", "-h", srv.SocketDir, "-p", strconv.Itoa(srv.Port), "-U", "postgres", "postgres")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	status := filepath.Join(srv.DataDir, "pg_wal", "archive_status")
	for {
		time.Sleep(200 * time.Millisecond)
		var lsn string
		if err := db.QueryRow("SELECT pg_current_wal_lsn()").Scan(&lsn); err != nil {
			b.Fatal(err)
		}
		res.backlogPeak = max(res.backlogPeak, countReady(status))
		if cur, _ := backup.ParseLSN(lsn); cur-start >= walBytes {
			res.endLSN = lsn
			break
		}
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Wait()
	res.write = time.Since(began)
	res.backlogEnd = countReady(status)
	res.pgWALEnd = dirSize(filepath.Join(srv.DataDir, "pg_wal"))
	if _, err := db.Exec("SELECT pg_switch_wal()"); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Minute)
	for countReady(status) > 0 {
		if time.Now().After(deadline) {
			b.Fatal("archiving did not catch up in 15 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.total = time.Since(began)
	res.drain = res.total - res.write
	return res
}

func countReady(dir string) int {
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".ready") {
			n++
		}
	}
	return n
}

// fillArchive pushes the kept segments to homeostat's archive (those it
// already holds are skipped), so both replays read the same WAL.
func fillArchive(b *testing.B, keep string) {
	b.Helper()
	segs, _ := filepath.Glob(filepath.Join(keep, "*"))
	for _, s := range segs {
		if err := backup.WALPush(context.Background(), bench.store, s); err != nil {
			b.Fatal(err)
		}
		_ = os.Remove(s)
	}
}

// replay makes a data directory with prepare and times a server on it from
// start until it has replayed to the target and promoted.
func replay(b *testing.B, prepare func(dir string)) time.Duration {
	b.Helper()
	base, err := pgtest.TempDir("homeostat-replay-")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(base) }()
	dir := filepath.Join(base, "data")
	prepare(dir)
	if err := pgbin.Chown(base); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	r, err := pgtest.Start(dir, pgtest.Options{Settings: map[string]string{"archive_mode": "off", "max_wal_size": "1GB"}, Env: minio.Env()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.Stop() }()
	if err := r.WaitPromoted(30 * time.Minute); err != nil {
		b.Fatalf("%v\n%s", err, r.Log())
	}
	return time.Since(start)
}

// writeRecovery configures a directory barman-cloud-restore wrote (files
// only) the way homeostat's restore does.
func writeRecovery(b *testing.B, dir, restoreCmd, lsn string) {
	b.Helper()
	lines := backup.RecoverySettings(restoreCmd, backup.Target{LSN: lsn})
	f, err := os.OpenFile(filepath.Join(dir, "postgresql.auto.conf"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = f.WriteString("\n" + strings.Join(lines, "\n") + "\n")
	_ = f.Close()
	for _, d := range []string{"pg_wal/archive_status", "pg_tblspc", "pg_replslot"} {
		_ = os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	if err := os.WriteFile(filepath.Join(dir, "recovery.signal"), nil, 0o600); err != nil {
		b.Fatal(err)
	}
}
