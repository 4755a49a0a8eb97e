package instance_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"homeostat.dev/homeostat/operators/instance"
)

// `instance run` on a data directory of another major than its binaries
// exits instance.ExitImageVersionMismatch before starting postgres, and leaves the
// reason in the termination log, where the operator reads it.
func TestRunRefusesADataDirectoryOfAnotherMajor(t *testing.T) {
	dir := t.TempDir()
	pgdata := filepath.Join(dir, "pgdata")
	if err := os.MkdirAll(pgdata, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pgdata, "PG_VERSION"), []byte("1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	term := filepath.Join(dir, "termination-log")
	out, err := exec.Command(homeostat, "instance", "run", "--pgdata", pgdata, "--termination-log", term).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != instance.ExitImageVersionMismatch {
		t.Fatalf("instance run: %v, want exit %d\n%s", err, instance.ExitImageVersionMismatch, out)
	}
	msg, err := os.ReadFile(term)
	if err != nil || !regexp.MustCompile(`binaries are PostgreSQL \d+ but the data directory is PostgreSQL 1 `).Match(msg) {
		t.Errorf("termination log %q (%v)", msg, err)
	}
	if _, err := os.Stat(filepath.Join(pgdata, "postmaster.pid")); err == nil {
		t.Error("postgres was started")
	}
}
