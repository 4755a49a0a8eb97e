package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// cliRepo is a git repository made with the git CLI; its work tree is also
// the PATH that `homeostat diff` reads.
type cliRepo struct {
	t   *testing.T
	dir string
}

func newCLIRepo(t *testing.T) *cliRepo {
	r := &cliRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *cliRepo) git(args ...string) {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// write changes the work tree (content "" deletes) without committing.
func (r *cliRepo) write(files map[string]string) {
	r.t.Helper()
	for p, c := range files {
		full := filepath.Join(r.dir, p)
		if c == "" {
			if err := os.Remove(full); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *cliRepo) commit(msg string) {
	r.git("add", "-A")
	r.git("commit", "-q", "--allow-empty", "-m", msg)
}

func cm(name, value string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  value: \"" + value + "\"\n"
}

// TestSyncDiffAndSnapshotsCommands drives the commands as a user would, in
// child processes, against one real API server.
func TestSyncDiffAndSnapshotsCommands(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()
	repo := newCLIRepo(t)
	cache := t.TempDir()
	kube := []string{"--kubeconfig", env.Kubeconfig}
	run := func(args ...string) (string, string, int) {
		t.Helper()
		return homeostat(t, append(args, kube...)...)
	}
	syncOnce := func() (string, string, int) {
		return run("sync", "--repo", "file://"+repo.dir, "--name", "apps", "-n", "cli", "--wait=false", "--once", "--cache-dir", cache)
	}
	value := func(name string) string {
		var c corev1.ConfigMap
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "cli", Name: name}, &c); err != nil {
			return "<" + err.Error() + ">"
		}
		return c.Data["value"]
	}

	repo.write(map[string]string{"a.yaml": cm("a", "1"), "b.yaml": cm("b", "1")})
	repo.commit("v1")
	out, errOut, code := syncOnce()
	if code != 0 || !strings.Contains(out, "ConfigMap/cli/a created") || value("a") != "1" {
		t.Fatalf("first sync --once: exit %d\n%s\n%s", code, out, errOut)
	}

	// diff: nothing to do, then differences, as text and markdown.
	if out, errOut, code := run("diff", repo.dir, "--sync", "apps", "-n", "cli"); code != 0 || !strings.Contains(out, "0 to create, 0 to change, 0 to prune") {
		t.Fatalf("diff of the synced tree: exit %d\n%s\n%s", code, out, errOut)
	}
	repo.write(map[string]string{"a.yaml": cm("a", "2"), "b.yaml": "", "c.yaml": cm("c", "1")})
	out, errOut, code = run("diff", repo.dir, "--sync", "apps", "-n", "cli")
	if code != 1 {
		t.Fatalf("diff with changes: exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"configured ConfigMap/cli/a (a.yaml:1)", `-  value: "1"`, `+  value: "2"`, "created ConfigMap/cli/c", "pruned ConfigMap/cli/b", "1 to create, 1 to change, 1 to prune"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "managedFields") {
		t.Errorf("diff shows managed fields:\n%s", out)
	}
	md, _, code := run("diff", repo.dir, "--sync", "apps", "-n", "cli", "--output", "markdown")
	if code != 1 || !strings.Contains(md, "### homeostat diff") || !strings.Contains(md, "| configured | `ConfigMap/cli/a` |") || !strings.Contains(md, "```diff") {
		t.Fatalf("markdown diff: exit %d\n%s", code, md)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "broken.yaml"), []byte("kind: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run("diff", bad); code != 2 || !strings.Contains(errOut, "broken.yaml") {
		t.Fatalf("diff of a bad tree: exit %d, want 2\n%s", code, errOut)
	}
	if _, _, code := run("diff", repo.dir, "--output", "html"); code != 2 {
		t.Fatalf("bad --output: exit %d, want 2", code)
	}

	repo.commit("v2")
	if out, errOut, code := syncOnce(); code != 0 || !strings.Contains(out, "ConfigMap/cli/b pruned") || value("a") != "2" {
		t.Fatalf("second sync: exit %d\n%s\n%s", code, out, errOut)
	}

	// snapshots list, show, diff, rollback, and resume.
	out, _, code = run("snapshots", "list", "-n", "cli")
	names := regexp.MustCompile(`(?m)^(apps-\S+)`).FindAllString(out, -1)
	if code != 0 || len(names) != 2 {
		t.Fatalf("snapshots list: exit %d\n%s", code, out)
	}
	newest, oldest := names[0], names[1]
	if out, _, code := run("snapshots", "show", oldest, "-n", "cli"); code != 0 || !strings.Contains(out, "Message:   v1") || !strings.Contains(out, "2 created") {
		t.Fatalf("snapshots show: exit %d\n%s", code, out)
	}
	if out, _, code := run("snapshots", "diff", oldest, newest, "-n", "cli"); code != 0 || !strings.Contains(out, "configured ConfigMap/cli/a") || !strings.Contains(out, "pruned ConfigMap/cli/b") {
		t.Fatalf("snapshots diff: exit %d\n%s", code, out)
	}
	if out, errOut, code := run("snapshots", "rollback", oldest, "-n", "cli"); code != 0 || value("a") != "1" || value("b") != "1" {
		t.Fatalf("rollback: exit %d a=%s b=%s\n%s\n%s", code, value("a"), value("b"), out, errOut)
	}
	if _, errOut, code := syncOnce(); code != 1 || !strings.Contains(errOut, "suspended") {
		t.Fatalf("sync of a rolled-back Sync: exit %d, want 1 saying it is suspended\n%s", code, errOut)
	}
	if _, errOut, code := run("sync", "resume", "apps", "-n", "cli"); code != 0 {
		t.Fatalf("resume: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := syncOnce(); code != 0 || value("a") != "2" {
		t.Fatalf("sync after resume: exit %d a=%s\n%s", code, value("a"), errOut)
	}

	// A bad commit fails the sync, exit 1, naming the file.
	repo.write(map[string]string{"broken.yaml": "kind: [\n"})
	repo.commit("broken")
	if _, errOut, code := syncOnce(); code != 1 || !strings.Contains(errOut, "broken.yaml") || value("a") != "2" {
		t.Fatalf("sync of a bad commit: exit %d\n%s", code, errOut)
	}

	// spec.dependsOn is honoured as the controller honours it: while the
	// Sync it names is not Ready, `sync --once` applies nothing, exits 1
	// naming it, records why, and keeps spec.dependsOn.
	var s v1alpha1.Sync
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "cli", Name: "apps"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Spec.DependsOn = []v1alpha1.SyncReference{{Name: "db"}}
	limit := int32(40)
	s.Spec.PruneLimit, s.Spec.Force = &limit, true
	if err := env.Client.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	repo.write(map[string]string{"broken.yaml": "", "a.yaml": cm("a", "3")})
	repo.commit("v3")
	if _, errOut, code := syncOnce(); code != 1 || !strings.Contains(errOut, "dependency cli/db") || value("a") != "2" {
		t.Fatalf("sync --once before its dependency exists: exit %d, a=%s, want 1 naming cli/db\n%s", code, value("a"), errOut)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "cli", Name: "apps"}, &s); err != nil {
		t.Fatal(err)
	}
	ready := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady)
	if len(s.Spec.DependsOn) != 1 || ready == nil || ready.Reason != "DependencyNotReady" {
		t.Fatalf("after sync --once: dependsOn %v, Ready %+v", s.Spec.DependsOn, ready)
	}
	if s.Spec.PruneLimit == nil || *s.Spec.PruneLimit != 40 || !s.Spec.Force {
		t.Fatalf("sync --once reset fields it has no flag for: pruneLimit %v force %v", s.Spec.PruneLimit, s.Spec.Force)
	}
	db := newCLIRepo(t)
	db.write(map[string]string{"db.yaml": cm("db-settings", "1")})
	db.commit("db")
	if _, errOut, code := run("sync", "--repo", "file://"+db.dir, "--name", "db", "-n", "cli", "--wait=false", "--once", "--cache-dir", cache); code != 0 {
		t.Fatalf("sync of the dependency: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := syncOnce(); code != 0 || value("a") != "3" {
		t.Fatalf("sync --once once its dependency is Ready: exit %d a=%s\n%s", code, value("a"), errOut)
	}
}
