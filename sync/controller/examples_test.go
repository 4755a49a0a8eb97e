package controller

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	hsync "homeostat.dev/homeostat/sync"
)

// TestSyncExamples syncs the repository's examples/ (every kind, plain YAML
// and a kustomize overlay) twice: everything applies, then nothing changes.
func TestSyncExamples(t *testing.T) {
	f := newFixture(t, "sync-examples")
	files := map[string]string{}
	root := filepath.Join("..", "..", "examples")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".md") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.repo.commit("examples", files)
	o := f.run(TriggerManual)
	mustSucceed(t, o)
	if o.Changes.Count(hsync.Created) < 10 {
		t.Fatalf("examples created too little:\n%s", o.Changes)
	}
	f.writes.reset()
	o = f.run(TriggerInterval)
	mustSucceed(t, o)
	if o.Changes.Changed() {
		t.Fatalf("a second sync of the examples changed something:\n%s", o.Changes)
	}
}
