// Package golden compares test output with files under testdata/, the one
// copy of the -update flag and comparison every package's golden tests use
// (they each had their own, and a second registration of the same flag in a
// test binary panics).
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ instead of comparing with them")

// Update reports whether the test binary runs with -update, for tests that
// decide themselves which golden file a result belongs in.
func Update() bool { return *update }

// Assert fails t when got differs from the file at path, showing the first
// lines where they part; with -update it writes got to path (creating its
// folder) so that the change shows up in review as a diff of the file.
func Assert(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run the test with -update to accept, then review the file's diff):\n%s", path, Diff(string(want), string(got)))
	}
}

// Diff shows the first lines where two texts part, enough to see why a
// golden file no longer matches without printing the whole of it.
func Diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		if line(w, i) == line(g, i) {
			continue
		}
		var b strings.Builder
		for j := i; j < i+5 && j < len(w); j++ {
			b.WriteString("- " + w[j] + "\n")
		}
		for j := i; j < i+5 && j < len(g); j++ {
			b.WriteString("+ " + g[j] + "\n")
		}
		return "line " + strconv.Itoa(i+1) + ":\n" + b.String()
	}
	return "(no difference)"
}

func line(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "\x00end"
}
