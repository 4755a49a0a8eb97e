package instance_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"homeostat.dev/homeostat/internal/s3test"
)

// A cluster bootstrapped from a backup: restore, init (which keeps the
// recovery settings while recovery.signal is there), run until promoted,
// then a replica joined from it. The replica must stay a streaming standby:
// the restore's recovery target, copied by pg_basebackup, would otherwise
// make it stop and promote itself. The restored cluster has its own
// passwords, which run sets once it has promoted: the replica joins with
// them, not with the source's.
func TestReplicaOfARestoredPrimaryStaysAStandby(t *testing.T) {
	s3, err := s3test.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s3.Stop() }()
	for _, kv := range append(s3.Env(), "HOMEOSTAT_S3_ENDPOINT="+s3.Endpoint, "HOMEOSTAT_S3_BUCKET=backups",
		"HOMEOSTAT_S3_PREFIX=source", "HOMEOSTAT_S3_INSECURE=true") {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	src := newNode(t, "source")
	homeostatOut(t, src.initArgs()...)
	src.run(t)
	sdb := src.superuser(t)
	if _, err := sdb.Exec("CREATE TABLE t (v int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	homeostatOut(t, "backup", "push", "--pgdata", src.pgdata)
	var seg string
	if err := sdb.QueryRow("SELECT pg_walfile_name(pg_switch_wal())").Scan(&seg); err != nil {
		t.Fatal(err)
	}
	store, err := s3.Open(context.Background(), "backups", "source")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, seg+" archived", func() bool {
		_, err := store.Stat(context.Background(), "wal/"+seg+".zst")
		return err == nil
	})

	p := newNode(t, "restored")
	p.useSecrets(t, newSuperPassword, newReplPassword, newAppPassword)
	homeostatOut(t, "backup", "restore", "--to", p.pgdata, "--latest", "--immediate")
	homeostatOut(t, p.initArgs("--s3-prefix", "restored")...)
	prun := p.runWith(t, nil, p.passwordFlags()...)
	pdb := p.superuser(t)
	waitFor(t, 60*time.Second, "the restored primary to promote", func() bool {
		var inRecovery bool
		return pdb.QueryRow("SELECT pg_is_in_recovery()").Scan(&inRecovery) == nil && !inRecovery
	})
	prun.waitLogged(t, passwordsSet)
	p.checkLogins(t, []loginCase{{"app", newAppPassword, true}, {"app", appPassword, false}})

	r := newNode(t, "replica")
	r.secrets = p.secrets
	join := append([]string{"instance", "join"}, r.common()...)
	join = append(join, "--primary", "127.0.0.1:"+strconv.Itoa(p.port), "--name", "replica-1", "--s3-prefix", "restored")
	homeostatOut(t, join...)
	auto, _ := os.ReadFile(filepath.Join(r.pgdata, "postgresql.auto.conf"))
	if strings.Contains(string(auto), "recovery_target") || strings.Contains(string(auto), "restore_command") {
		t.Fatalf("the replica kept the restore's recovery settings:\n%s", auto)
	}
	r.run(t)
	if _, err := pdb.Exec("INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	rdb := r.superuser(t)
	waitFor(t, 30*time.Second, "the row streamed to the replica", func() bool {
		var n int
		return rdb.QueryRow("SELECT count(*) FROM t").Scan(&n) == nil && n == 2
	})
	if st := r.status(t); st.Role != "replica" || st.Upstream == nil || st.Upstream.Status != "streaming" {
		t.Fatalf("the replica of a restored primary is not streaming: %+v", st)
	}
}
