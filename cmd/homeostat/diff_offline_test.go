package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// homeostatNoCluster runs the command line with no way to find a cluster:
// KUBECONFIG unset and HOME empty, so any kubeconfig lookup would fail.
func homeostatNoCluster(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return homeostatIn(t, dir, append(env, "HOME="), args...)
}

// commitAll writes files into a working tree and commits them.
func commitAll(t *testing.T, repo *git.Repository, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "Ada", Email: "ada@example.com", When: time.Unix(1700000000, 0)}
	if _, err := wt.Commit("commit", &git.CommitOptions{Author: sig}); err != nil {
		t.Fatal(err)
	}
}

// `homeostat diff --base` reviews a pull request with no cluster: exit
// codes as kubectl diff's, each output format, problems as FILE:LINE.
func TestOfflineDiffNeedsNoCluster(t *testing.T) {
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: shop}\ndata: {color: %s}\n"
	commitAll(t, repo, dir, map[string]string{"clusters/prod/kustomization.yaml": "resources: [../../apps]\n", "apps/kustomization.yaml": "resources: [cm.yaml]\n", "apps/cm.yaml": strings.Replace(cm, "%s", "blue", 1)})
	commitAll(t, repo, dir, map[string]string{"apps/cm.yaml": strings.Replace(cm, "%s", "green", 1)})

	cases := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		inSubdir bool
	}{
		{"no differences", []string{"diff", "--base", "HEAD", "--head", "HEAD", "--path", "clusters/prod"}, 0, "0 added, 0 changed, 0 removed, 1 unchanged", "", false},
		{"differences", []string{"diff", "--base", "HEAD~1", "--head", "HEAD", "--path", "clusters/prod"}, 1, "+  color: green", "", false},
		{"markdown", []string{"diff", "--base", "HEAD~1", "--path", "clusters/prod", "-o", "markdown"}, 1, "| changed | `ConfigMap/shop/web` |", "", false},
		{"json", []string{"diff", "--base", "HEAD~1", "--path", "clusters/prod", "-o", "json", "."}, 1, `"action": "changed"`, "", true},
		{"bad revision", []string{"diff", "--base", "nope"}, 2, "", "resolve nope", false},
		{"bad output", []string{"diff", "--base", "HEAD", "-o", "yaml"}, 2, "", "--output must be text, markdown or json", false},
		{"head without base", []string{"diff", "--head", "HEAD", "."}, 2, "", "--head and --path need --base", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cwd := dir
			if c.inSubdir {
				cwd = filepath.Join(dir, "apps")
			}
			stdout, stderr, code := homeostatNoCluster(t, cwd, c.args...)
			if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, c.code, stdout, stderr)
			}
		})
	}

	// A broken head exits 2 with its FILE:LINE problems; an uncommitted
	// edit is the head without --head.
	if err := os.WriteFile(filepath.Join(dir, "apps/cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := homeostatNoCluster(t, dir, "diff", "--base", "HEAD", "--path", "apps")
	if code != 2 || !strings.Contains(stderr, "apps/cm.yaml:3: invalid YAML") || !strings.Contains(stderr, "working tree: 1 problem") {
		t.Fatalf("broken working tree: exit %d, stderr:\n%s", code, stderr)
	}
}

// `homeostat validate` and the offline diff catch what the API server
// would refuse, with no cluster: a misspelled field of a Deployment and a
// custom resource breaking its CRD, each at its FILE:LINE.
func TestValidateOffline(t *testing.T) {
	repo, err := filepath.Abs("../../render/schema/testdata/repo")
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := homeostatNoCluster(t, t.TempDir(), "validate", repo)
	for _, want := range []string{
		`bad-deployment.yaml:17: spec.template.spec.containers[0].imagePullPolcy: unknown field "imagePullPolcy"`,
		`widgets.yaml:10: spec.size: Unsupported value: "huge"`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if code != 1 || !strings.Contains(stdout, "no schema, not validated: cert-manager.io/v1 Certificate") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = homeostatNoCluster(t, ".", "validate", "--path", "examples", "../..")
	if code != 0 {
		t.Fatalf("examples: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	// The same check runs on the head of an offline diff.
	dir := t.TempDir()
	g, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	dep, err := os.ReadFile(filepath.Join(repo, "bad-deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	commitAll(t, g, dir, map[string]string{"apps/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"})
	commitAll(t, g, dir, map[string]string{"apps/dep.yaml": string(dep)})
	_, stderr, code = homeostatNoCluster(t, dir, "diff", "--base", "HEAD~1", "--head", "HEAD")
	if code != 2 || !strings.Contains(stderr, `apps/dep.yaml:17: spec.template.spec.containers[0].imagePullPolcy: unknown field`) {
		t.Fatalf("diff of a head breaking a schema: exit %d\nstderr:\n%s", code, stderr)
	}
}
