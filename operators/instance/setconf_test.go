package instance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The standby settings a rejoin writes replace their old values in
// homeostat.conf and leave every other setting (port, archiving, the
// user's parameters) as it was, quotes included.
func TestSetConfReplacesOnlyTheGivenSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), ConfFile)
	before := Config{Port: 6543, ListenAddresses: "*", SocketDir: "/run/pg", ArchiveCommand: `/bin/homeostat backup wal-push "%p"`,
		Parameters: map[string]string{"search_path": `"$user", public`},
		Primary:    &Upstream{Host: "old-rw", Port: 5432, User: "repl", PassFile: "/pgpass", Slot: "db_1", ApplicationName: "db_1"}}
	if err := os.WriteFile(path, []byte(RenderConf(before.Settings())), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := setConf(path, map[string]string{"primary_conninfo": "host=new-rw port=5432 user='re pl'", "primary_slot_name": "db_2"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := before.Settings()
	want["primary_conninfo"], want["primary_slot_name"] = "host=new-rw port=5432 user='re pl'", "db_2"
	if got := string(data); got != RenderConf(want) {
		t.Errorf("homeostat.conf after setConf:\n%s\nwant:\n%s", got, RenderConf(want))
	}
	if !strings.Contains(string(data), "port = '6543'") {
		t.Errorf("the instance's own port was lost:\n%s", data)
	}
}
