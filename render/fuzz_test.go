package render

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzRender renders arbitrary trees. A tree is encoded as an archive of
// "-- name --" header lines, each followed by the file's content, and the
// corpus is seeded with every golden case under testdata/. Whatever the
// input, Render must not panic, must reject a tree with problems whole, must
// locate every problem in a file on one line, must name every object it
// returns, and must render the same tree to the same bytes twice.
func FuzzRender(f *testing.F) {
	cases, _ := filepath.Glob("testdata/*/in")
	for _, in := range cases {
		f.Add(archive(f, in))
	}
	f.Add([]byte("-- a.yaml --\napiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List}]\n"))
	f.Add([]byte("-- k/kustomization.yaml --\nresources: [../k]\n-- k/x.yaml --\nkind: X\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := unarchive(data)
		objs, problems := Render(fsys)
		if len(problems) > 0 {
			if objs != nil {
				t.Fatalf("%d problems but %d objects", len(problems), len(objs))
			}
			for _, p := range problems {
				if p.File == "" || p.Message == "" || strings.ContainsAny(p.Error(), "\r\n") {
					t.Fatalf("problem without a file or message, or on several lines: %#v", p)
				}
			}
			return
		}
		for _, o := range objs {
			if o.Object.GetKind() == "" || o.Object.GetName() == "" || o.Source.File == "" {
				t.Fatalf("object without kind, name or source: %v from %v", o.Object.Object, o.Source)
			}
		}
		var first, second bytes.Buffer
		if err := WriteYAML(&first, objs); err != nil {
			t.Fatalf("write: %v", err)
		}
		again, _ := Render(fsys)
		if err := WriteYAML(&second, again); err != nil {
			t.Fatalf("write: %v", err)
		}
		if !bytes.Equal(first.Bytes(), second.Bytes()) {
			t.Fatalf("two renders differ:\n%s\n---- vs ----\n%s", first.Bytes(), second.Bytes())
		}
	})
}

// archive encodes a folder as a fuzz input.
func archive(tb testing.TB, dir string) []byte {
	var b bytes.Buffer
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b.WriteString("-- " + filepath.ToSlash(rel) + " --\n")
		b.Write(data)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// unarchive decodes a fuzz input into a file system; names that fs.FS
// cannot hold are dropped, as a git checkout could not hold them either.
func unarchive(data []byte) fstest.MapFS {
	fsys := fstest.MapFS{}
	var name string
	var content []byte
	flush := func() {
		if name != "" && fs.ValidPath(name) && name != "." {
			fsys[name] = &fstest.MapFile{Data: content, Mode: 0o644}
		}
	}
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if strings.HasPrefix(s, "-- ") && strings.HasSuffix(s, " --") && len(s) > 6 {
			flush()
			name, content = strings.TrimSpace(s[3:len(s)-3]), nil
			continue
		}
		content = append(content, line...)
	}
	flush()
	// A name cannot be both a file and a folder.
	for n := range fsys {
		for dir := filepath.Dir(n); dir != "."; dir = filepath.Dir(dir) {
			delete(fsys, filepath.ToSlash(dir))
		}
	}
	return fsys
}
