package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cliArgsEnv makes the test binary behave as the homeostat binary: the
// child process runs main's run() with these arguments (a JSON array), so a
// test sees real exit codes, stdout and stderr.
const cliArgsEnv = "HOMEOSTAT_TEST_CLI_ARGS"

func TestMainAsHomeostat(t *testing.T) {
	if env, ok := os.LookupEnv(cliArgsEnv); ok {
		var args []string
		if err := json.Unmarshal([]byte(env), &args); err != nil {
			t.Fatalf("%s: %v", cliArgsEnv, err)
		}
		os.Exit(run(args))
	}
}

// homeostat runs the command line in a child process.
func homeostat(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return homeostatIn(t, "", os.Environ(), args...)
}

// homeostatIn runs the command line in a child process in dir (the test's
// own when empty) with exactly env, and returns what it printed and its
// exit code.
func homeostatIn(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainAsHomeostat$")
	cmd.Dir = dir
	encoded, _ := json.Marshal(args)
	cmd.Env = append(env, cliArgsEnv+"="+string(encoded))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func TestRenderExamplesSucceeds(t *testing.T) {
	stdout, stderr, code := homeostat(t, "render", "../../examples")
	if code != exitOK {
		t.Fatalf("render examples/ exited %d:\n%s", code, stderr)
	}
	for _, want := range []string{"kind: Namespace", "kind: App", "kind: Deployment", "kind: Ingress",
		"kind: HorizontalPodAutoscaler", "kind: Postgres", "kind: Pipeline", "kind: ConfigMap",
		"# Source: examples/status/overlays/prod/kustomization.yaml"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	again, _, _ := homeostat(t, "render", "../../examples")
	if again != stdout {
		t.Error("two renders of the same tree printed different bytes")
	}
}

func TestRenderJSONIsAList(t *testing.T) {
	stdout, stderr, code := homeostat(t, "render", "--output", "json", "../../examples")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	var list struct {
		Kind  string                   `json:"kind"`
		Items []map[string]interface{} `json:"items"`
	}
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatalf("stdout is not JSON: %v", err)
	}
	if list.Kind != "List" || len(list.Items) < 10 {
		t.Errorf("got kind %q with %d items, want a List of every object", list.Kind, len(list.Items))
	}
}

func TestRenderBadTreeListsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("good.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n")
	write("apps/shop.yaml", "apiVersion: homeostat.dev/v1alpha1\nkind: App\nmetadata: {name: shop, namespace: web}\nspec:\n  image: nginx\n  port: 70000\n  replicas: -2\n")
	write("broken.yml", "kind: ConfigMap\nmetadata:\n  name: x\n data: 1\n")

	stdout, stderr, code := homeostat(t, "render", dir)
	if code != exitFailure {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitFailure, stderr)
	}
	if stdout != "" {
		t.Errorf("a rejected tree printed objects:\n%s", stdout)
	}
	for _, want := range []string{
		"apps/shop.yaml:6: spec.port: must be between 1 and 65535, got 70000\n",
		"apps/shop.yaml:7: spec.replicas: must be at least 0, got -2\n",
		"broken.yml:4: invalid YAML",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestRenderUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"render"},
		{"render", "a", "b"},
		{"render", "--output", "xml", "../../examples"},
		{"render", "--no-such-flag", "../../examples"},
	} {
		if _, stderr, code := homeostat(t, args...); code != exitUsage {
			t.Errorf("%v exited %d, want %d; stderr: %s", args, code, exitUsage, stderr)
		}
	}
	if _, _, code := homeostat(t, "render", filepath.Join(t.TempDir(), "missing")); code != exitFailure {
		t.Errorf("a missing PATH exited %d, want %d", code, exitFailure)
	}
}
