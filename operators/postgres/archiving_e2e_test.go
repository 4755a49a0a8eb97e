package postgres

import (
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// TestArchivingOutageIsReportedAndRecovered stops S3 for a minute under
// write load: ContinuousArchiving turns False with the archiver's error
// while it lasts, a base backup fails at once with that error instead of
// waiting forever, and once S3 is back archiving catches up with no gap in
// the archived WAL and no acknowledged write lost.
func TestArchivingOutageIsReportedAndRecovered(t *testing.T) {
	s := startStory(t)
	path := s.ns + "/arch"
	pg := &v1alpha1.Postgres{
		ObjectMeta: metav1.ObjectMeta{Name: "arch", Namespace: s.ns},
		Spec: v1alpha1.PostgresSpec{Version: "16", Instances: 2, Synchronous: 1, Storage: v1alpha1.Storage{Size: "1Gi"}, Database: "shop",
			Backup: &v1alpha1.PostgresBackup{S3: v1alpha1.S3Store{Endpoint: s.s3.Endpoint, Bucket: "pgbackups", Path: path, Insecure: true,
				SecretRef: v1alpha1.LocalObjectReference{Name: "s3-creds"}}}},
	}
	if err := env.Client.Create(s.ctx, pg); err != nil {
		t.Fatal(err)
	}
	s.waitWhole("arch", 2, 4*time.Minute)
	s.waitCondition("arch", ConditionContinuousArchiving, metav1.ConditionTrue, time.Minute)
	load := s.startLoad("arch", 4)
	super := s.superDB("arch")
	defer super.Close()

	down := time.Now()
	if err := s.s3.Pause(); err != nil {
		t.Fatal(err)
	}
	// Fill segments so the archiver has something to fail on.
	s.eventually("ContinuousArchiving=False", time.Minute, func() (bool, string) {
		_, _ = super.ExecContext(s.ctx, `SELECT pg_switch_wal()`)
		c := meta.FindStatusCondition(s.postgres("arch").Status.Conditions, ConditionContinuousArchiving)
		return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "archive_command failed"), fmt.Sprintf("%+v", c)
	})
	t.Logf("FACT S3 down: ContinuousArchiving=False after %s", time.Since(down).Round(100*time.Millisecond))
	s.backupPushFailsFast("arch")
	time.Sleep(time.Until(down.Add(time.Minute)))
	if err := s.s3.Resume(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	s.waitCondition("arch", ConditionContinuousArchiving, metav1.ConditionTrue, 3*time.Minute)
	t.Logf("FACT S3 back: ContinuousArchiving=True after %s", time.Since(up).Round(100*time.Millisecond))
	load.stop()
	s.switchAndArchiveWAL("arch")
	load.verify(s.ctx, s.db("arch", RWService("arch")))
	s.archiveHasNoGap("pgbackups", path)
}

// backupPushFailsFast runs `homeostat backup push` against the primary, as
// a Backup's Job does, and wants it to fail within seconds naming the
// archiver's error.
func (s *story) backupPushFailsFast(cluster string) {
	t := s.t
	addr, err := s.kube.DirectAddr(s.ns, s.postgres(cluster).Status.Primary)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(addr, ":")
	var sec corev1.Secret
	if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: SecretName(cluster, SecretReplication)}, &sec); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(s.ctx, s.bin, "backup", "push", "--host", host, "--port", port, "--user", replUserName)
	// As the backup Job does: verify-full against the cluster CA.
	sslmode, rootcert, _ := strings.Cut(strings.TrimPrefix(s.verifyFull(&sec), "sslmode="), " sslrootcert=")
	cmd.Env = append(cmd.Environ(), append(s.s3.Env(), "PGSSLMODE="+sslmode, "PGSSLROOTCERT="+rootcert,
		"PGPASSWORD="+string(sec.Data["password"]), backup.EnvEndpoint+"="+s.s3.Endpoint,
		backup.EnvBucket+"=pgbackups", backup.EnvPrefix+"="+s.ns+"/"+cluster, backup.EnvInsecure+"=true")...)
	start := time.Now()
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(45 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("backup push still running after 45s while archiving fails:\n%s", out)
	}
	if err == nil || !strings.Contains(string(out), "archive_command failed") {
		t.Fatalf("backup push while archiving fails: %v, want the archiver's error:\n%s", err, out)
	}
	t.Logf("FACT backup push failed after %s: %s", time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(string(out)))
}

func (s *story) waitCondition(cluster, cond string, want metav1.ConditionStatus, timeout time.Duration) {
	s.t.Helper()
	s.eventually(cluster+" "+cond+"="+string(want), timeout, func() (bool, string) {
		c := meta.FindStatusCondition(s.postgres(cluster).Status.Conditions, cond)
		return c != nil && c.Status == want, fmt.Sprintf("%+v", c)
	})
}

// archiveHasNoGap lists the archived segments of the newest timeline and
// fails when one between the first and the last is missing.
func (s *story) archiveHasNoGap(bucket, prefix string) {
	t := s.t
	store, err := s.s3.Open(s.ctx, bucket, prefix)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := store.List(s.ctx, "wal/")
	if err != nil {
		t.Fatal(err)
	}
	var segs []uint64
	for _, o := range objs {
		name := strings.TrimSuffix(strings.TrimPrefix(o.Key, "wal/"), ".zst")
		if len(name) != 24 || name[:8] != "00000001" {
			continue
		}
		log, err1 := strconv.ParseUint(name[8:16], 16, 32)
		seg, err2 := strconv.ParseUint(name[16:24], 16, 32)
		if err1 == nil && err2 == nil {
			segs = append(segs, log<<8|seg)
		}
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i] < segs[j] })
	for i := 1; i < len(segs); i++ {
		if segs[i] != segs[i-1]+1 {
			t.Errorf("archive gap: segment after %X is %X", segs[i-1], segs[i])
		}
	}
	t.Logf("archive: %d segments of timeline 1, no gap", len(segs))
}
