package instance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

func TestServerMajor(t *testing.T) {
	for out, want := range map[string]string{
		"postgres (PostgreSQL) 15.10 (Debian 15.10-1.pgdg120+1)\n": "15",
		"postgres (PostgreSQL) 16.4":                               "16",
		"postgres (PostgreSQL) 17beta1":                            "17",
		"postgres (PostgreSQL) 9.6.24":                             "9.6",
	} {
		if got, err := serverMajor(out); err != nil || got != want {
			t.Errorf("serverMajor(%q) = %q, %v; want %q", out, got, err, want)
		}
	}
	if _, err := serverMajor("command not found"); err == nil {
		t.Error("serverMajor of no version: no error")
	}
}

// The installed postgres binary's major is compared with PG_VERSION: a
// data directory of another major is refused, naming both; its own passes.
func TestCheckMajorWithTheRealBinaries(t *testing.T) {
	dir := t.TempDir()
	write := func(v string) {
		if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("1")
	var mm *MajorMismatch
	if err := checkMajor(context.Background(), dir); !errors.As(err, &mm) || mm.Data != "1" || !regexp.MustCompile(`^\d+$`).MatchString(mm.Binaries) {
		t.Fatalf("PG_VERSION 1: %v, want a mismatch naming both majors", err)
	}
	write(mm.Binaries)
	if err := checkMajor(context.Background(), dir); err != nil {
		t.Errorf("PG_VERSION %s, the binaries' own: %v", mm.Binaries, err)
	}
	other := "16"
	if mm.Binaries == other {
		other = "15"
	}
	write(other)
	if err := checkMajor(context.Background(), dir); !errors.As(err, &mm) || mm.Data != other {
		t.Errorf("PG_VERSION %s: %v", other, err)
	}
	if err := checkMajor(context.Background(), t.TempDir()); err == nil || errors.As(err, &mm) {
		t.Errorf("no PG_VERSION: %v, want a read error, not a mismatch", err)
	}
}
