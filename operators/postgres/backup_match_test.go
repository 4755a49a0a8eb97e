package postgres

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func TestManifestOfFindsTheBackupsOwnPush(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	nightly := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "nightly"},
		Status: v1alpha1.BackupStatus{StartedAt: &metav1.Time{Time: t0.Add(300 * time.Millisecond)}}}
	tests := []struct {
		name   string
		stored []backup.Manifest
		want   string
	}{
		{"two pushes at once: the labelled one, though the other started first", []backup.Manifest{
			{ID: "by-hand", Label: "web/by-hand", StartTime: at(time.Second)},
			{ID: "mine", Label: "web/nightly", StartTime: at(2 * time.Second)},
		}, "mine"},
		{"a same-named Backup's older push is not taken", []backup.Manifest{
			{ID: "yesterday", Label: "web/nightly", StartTime: at(-24 * time.Hour)},
			{ID: "today", Label: "web/nightly", StartTime: at(time.Second)},
		}, "today"},
		{"unlabelled stores (older homeostat): first started since, to the second", []backup.Manifest{
			{ID: "before", StartTime: at(-time.Minute)},
			{ID: "same-second", StartTime: at(100 * time.Millisecond)},
		}, "same-second"},
		{"another Backup's push is never taken", []backup.Manifest{
			{ID: "other", Label: "web/other", StartTime: at(time.Second)},
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := ""
			if m := manifestOf(tt.stored, nightly); m != nil {
				id = m.ID
			}
			if id != tt.want {
				t.Fatalf("got %q, want %q", id, tt.want)
			}
		})
	}
}
