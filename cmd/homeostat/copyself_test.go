package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestCopySelfWritesAnExecutableCopy(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "shared", "homeostat")
	if code := run([]string{"copy-self", dest}); code != exitOK {
		t.Fatalf("copy-self exited %d", code)
	}
	self, _ := os.Executable()
	want, _ := os.ReadFile(self)
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("copy differs from the binary (err %v)", err)
	}
	if fi, _ := os.Stat(dest); fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("copy is not executable: %v", fi.Mode())
	}
}
