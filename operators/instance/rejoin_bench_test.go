package instance_test

import (
	"context"
	"database/sql"
	"os"
	"strconv"
	"testing"
	"time"

	"homeostat.dev/homeostat/backup/pgbin"
)

// BenchmarkRejoinByRewindVsReclone measures what a failover costs the old
// primary's volume on a 1 GB database (pgbench scale 70), after the replica
// was promoted and both took writes: (a) `instance rejoin` (pg_rewind),
// then start until it streams, caught up with the new primary; (b) a fresh
// `instance join` (pg_basebackup of the whole database from the new
// primary), then start until caught up: the re-clone homeostat did before.
// Both in the same iteration from the same new primary. Benchmarks only run
// with -bench. HOMEOSTAT_REJOIN_SCALE sets another pgbench scale (about
// 15 MB each), to see how each grows with the database.
func BenchmarkRejoinByRewindVsReclone(b *testing.B) {
	scale := 70
	if v := os.Getenv("HOMEOSTAT_REJOIN_SCALE"); v != "" {
		var err error
		if scale, err = strconv.Atoi(v); err != nil || scale < 1 {
			b.Fatalf("HOMEOSTAT_REJOIN_SCALE=%q: want a pgbench scale (a positive integer)", v)
		}
	}
	for i := 0; i < b.N; i++ {
		rewind, reclone := rejoinVsReclone(b, scale)
		b.ReportMetric(rewind.Seconds(), "rewind-s")
		b.ReportMetric(reclone.Seconds(), "reclone-s")
		b.ReportMetric(reclone.Seconds()/rewind.Seconds(), "reclone/rewind")
	}
}

func rejoinVsReclone(b *testing.B, scale int) (rewind, reclone time.Duration) {
	b.StopTimer()
	defer b.StartTimer()
	p := newNode(b, "primary")
	homeostatOut(b, p.initArgs()...)
	prun := p.run(b)
	pgbench(b, p, "-i", "-q", "-s", strconv.Itoa(scale), "postgres")
	var size int64
	if err := p.superuser(b).QueryRow("SELECT pg_database_size('postgres')").Scan(&size); err != nil {
		b.Fatal(err)
	}
	r := newNode(b, "replica")
	r.secrets = p.secrets
	homeostatOut(b, append(append([]string{"instance", "join"}, r.common()...), "--primary", "127.0.0.1:"+strconv.Itoa(p.port), "--name", "replica-1")...)
	r.run(b)
	rdb := r.superuser(b)
	homeostatOut(b, "instance", "promote", "--pgdata", r.pgdata)
	if _, err := rdb.Exec("SELECT pg_create_physical_replication_slot('primary_1', true), pg_create_physical_replication_slot('clone_1', true)"); err != nil {
		b.Fatal(err)
	}
	// Both take writes: the old primary diverges from the new one.
	pgbench(b, p, "-T", "3", "-c", "2", "postgres")
	p.crash(b, prun)
	pgbench(b, r, "-T", "3", "-c", "2", "postgres")

	start := time.Now()
	homeostatOut(b, p.rejoinArgs(r.port, "primary-1")...)
	rewound := time.Since(start)
	p.run(b)
	caughtUp(b, p.superuser(b), rdb)
	rewind = time.Since(start)

	q := newNode(b, "clone")
	q.secrets = p.secrets
	start = time.Now()
	homeostatOut(b, append(append([]string{"instance", "join"}, q.common()...), "--primary", "127.0.0.1:"+strconv.Itoa(r.port), "--name", "clone-1")...)
	cloned := time.Since(start)
	q.run(b)
	caughtUp(b, q.superuser(b), rdb)
	reclone = time.Since(start)
	ms := func(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
	b.Logf("database of %d MB (pgbench scale %d): rejoin by pg_rewind %s (instance rejoin %s), re-clone %s (instance join %s)",
		size>>20, scale, ms(rewind), ms(rewound), ms(reclone), ms(cloned))
	return rewind, reclone
}

func pgbench(b *testing.B, n *node, args ...string) {
	b.Helper()
	cmd, err := pgbin.Command(context.Background(), "pgbench", append([]string{"-h", n.base, "-p", strconv.Itoa(n.port), "-U", "postgres"}, args...)...)
	if err != nil {
		b.Fatal(err)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("pgbench %v: %v\n%s", args, err, out)
	}
}

// caughtUp waits until the standby behind db streams and has replayed all
// the primary behind pdb has written.
func caughtUp(b *testing.B, db, pdb *sql.DB) {
	b.Helper()
	var target string
	if err := pdb.QueryRow("SELECT pg_current_wal_lsn()::text").Scan(&target); err != nil {
		b.Fatal(err)
	}
	waitFor(b, 10*time.Minute, "the standby to catch up with "+target, func() bool {
		var ok bool
		err := db.QueryRow(`SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')`, target).Scan(&ok)
		return err == nil && ok
	})
}
