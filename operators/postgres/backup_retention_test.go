package postgres

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func TestCompletedBackupsBeyondKeepAreDeletedOldestFirst(t *testing.T) {
	ns := newNamespace(t)
	pg := createPostgres(t, ns, func(pg *v1alpha1.Postgres) {
		pg.Spec.Backup = &v1alpha1.PostgresBackup{Keep: 2, S3: v1alpha1.S3Store{Endpoint: "127.0.0.1:9", Bucket: "bkt", SecretRef: v1alpha1.LocalObjectReference{Name: "s3"}}}
	})
	mk := func(name, phase string) *v1alpha1.Backup {
		b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1alpha1.BackupSpec{Cluster: v1alpha1.LocalObjectReference{Name: "db"}}}
		if err := env.Client.Create(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		b.Status.Phase = phase
		if err := env.Client.Status().Update(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	mk("b1", v1alpha1.BackupCompleted)
	mk("b2", v1alpha1.BackupFailed)
	mk("b3", v1alpha1.BackupCompleted)
	done := mk("b4", v1alpha1.BackupRunning)
	done.Status.Phase = v1alpha1.BackupCompleted
	r := &BackupReconciler{Client: env.Client, Scheme: env.Scheme}
	if err := r.retain(context.Background(), pg, done); err != nil {
		t.Fatal(err)
	}
	var l v1alpha1.BackupList
	if err := env.Client.List(context.Background(), &l, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	left := map[string]bool{}
	for _, b := range l.Items {
		if b.DeletionTimestamp.IsZero() {
			left[b.Name] = true
		}
	}
	if left["b1"] || !left["b2"] || !left["b3"] || !left["b4"] {
		t.Errorf("backups left = %v; want b1 (oldest completed beyond keep 2) gone, failed b2 kept", left)
	}
}

func TestBackupTimesSpanTheCompletedBackups(t *testing.T) {
	at := func(h int) *metav1.Time {
		m := metav1.NewTime(time.Date(2026, 11, 24, h, 0, 0, 0, time.UTC))
		return &m
	}
	bs := []v1alpha1.Backup{
		{Status: v1alpha1.BackupStatus{Phase: v1alpha1.BackupCompleted, StoppedAt: at(3)}},
		{Status: v1alpha1.BackupStatus{Phase: v1alpha1.BackupFailed, StoppedAt: at(1)}},
		{Status: v1alpha1.BackupStatus{Phase: v1alpha1.BackupCompleted, StoppedAt: at(5)}},
		{Status: v1alpha1.BackupStatus{Phase: v1alpha1.BackupRunning}},
	}
	last, first := backupTimes(bs)
	if !last.Equal(at(5)) || !first.Equal(at(3)) {
		t.Errorf("lastBackup %v, firstRecoverabilityPoint %v; want 05:00 and 03:00", last, first)
	}
	if l, f := backupTimes(nil); l != nil || f != nil {
		t.Error("times without backups")
	}
}
