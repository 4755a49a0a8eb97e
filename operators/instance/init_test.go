package instance_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// init creates a primary with checksums, our settings (user parameters
// merged over them), the replication and app roles with scram passwords and
// the app database; network logins need the password, the superuser is
// trusted only on the unix socket. Re-running init only rewrites settings.
func TestInitCreatesAPrimaryWithRolesAndSettings(t *testing.T) {
	n := newNode(t, "primary")
	homeostatOut(t, n.initArgs("--parameter", "work_mem=8MB")...)
	n.run(t)
	su := n.superuser(t)
	for setting, want := range map[string]string{
		"data_checksums":      "on",
		"wal_level":           "replica",
		"work_mem":            "8MB",
		"password_encryption": "scram-sha-256",
		"archive_mode":        "off",
		"listen_addresses":    "127.0.0.1",
	} {
		if got := queryString(t, su, "SHOW "+setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	if got := queryString(t, su, "SELECT rolreplication::text FROM pg_roles WHERE rolname = 'streaming_replica'"); got != "true" {
		t.Errorf("streaming_replica has no REPLICATION")
	}
	if got := queryString(t, su, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'"); got != "app" {
		t.Errorf("database app owned by %q, want app", got)
	}

	tcp := func(user, password, db string) error {
		c := open(t, fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable", n.port, user, password, db))
		return c.Ping()
	}
	if err := tcp("app", appPassword, "app"); err != nil {
		t.Errorf("app cannot log in over TCP with its password: %v", err)
	}
	if err := tcp("postgres", superPassword, "postgres"); err != nil {
		t.Errorf("superuser cannot log in over TCP with its password: %v", err)
	}
	if err := tcp("app", "wrong", "app"); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("a wrong password: got %v, want password authentication failed", err)
	}
	if err := tcp("postgres", "", "postgres"); err == nil {
		t.Error("superuser logged in over TCP without a password")
	}

	for _, f := range []string{"postgresql.conf", "homeostat.conf", "pg_hba.conf", "postgresql.auto.conf"} {
		b, _ := os.ReadFile(filepath.Join(n.pgdata, f))
		noSecrets(t, f, string(b))
	}

	// Again on the existing directory: settings change, nothing else.
	homeostatOut(t, n.initArgs("--parameter", "work_mem=16MB")...)
	if _, err := su.Exec("SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10e9, "work_mem reloaded", func() bool { return queryString(t, su, "SHOW work_mem") == "16MB" })
}
