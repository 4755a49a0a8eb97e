package main

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"homeostat.dev/homeostat/internal/golden"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func TestPGStatusPrintsInstancesBackupsAndConditions(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { m := metav1.NewTime(now.Add(-d)); return &m }
	pg := &v1alpha1.Postgres{
		ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "shopdb"},
		Spec: v1alpha1.PostgresSpec{Version: "16", Instances: 3, Synchronous: 1,
			Storage: v1alpha1.Storage{Size: "20Gi"}},
		Status: v1alpha1.PostgresStatus{
			Phase: "Healthy", Primary: "shopdb-1", ReadyInstances: 2,
			Instances: []v1alpha1.InstanceStatus{
				{Name: "shopdb-1", Role: "primary", Ready: true, Timeline: 2, LSN: "0/5000148", DataBytes: 1288490189, VolumeFreeBytes: ptr.To[int64](19 << 30)},
				{Name: "shopdb-2", Role: "replica", Ready: true, Timeline: 2, LSN: "0/5000060", LagBytes: 232, DataBytes: 1288490189, VolumeFreeBytes: ptr.To[int64](0)},
				{Name: "shopdb-4", Role: "replica", Ready: false, Timeline: 1},
			},
			LastBackup:               at(9 * time.Hour),
			FirstRecoverabilityPoint: at(57 * time.Hour),
			Conditions: []metav1.Condition{
				{Type: "Ready", Status: "True", Reason: "ReconciliationSucceeded", Message: "2 instances ready, primary shopdb-1", LastTransitionTime: *at(3 * time.Minute)},
				{Type: "PrimaryAvailable", Status: "True", Reason: "PrimaryReady", Message: "shopdb-1 accepts connections", LastTransitionTime: *at(time.Hour)},
				{Type: "ContinuousArchiving", Status: "False", Reason: "ArchiveFailing", Message: "archive_command failed 3 times, last for 000000020000000000000005 at 2026-11-26T11:58:00Z; 2 WAL files waiting (oldest 000000020000000000000005)", LastTransitionTime: *at(2 * time.Minute)},
			},
		},
	}
	var backups []v1alpha1.Backup
	for i, st := range []v1alpha1.BackupStatus{
		{Phase: "Completed", StartedAt: at(57 * time.Hour), Size: 3 << 20, BeginLSN: "0/2000028", EndLSN: "0/2000100"},
		{Phase: "Completed", StartedAt: at(33 * time.Hour), Size: 5 << 30, BeginLSN: "0/3000028", EndLSN: "0/3000100"},
		{Phase: "Completed", StartedAt: at(9 * time.Hour), Size: 812, BeginLSN: "0/4000028", EndLSN: "0/4000100"},
		{Phase: "Failed", StartedAt: at(10 * time.Minute), Error: "backup job shopdb-manual-backup failed: see its pod's log"},
		{Phase: "Pending"},
	} {
		backups = append(backups, v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "shopdb-" + string(rune('a'+i))}, Status: st})
	}
	// Only the newest pgStatusBackups are listed: "shopdb-oldest" is left out.
	backups = append([]v1alpha1.Backup{{ObjectMeta: metav1.ObjectMeta{Name: "shopdb-oldest"}}}, backups...)

	var out bytes.Buffer
	if err := printPGStatus(&out, pg, backups, now); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, filepath.Join("testdata", "pg-status.golden"), out.Bytes())
}

func TestBytesIEC(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 20: "3.0 MiB", 5 << 30: "5.0 GiB", 3 << 40: "3072.0 GiB"} {
		if got := bytesIEC(n); got != want {
			t.Errorf("bytesIEC(%d) = %q, want %q", n, got, want)
		}
	}
}
