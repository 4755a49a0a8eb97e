package review

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"homeostat.dev/homeostat/internal/golden"
	"homeostat.dev/homeostat/render"
)

// repo is a real repository with a working tree, committed to with fixed
// times so that commit hashes (and so golden files) are stable.
type repo struct {
	t    *testing.T
	dir  string
	git  *git.Repository
	tick int
}

func newRepo(t *testing.T) *repo {
	t.Helper()
	dir := t.TempDir()
	g, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")}})
	if err != nil {
		t.Fatal(err)
	}
	return &repo{t: t, dir: dir, git: g}
}

// write changes files in the working tree ("" deletes).
func (r *repo) write(files map[string]string) {
	r.t.Helper()
	for p, content := range files {
		full := filepath.Join(r.dir, p)
		if content == "" {
			if err := os.Remove(full); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *repo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	r.write(files)
	wt, err := r.git.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		r.t.Fatal(err)
	}
	r.tick++
	sig := &object.Signature{Name: "Ada Lovelace", Email: "ada@example.com", When: time.Unix(1700000000+int64(r.tick), 0).UTC()}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		r.t.Fatal(err)
	}
	return h.String()
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: %d
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:%s
`

const secret = `apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: %s
`

// pullRequest is a repository whose main has a base commit and a head
// commit: a Deployment changed, a Secret's value changed, a ConfigMap
// removed, a Service added, all inside an overlay that uses ../../base.
func pullRequest(t *testing.T) *repo {
	r := newRepo(t)
	r.commit("base", map[string]string{
		"base/kustomization.yaml":          "resources: [deployment.yaml, secret.yaml, config.yaml]\n",
		"base/deployment.yaml":             fmt.Sprintf(deployment, 1, "1.25"),
		"base/secret.yaml":                 fmt.Sprintf(secret, "hunter2"),
		"base/config.yaml":                 "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: old}\ndata: {a: \"1\"}\n",
		"clusters/prod/kustomization.yaml": "namespace: prod\nresources: [namespace.yaml, ../../base]\n",
		"clusters/prod/namespace.yaml":     "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n",
	})
	r.commit("head", map[string]string{
		"base/kustomization.yaml": "resources: [deployment.yaml, secret.yaml, service.yaml]\n",
		"base/deployment.yaml":    fmt.Sprintf(deployment, 2, "1.27"),
		"base/secret.yaml":        fmt.Sprintf(secret, "correct-horse"),
		"base/config.yaml":        "",
		"base/service.yaml":       "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
	})
	return r
}

// Each output of one pull request, against its golden file.
func TestOutputsGolden(t *testing.T) {
	r := pullRequest(t)
	rep, err := Run(Options{RepoDir: r.dir, Base: "HEAD~1", Head: "main", Path: "clusters/prod"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary() != "1 added, 2 changed, 1 removed, 1 unchanged" {
		t.Fatalf("summary %q\n%+v", rep.Summary(), rep.Changes)
	}
	for _, out := range []struct {
		file  string
		write func(*bytes.Buffer) error
	}{
		{"diff.txt", func(b *bytes.Buffer) error { return WriteText(b, rep) }},
		{"diff.md", func(b *bytes.Buffer) error { return WriteMarkdown(b, rep, CommentLimit) }},
		{"diff.json", func(b *bytes.Buffer) error { return WriteJSON(b, rep) }},
	} {
		t.Run(out.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := out.write(&b); err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, filepath.Join("testdata", out.file), b.Bytes())
			if strings.Contains(b.String(), "hunter2") || strings.Contains(b.String(), "correct-horse") {
				t.Fatalf("a Secret value leaked into %s", out.file)
			}
		})
	}
}

// Without --head, the working tree is the head: uncommitted edits show.
func TestWorkingTreeIsTheDefaultHead(t *testing.T) {
	r := pullRequest(t)
	r.write(map[string]string{"base/deployment.yaml": fmt.Sprintf(deployment, 2, "1.29")})
	rep, err := Run(Options{RepoDir: filepath.Join(r.dir, "clusters"), Base: "HEAD", Path: "./clusters/prod"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Changes) != 1 || rep.Changes[0].Object != "Deployment/prod/web" || !strings.Contains(rep.Changes[0].Diff, "+      - image: nginx:1.29") {
		t.Fatalf("want the uncommitted image edit, got %+v", rep.Changes)
	}
	if rep.Head.String() != "working tree" || rep.Unchanged != 3 {
		t.Fatalf("head %s, unchanged %d", rep.Head, rep.Unchanged)
	}
}

// The same revision on both sides has no changes; a path missing at base
// (a new cluster folder) compares with nothing; a head that does not
// render is an error with every FILE:LINE; a bad revision is an error.
func TestRunOutcomes(t *testing.T) {
	r := pullRequest(t)
	r.commit("broken", map[string]string{"clusters/prod/kustomization.yaml": "namespace: prod\nresources: [namespace.yaml,\n  ../../base\n"})
	r.commit("new cluster", map[string]string{"clusters/qa/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: qa}\n"})
	cases := []struct {
		name             string
		opts             Options
		summary, problem string
	}{
		{"no changes", Options{Base: "HEAD~2", Head: "HEAD~2", Path: "clusters/prod"}, "0 added, 0 changed, 0 removed, 4 unchanged", ""},
		{"new folder", Options{Base: "HEAD~1", Head: "HEAD", Path: "clusters/qa"}, "1 added, 0 changed, 0 removed, 0 unchanged", ""},
		{"head does not render", Options{Base: "HEAD~2", Head: "HEAD~1", Path: "clusters/prod"}, "", "clusters/prod/kustomization.yaml:3: invalid YAML"},
		{"unknown revision", Options{Base: "no-such-branch", Path: "."}, "", "resolve no-such-branch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.RepoDir = r.dir
			rep, err := Run(c.opts)
			if c.problem == "" {
				if err != nil || rep.Summary() != c.summary {
					t.Fatalf("got %q, %v; want %q", rep.Summary(), err, c.summary)
				}
				return
			}
			msg := fmt.Sprint(err)
			var re *RenderError
			if errors.As(err, &re) {
				msg = problems(re.Problems)
			}
			if !strings.Contains(msg, c.problem) {
				t.Fatalf("got %q, want it to contain %q", msg, c.problem)
			}
		})
	}
}

func problems(ps []render.Problem) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Error())
	}
	return strings.Join(s, "\n")
}

// A comment never exceeds GitHub's limit: diffs that do not fit are left
// out with a note, and the table is cut too when it alone is too long.
func TestMarkdownTruncates(t *testing.T) {
	for _, n := range []int{40, 4000} {
		rep := Report{Base: Revision{Ref: "main"}, Head: Revision{Ref: "working tree"}, Path: "."}
		for i := 0; i < n; i++ {
			rep.Changes = append(rep.Changes, Change{Action: Changed, Object: fmt.Sprintf("ConfigMap/ns/cm-%04d", i),
				Source: render.Source{File: "cms.yaml", Line: i + 1}, Diff: strings.Repeat("+  key: value\n", 200)})
		}
		var b bytes.Buffer
		if err := WriteMarkdown(&b, rep, CommentLimit); err != nil {
			t.Fatal(err)
		}
		if got := len([]rune(b.String())); got > CommentLimit || !strings.Contains(b.String(), "**Truncated**") {
			t.Fatalf("%d changes: %d characters (limit %d), truncation note present: %v", n, got, CommentLimit, strings.Contains(b.String(), "**Truncated**"))
		}
		if !strings.HasSuffix(strings.TrimSpace(b.String()), "locally for the rest.") {
			t.Fatalf("%d changes: the comment does not end with the note", n)
		}
	}
}
