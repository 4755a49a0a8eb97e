package instance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestRefreshPassFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, before, password string
		want                   string // "" for no file afterwards
		changed                bool
	}{
		{"a primary has no passfile", "", "new", "", false},
		{"rotated", passfileLine("db-rw", 5432, "streaming_replica", "old"), "new",
			passfileLine("db-rw", 5432, "streaming_replica", "new"), true},
		{"escapes survive the round trip", passfileLine(`h:1`, 5432, `u\x`, "old"), `p:w\d`,
			passfileLine(`h:1`, 5432, `u\x`, `p:w\d`), true},
		{"already current", passfileLine("db-rw", 5432, "streaming_replica", "same"), "same",
			passfileLine("db-rw", 5432, "streaming_replica", "same"), false},
		{"no password given", passfileLine("db-rw", 5432, "streaming_replica", "old"), "",
			passfileLine("db-rw", 5432, "streaming_replica", "old"), false},
		{"a line not written by join is kept", "*:*:*:someone:secret\n" + passfileLine("db-rw", 5432, "r", "old"), "new",
			"*:*:*:someone:secret\n" + passfileLine("db-rw", 5432, "r", "new"), true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("pgpass-%d", i))
			if tt.before != "" {
				if err := os.WriteFile(path, []byte(tt.before), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			changed, err := refreshPassFile(path, tt.password)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if tt.want == "" {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("a passfile appeared: %q (%v)", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if changed != tt.changed || string(got) != tt.want {
				t.Fatalf("changed=%v %q, want %v %q", changed, got, tt.changed, tt.want)
			}
			if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v, want 0600", info.Mode().Perm())
			}
		})
	}
}
