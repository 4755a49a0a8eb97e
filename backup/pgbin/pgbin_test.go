package pgbin

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestGlobNewestFirstOrdersByMajorVersion(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9", "15", "13", "16"} {
		if err := os.MkdirAll(filepath.Join(root, v, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got := globNewestFirst(filepath.Join(root, "*", "bin"))
	var versions []string
	for _, d := range got {
		versions = append(versions, filepath.Base(filepath.Dir(d)))
	}
	if want := []string{"16", "15", "13", "9"}; !reflect.DeepEqual(versions, want) {
		t.Fatalf("got %v, want %v", versions, want)
	}
}

func TestFindDirHonoursOverrideAndNeedsEveryProgram(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvBinDir, dir)
	if _, err := findDir(); err == nil || !strings.Contains(err.Error(), EnvBinDir) {
		t.Fatalf("an empty override directory: got %v, want an error naming %s", err, EnvBinDir)
	}
	for _, name := range required {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := findDir(); err != nil || got != dir {
		t.Fatalf("got %q, %v; want %q", got, err, dir)
	}
}

// The machine running the tests has PostgreSQL installed (.ci/run installs it).
func TestDirFindsInstalledServer(t *testing.T) {
	d, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	if !complete(d) {
		t.Fatalf("%s lacks one of %v", d, required)
	}
}

func TestReadPostmaster(t *testing.T) {
	dir := t.TempDir()
	pid := "4242\n/var/lib/postgresql/data\n1700000000\n5433\n/var/run/postgresql\n*\n  5433001    327680\nready   \n"
	if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(pid), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPostmaster(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Postmaster{PID: 4242, Port: 5433, SocketDir: "/var/run/postgresql"}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, err := ReadPostmaster(t.TempDir()); err == nil || !strings.Contains(err.Error(), "is the server running") {
		t.Fatalf("no postmaster.pid: %v", err)
	}
}
