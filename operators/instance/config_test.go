package instance

import (
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// The configuration homeostat writes, for a primary with archiving and a
// replica, checked against golden files (go test -run Golden -update rewrites them).
func TestRenderedConfigurationGolden(t *testing.T) {
	base := Config{Port: 5432, ListenAddresses: "*", SocketDir: "/var/run/postgresql", Superuser: "postgres",
		ReplicationUser: "streaming_replica"}
	archiving := base
	archiving.ArchiveCommand = "/controller/homeostat backup wal-push --s3-endpoint s3:9000 --s3-bucket b %p"
	archiving.RestoreCommand = "/controller/homeostat backup wal-fetch --s3-endpoint s3:9000 --s3-bucket b %f %p"
	archiving.Parameters = map[string]string{"work_mem": "8MB", "max_wal_senders": "20"}
	replica := base
	replica.Primary = &Upstream{Host: "db-rw", Port: 5432, User: "streaming_replica", PassFile: "/var/lib/postgresql/data/.pgdata.pgpass",
		Slot: "db_2", ApplicationName: "db_2"}
	for _, tc := range []struct {
		name string
		got  string
	}{
		{"primary-archiving.conf", RenderConf(archiving.Settings())},
		{"replica.conf", RenderConf(replica.Settings())},
		{"pg_hba.conf", base.HBA()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			golden := filepath.Join("testdata", tc.name)
			if *update {
				if err := os.WriteFile(golden, []byte(tc.got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(want) != tc.got {
				t.Errorf("%s differs from the golden file:\n%s", tc.name, tc.got)
			}
		})
	}
}

func TestParseParameters(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		want    map[string]string
		wantErr bool
	}{
		{in: []string{"work_mem=8MB", "search_path=a,b"}, want: map[string]string{"work_mem": "8MB", "search_path": "a,b"}},
		{in: []string{"shared_preload_libraries="}, want: map[string]string{"shared_preload_libraries": ""}},
		{in: []string{"novalue"}, wantErr: true},
		{in: []string{"=x"}, wantErr: true},
		{in: []string{"bad name=x"}, wantErr: true},
	} {
		got, err := ParseParameters(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("%v: error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%v: %s = %q, want %q", tc.in, k, got[k], v)
			}
		}
	}
}

func TestSlotName(t *testing.T) {
	for in, want := range map[string]string{"db-1": "db_1", "Pod.Name-2": "pod_name_2", "ok_3": "ok_3"} {
		if got := SlotName(in); got != want {
			t.Errorf("SlotName(%q) = %q, want %q", in, got, want)
		}
	}
}

// The verifier must equal the one PostgreSQL 15 stored for the same password
// and salt (CREATE ROLE x PASSWORD 'secret'; SELECT rolpassword FROM pg_authid).
func TestScramVerifierMatchesPostgres(t *testing.T) {
	const fromPostgres = "SCRAM-SHA-256$4096:qU0PY2s2snZ6bWQDV9PWuQ==$FIQ4QMz60Cm8ATBeE/+238R5+Vgyb5sR/U0LY73vCmE=:WcTxA07p7g/FLvD1c/DNZOw84gMdle+ASKt5A9lNxKw="
	salt, err := base64.StdEncoding.DecodeString("qU0PY2s2snZ6bWQDV9PWuQ==")
	if err != nil {
		t.Fatal(err)
	}
	got, err := scramVerifier("secret", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if got != fromPostgres {
		t.Fatalf("got  %s\nwant %s", got, fromPostgres)
	}
}
