package render

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"homeostat.dev/homeostat/internal/golden"
)

// TestGolden renders every testdata/<case>/in tree and compares the result
// with want.yaml (what a good tree renders to) or want.err (every problem of
// a bad tree, one per line, as the CLI prints them). A case has one or the
// other; `go test ./render -run TestGolden -update` rewrites them.
func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/*/in")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases under testdata/*/in (err %v)", err)
	}
	for _, in := range cases {
		dir := filepath.Dir(in)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			got, name := renderCase(t, in)
			wantFile := filepath.Join(dir, name)
			other := filepath.Join(dir, map[string]string{"want.yaml": "want.err", "want.err": "want.yaml"}[name])
			if golden.Update() {
				if err := os.WriteFile(wantFile, got, 0o644); err != nil {
					t.Fatal(err)
				}
				os.Remove(other)
				return
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				if _, e := os.Stat(other); e == nil {
					t.Fatalf("the case rendered to %s but only %s exists; got:\n%s", name, filepath.Base(other), got)
				}
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (run with -update to accept):\n%s", wantFile, golden.Diff(string(want), string(got)))
			}
		})
	}
}

// renderCase renders a tree and returns its output and the golden file it
// belongs in.
func renderCase(t *testing.T, in string) ([]byte, string) {
	t.Helper()
	objs, problems := Render(os.DirFS(in))
	if len(problems) > 0 {
		if objs != nil {
			t.Errorf("a tree with problems returned %d objects; it must be rejected whole", len(objs))
		}
		var b bytes.Buffer
		for _, p := range problems {
			b.WriteString(p.Error() + "\n")
		}
		return b.Bytes(), "want.err"
	}
	var b bytes.Buffer
	if err := WriteYAML(&b, objs); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), "want.yaml"
}
