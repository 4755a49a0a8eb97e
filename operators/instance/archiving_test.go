package instance_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"homeostat.dev/homeostat/internal/s3test"
)

// The pod's path end to end: init with a backup store turns on archiving
// with `homeostat backup wal-push` (credentials only in the environment),
// WAL reaches the store, and `backup push --pgdata` takes a base backup of
// the running instance.
func TestInitWithBackupStoreArchivesWAL(t *testing.T) {
	s3, err := s3test.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s3.Stop() }()
	for _, kv := range append(s3.Env(), "HOMEOSTAT_S3_ENDPOINT="+s3.Endpoint, "HOMEOSTAT_S3_BUCKET=backups",
		"HOMEOSTAT_S3_PREFIX=db", "HOMEOSTAT_S3_INSECURE=true") {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	n := newNode(t, "primary")
	homeostatOut(t, n.initArgs()...)
	conf, _ := os.ReadFile(n.pgdata + "/homeostat.conf")
	if !strings.Contains(string(conf), "backup wal-push --s3-endpoint "+s3.Endpoint) || strings.Contains(string(conf), s3.SecretKey) {
		t.Fatalf("archive_command in homeostat.conf:\n%s", conf)
	}
	n.run(t)
	db := n.superuser(t)
	var seg string
	if err := db.QueryRow("SELECT pg_walfile_name(pg_switch_wal())").Scan(&seg); err != nil {
		t.Fatal(err)
	}
	store, err := s3.Open(context.Background(), "backups", "db")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, seg+" archived", func() bool {
		_, err := store.Stat(context.Background(), "wal/"+seg+".zst")
		return err == nil
	})

	out, err := exec.Command(homeostat, "backup", "push", "--pgdata", n.pgdata).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"stopLSN"`) {
		t.Fatalf("backup push --pgdata: %v\n%s", err, out)
	}
	noSecrets(t, "backup push output", string(out))
}
