package render

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A symbolic link could make render read a file outside the repository (a
// service account token, say), so a linked manifest is a problem, not read.
func TestSymlinkedManifestIsAProblem(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret.yaml")
	if err := os.WriteFile(outside, []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: leaked}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(repo, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	objs, problems := Render(os.DirFS(repo))
	if objs != nil || len(problems) != 1 || problems[0].File != "link.yaml" || !strings.Contains(problems[0].Message, "symbolic link") {
		t.Fatalf("got %d objects and problems %v, want one problem about link.yaml", len(objs), problems)
	}
}
