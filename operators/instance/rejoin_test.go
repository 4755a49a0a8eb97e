package instance_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"homeostat.dev/homeostat/backup/pgbin"
	"homeostat.dev/homeostat/operators/instance"
)

// crash stops a node's postgres the way a crashed node does (no shutdown
// checkpoint) and waits for its instance manager to exit.
func (n *node) crash(t testing.TB, r *runner) {
	t.Helper()
	cmd, err := pgbin.Command(context.Background(), "pg_ctl", "-D", n.pgdata, "-m", "immediate", "-w", "stop")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl stop -m immediate: %v: %s", err, out)
	}
	r.wait(t, 20*time.Second)
}

// rejoinArgs are the flags of `instance rejoin` for node n following the
// primary at port.
func (n *node) rejoinArgs(port int, name string) []string {
	return append([]string{"instance", "rejoin", "--pgdata", n.pgdata, "--primary", "127.0.0.1:" + strconv.Itoa(port), "--name", name},
		n.passwordFlags()...)
}

// A primary that crashed after writing WAL its replica never received
// (the replica was promoted meanwhile) is rewound and rejoins as a standby
// of the promoted replica, on its own port, without a new base backup; its
// diverged rows are gone and the new primary's writes stream to it.
func TestFormerPrimaryRewindsAndRejoins(t *testing.T) {
	p := newNode(t, "primary")
	homeostatOut(t, p.initArgs()...)
	prun := p.run(t)
	pdb := p.superuser(t)
	if _, err := pdb.Exec("CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 100)"); err != nil {
		t.Fatal(err)
	}
	r := newNode(t, "replica")
	r.secrets = p.secrets
	homeostatOut(t, append(append([]string{"instance", "join"}, r.common()...), "--primary", "127.0.0.1:"+strconv.Itoa(p.port), "--name", "replica-1")...)
	r.run(t)
	rdb := r.superuser(t)
	waitFor(t, 30*time.Second, "rows on the replica", func() bool {
		var n int
		return rdb.QueryRow("SELECT count(*) FROM t").Scan(&n) == nil && n == 100
	})
	homeostatOut(t, "instance", "promote", "--pgdata", r.pgdata)
	// The operator keeps a slot for every member on every instance.
	if _, err := rdb.Exec("SELECT pg_create_physical_replication_slot('primary_1', true)"); err != nil {
		t.Fatal(err)
	}
	// Split brain for a moment: the old primary takes writes the new one
	// never sees, then crashes.
	if _, err := pdb.Exec("INSERT INTO t SELECT generate_series(1001, 1100)"); err != nil {
		t.Fatal(err)
	}
	p.crash(t, prun)
	if _, err := rdb.Exec("INSERT INTO t VALUES (101)"); err != nil {
		t.Fatal(err)
	}

	homeostatOut(t, p.rejoinArgs(r.port, "primary-1")...)
	p.run(t)
	waitFor(t, 30*time.Second, "the old primary streaming from the new one", func() bool {
		var n, max int
		var inRecovery bool
		err := pdb.QueryRow("SELECT count(*), max(v), pg_is_in_recovery() FROM t").Scan(&n, &max, &inRecovery)
		return err == nil && n == 101 && max == 101 && inRecovery
	})
	if _, err := rdb.Exec("INSERT INTO t VALUES (102)"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a new write on the rejoined standby", func() bool {
		var n int
		return pdb.QueryRow("SELECT count(*) FROM t WHERE v = 102").Scan(&n) == nil && n == 1
	})
	if got := queryString(t, rdb, "SELECT active::text FROM pg_replication_slots WHERE slot_name = 'primary_1'"); got != "true" {
		t.Errorf("the rejoined standby does not stream through its slot primary_1 (active %s)", got)
	}
}

// A directory pg_rewind cannot bring onto the primary's history (here: a
// cluster of its own) fails with exit code 3, which the operator reads as
// "clone it again".
func TestRejoinThatCannotRewindExitsWithCode3(t *testing.T) {
	p := newNode(t, "primary")
	homeostatOut(t, p.initArgs()...)
	p.run(t)
	other := newNode(t, "other")
	other.secrets = p.secrets
	homeostatOut(t, other.initArgs()...)
	cmd := exec.Command(homeostat, other.rejoinArgs(p.port, "other-1")...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != instance.ExitRewindFailed {
		t.Fatalf("rejoin of another cluster's directory: %v, want exit code %d\n%s", err, instance.ExitRewindFailed, out)
	}
	if !strings.Contains(string(out), "pg_rewind") {
		t.Errorf("the error does not say pg_rewind failed:\n%s", out)
	}
	noSecrets(t, "rejoin output", string(out))
	if _, err := os.Stat(filepath.Join(other.pgdata, "standby.signal")); err == nil {
		t.Error("a directory that could not be rewound was made a standby")
	}
}
