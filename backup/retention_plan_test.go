package backup

import (
	"reflect"
	"testing"
)

func TestPlanRetention(t *testing.T) {
	backups := []Manifest{
		{ID: "20260101T000000.000Z", StartWAL: "000000010000000000000003"},
		{ID: "20260102T000000.000Z", StartWAL: "000000010000000000000006"},
		{ID: "20260103T000000.000Z", StartWAL: "000000020000000000000009"},
	}
	wal := []string{
		"000000010000000000000002",
		"000000010000000000000003",
		"000000010000000000000004.00000028.backup",
		"000000010000000000000005",
		"000000010000000000000006",
		"000000010000000000000008.partial",
		"00000002.history",
		"000000020000000000000008",
		"000000020000000000000009",
	}
	for _, tc := range []struct {
		name       string
		keep       int
		incomplete []string
		want       RetentionPlan
	}{
		{name: "keep all", keep: 3, want: RetentionPlan{WAL: []string{"000000010000000000000002"}}},
		{name: "keep more than exist", keep: 5, want: RetentionPlan{WAL: []string{"000000010000000000000002"}}},
		{name: "no complete backup", keep: 1, incomplete: []string{"20250101T000000.000Z"}},
		{
			name: "keep two", keep: 2,
			incomplete: []string{"20251231T000000.000Z", "20260102T120000.000Z"},
			want: RetentionPlan{
				Backups: []string{"20260101T000000.000Z", "20251231T000000.000Z"},
				WAL:     []string{"000000010000000000000002", "000000010000000000000003", "000000010000000000000004.00000028.backup", "000000010000000000000005"},
			},
		},
		{
			// The newest backup is on timeline 2: WAL of timeline 1 before its
			// start goes, the history file stays.
			name: "keep one across a timeline switch", keep: 1,
			want: RetentionPlan{
				Backups: []string{"20260101T000000.000Z", "20260102T000000.000Z"},
				WAL: []string{"000000010000000000000002", "000000010000000000000003", "000000010000000000000004.00000028.backup",
					"000000010000000000000005", "000000010000000000000006", "000000010000000000000008.partial", "000000020000000000000008"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			complete := backups
			if tc.name == "no complete backup" {
				complete = nil
			}
			got := PlanRetention(complete, tc.incomplete, wal, tc.keep)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestSelectBackup(t *testing.T) {
	mustTime := func(s string) Target {
		var tt Target
		if err := tt.Time.UnmarshalText([]byte(s)); err != nil {
			t.Fatal(err)
		}
		return tt
	}
	backups := []Manifest{
		{ID: "a", StopLSN: "0/3000100"},
		{ID: "b", StopLSN: "0/6000100"},
	}
	_ = backups[0].StopTime.UnmarshalText([]byte("2026-01-01T10:00:00Z"))
	_ = backups[1].StopTime.UnmarshalText([]byte("2026-01-01T12:00:00Z"))
	for _, tc := range []struct {
		name, id string
		target   Target
		want     string
	}{
		{name: "latest", want: "b"},
		{name: "by id", id: "a", want: "a"},
		{name: "unknown id", id: "zz"},
		{name: "time between", target: mustTime("2026-01-01T11:00:00Z"), want: "a"},
		{name: "time before all", target: mustTime("2026-01-01T09:00:00Z")},
		{name: "lsn between", target: Target{LSN: "0/5000000"}, want: "a"},
		{name: "lsn after all", target: Target{LSN: "1/0"}, want: "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SelectBackup(backups, tc.id, tc.target)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("got %s, want an error", got.ID)
				}
				return
			}
			if err != nil || got.ID != tc.want {
				t.Fatalf("got %v %v, want %s", got, err, tc.want)
			}
		})
	}
}

func TestArchiveCommandNamesEveryStoreSetting(t *testing.T) {
	got := ArchiveCommand("/controller/homeostat", Config{Endpoint: "s3:9000", Bucket: "b", Insecure: true, CredentialsDir: "/etc/s3 creds", SecretKey: "hidden"})
	want := "/controller/homeostat backup wal-push --s3-endpoint s3:9000 --s3-bucket b --s3-prefix '' --s3-region '' --s3-insecure=true --s3-credentials-dir '/etc/s3 creds' %p"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := RestoreCommand("/h", Config{Endpoint: "e", Bucket: "b", Prefix: "p"}); got != "/h backup wal-fetch --s3-endpoint e --s3-bucket b --s3-prefix p --s3-region '' --s3-insecure=false %f %p" {
		t.Fatalf("restore command: %s", got)
	}
}
