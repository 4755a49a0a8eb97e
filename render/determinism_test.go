package render

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"homeostat.dev/homeostat/internal/golden"
)

// The same tree renders to the same bytes every time, even though Go
// randomises map iteration, and even when several renders run at once (the
// controller renders several Syncs concurrently; kustomize keeps global
// state).
func TestSameTreeSameBytes(t *testing.T) {
	trees, _ := filepath.Glob("testdata/*/in")
	trees = append(trees, "../examples")
	for _, in := range trees {
		first := renderBytes(t, in)
		var wg sync.WaitGroup
		results := make([][]byte, 4)
		for i := range results {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				results[i] = renderBytes(t, in)
			}(i)
		}
		wg.Wait()
		for _, got := range results {
			if !bytes.Equal(got, first) {
				t.Errorf("%s: renders differ:\n%s", in, golden.Diff(string(first), string(got)))
				break
			}
		}
	}
}

// renderBytes is the YAML of a good tree, or the problem list of a bad one.
func renderBytes(t *testing.T, dir string) []byte {
	objs, problems := Render(os.DirFS(dir))
	var b bytes.Buffer
	for _, p := range problems {
		b.WriteString(p.Error() + "\n")
	}
	if err := WriteYAML(&b, objs); err != nil {
		t.Error(err)
	}
	return b.Bytes()
}
