package instance_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// A replica joined from a primary streams the rows written on the primary
// through its own slot, shows up in the primary's status, can be made
// synchronous, and once promoted is a writable primary on a new timeline.
func TestReplicaStreamsAndPromotes(t *testing.T) {
	p := newNode(t, "primary")
	homeostatOut(t, p.initArgs()...)
	p.run(t)
	pdb := p.superuser(t)
	if _, err := pdb.Exec("CREATE TABLE t (v int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}

	r := newNode(t, "replica")
	r.secrets = p.secrets
	join := append([]string{"instance", "join"}, r.common()...)
	join = append(join, "--primary", "127.0.0.1:"+strconv.Itoa(p.port), "--name", "replica-1")
	homeostatOut(t, join...)
	passfile := filepath.Join(r.base, ".replica.pgpass")
	if st, err := os.Stat(passfile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("passfile %s: %v, mode %v; want 0600", passfile, err, st)
	}
	if _, err := os.Stat(filepath.Join(r.pgdata, "standby.signal")); err != nil {
		t.Fatalf("no standby.signal: %v", err)
	}
	for _, f := range []string{"postgresql.conf", "homeostat.conf", "postgresql.auto.conf"} {
		b, _ := os.ReadFile(filepath.Join(r.pgdata, f))
		noSecrets(t, "replica "+f, string(b))
	}
	r.run(t)
	rdb := r.superuser(t)

	if _, err := pdb.Exec("INSERT INTO t SELECT generate_series(2, 100)"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "rows streamed to the replica", func() bool {
		var n int
		return rdb.QueryRow("SELECT count(*) FROM t").Scan(&n) == nil && n == 100
	})

	ps := p.status(t)
	if ps.Role != "primary" || ps.Timeline != 1 || ps.CurrentLSN == "" || len(ps.Standbys) != 1 {
		t.Fatalf("primary status: %+v", ps)
	}
	if s := ps.Standbys[0]; s.Name != "replica_1" || s.State != "streaming" || s.SyncState != "async" {
		t.Fatalf("standby in primary status: %+v", s)
	}
	if got := queryString(t, pdb, "SELECT active::text FROM pg_replication_slots WHERE slot_name = 'replica_1'"); got != "true" {
		t.Fatalf("slot replica_1 active = %s", got)
	}
	rs := r.status(t)
	if rs.Role != "replica" || rs.Upstream == nil || rs.Upstream.Status != "streaming" || rs.Upstream.Slot != "replica_1" || rs.ReplayLSN == "" {
		t.Fatalf("replica status: %+v (upstream %+v)", rs, rs.Upstream)
	}

	homeostatOut(t, "instance", "sync-standbys", "--pgdata", p.pgdata, "replica_1")
	waitFor(t, 10*time.Second, "replica_1 synchronous", func() bool {
		st := p.status(t)
		return len(st.Standbys) == 1 && st.Standbys[0].SyncState == "sync" && st.SynchronousStandbyNames == "replica_1"
	})
	if _, err := pdb.Exec("INSERT INTO t VALUES (101)"); err != nil {
		t.Fatal(err)
	}

	homeostatOut(t, "instance", "promote", "--pgdata", r.pgdata)
	rs = r.status(t)
	if rs.Role != "primary" || rs.Timeline != 2 {
		t.Fatalf("after promote: %+v", rs)
	}
	if _, err := rdb.Exec("INSERT INTO t VALUES (102)"); err != nil {
		t.Fatalf("promoted replica does not accept writes: %v", err)
	}
	if got := queryString(t, rdb, "SELECT count(*)::text FROM t"); got != "102" {
		t.Fatalf("promoted replica has %s rows, want 102 (the synchronous write included)", got)
	}
	// The old primary waits for a synchronous standby that is gone; make it
	// asynchronous so it shuts down cleanly.
	homeostatOut(t, "instance", "sync-standbys", "--pgdata", p.pgdata, "")
}
