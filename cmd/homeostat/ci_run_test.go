package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"homeostat.dev/homeostat/operators/ci/agent"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// ciWorkspace is a fresh directory holding testdata/ci/NAME as its steps file.
func ciWorkspace(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "ci", name))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".homeostat-ci.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCIRunPasses(t *testing.T) {
	dir := ciWorkspace(t, "pass.yaml")
	if err := os.WriteFile(filepath.Join(dir, "marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := homeostat(t, "ci", "run", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"[greet] hello\n", "[files] found marker\n", "[agent] build succeeded in "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "warning: service db (postgres:16) is not started locally") {
		t.Errorf("no services warning:\n%s", stderr)
	}
}

func TestCIRunFailureStopsTheRestAndExitsOne(t *testing.T) {
	dir := ciWorkspace(t, "fail.yaml")
	stdout, stderr, code := homeostat(t, "ci", "run", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "[broken] about to fail\n") || strings.Contains(stdout, "[never]") {
		t.Fatalf("stdout:\n%s", stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "never-ran")); !os.IsNotExist(err) {
		t.Fatalf("the step after the failure ran")
	}
	for _, want := range []string{"never   Skipped    -     -", "broken  Failed     3", "error: step broken: exit code 3"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestCIRunTimeoutKillsTheStep(t *testing.T) {
	dir := ciWorkspace(t, "timeout.yaml")
	start := time.Now()
	_, stderr, code := homeostat(t, "ci", "run", dir)
	if code != 1 || !strings.Contains(stderr, "error: step hang: timed out after 1s") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("took %s", took)
	}
	b, err := os.ReadFile(filepath.Join(dir, "child.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil && !zombie(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the timed-out step's child %d still runs", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func zombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

func TestCIRunBadStepsFileNamesTheLine(t *testing.T) {
	dir := ciWorkspace(t, "bad.yaml")
	_, stderr, code := homeostat(t, "ci", "run", dir)
	if code != 1 || !strings.Contains(stderr, ".homeostat-ci.yaml:4: steps[0].pause: must be true or false\n") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

// lockedBuffer is read by the test while the child process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startHomeostat starts the command line as a child process and leaves it running.
func startHomeostat(t *testing.T, args ...string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainAsHomeostat$")
	encoded, _ := json.Marshal(args)
	cmd.Env = append(os.Environ(), cliArgsEnv+"="+string(encoded))
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, out
}

func waitOutput(t *testing.T, out *lockedBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("output never showed %q:\n%s", s, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCIAgentPausesUntilResumed runs a pause step in a real agent process,
// checks the readiness probe command sees the pause, and releases it with
// `homeostat ci resume --file`, another real process, writing the file the
// downward API would.
func TestCIAgentPausesUntilResumed(t *testing.T) {
	dir := ciWorkspace(t, "pause.yaml")
	resume := filepath.Join(t.TempDir(), "resume")
	paused := filepath.Join(t.TempDir(), "paused")
	if _, _, code := homeostat(t, "ci", "paused", paused); code != 1 {
		t.Fatalf("the readiness probe passed before any pause: exit %d", code)
	}
	cmd, out := startHomeostat(t, "ci", "agent", "--dir", dir, "--resume-file", resume, "--paused-file", paused)
	waitOutput(t, out, "[debug] paused until resumed or until the timeout at ")
	if _, _, code := homeostat(t, "ci", "paused", paused); code != 0 {
		t.Fatalf("the readiness probe fails while paused: exit %d", code)
	}
	time.Sleep(300 * time.Millisecond) // still paused a moment later
	if _, err := os.Stat(filepath.Join(dir, "after-ran")); !os.IsNotExist(err) {
		t.Fatalf("the step after the pause ran while paused")
	}
	if _, stderr, code := homeostat(t, "ci", "resume", "--file", resume); code != 0 {
		t.Fatalf("resume: exit %d %s", code, stderr)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ci run: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("not resumed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "[debug] resumed\n") {
		t.Fatalf("output:\n%s", out.String())
	}
	if _, _, code := homeostat(t, "ci", "paused", paused); code != 1 {
		t.Fatalf("the readiness probe still passes after resume: exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "after-ran")); err != nil {
		t.Fatalf("the step after the pause did not run: %v", err)
	}
}

// TestCIAgentWritesItsResult runs the pod's command and reads the
// termination message the Build controller would.
func TestCIAgentWritesItsResult(t *testing.T) {
	dir := ciWorkspace(t, "fail.yaml")
	result := filepath.Join(t.TempDir(), "termination-log")
	stdout, _, code := homeostat(t, "ci", "agent", "--dir", dir, "--result-file", result, "--resume-file", filepath.Join(dir, "none"))
	if code != 1 || !strings.Contains(stdout, "[broken] about to fail\n") {
		t.Fatalf("exit %d\n%s", code, stdout)
	}
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatal(err)
	}
	r, err := agent.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase != v1alpha1.BuildFailed || r.FailedStep != "broken" || len(r.Steps) != 3 || r.Steps[2].Phase != agent.StepSkipped {
		t.Fatalf("result %+v", r)
	}
}

// TestCIRunPausePrintsHowToResume: a local run says which file resumes it.
func TestCIRunPausePrintsHowToResume(t *testing.T) {
	dir := ciWorkspace(t, "pause.yaml")
	resume := filepath.Join(t.TempDir(), "resume")
	cmd, out := startHomeostat(t, "ci", "run", "--resume-file", resume, dir)
	waitOutput(t, out, "homeostat ci resume --file "+resume)
	if err := os.WriteFile(resume, []byte("true"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ci run: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("not resumed:\n%s", out.String())
	}
}
