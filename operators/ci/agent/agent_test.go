package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// syncBuffer lets a test read the log while the agent still writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// workspace copies a testdata steps file into a fresh directory as the
// default steps file name.
func workspace(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".homeostat-ci.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func phases(r Result) string {
	var s []string
	for _, st := range r.Steps {
		code := "-"
		if st.ExitCode != nil {
			code = strconv.Itoa(int(*st.ExitCode))
		}
		s = append(s, st.Name+"="+st.Phase+"/"+code)
	}
	return strings.Join(s, " ")
}

func TestPassingStepsStreamPrefixedOutput(t *testing.T) {
	dir := workspace(t, "pass.yaml")
	var out syncBuffer
	r := RunFile(context.Background(), ".homeostat-ci.yaml", Options{Dir: dir, Env: []string{"PATH=" + os.Getenv("PATH")}, Out: &out})
	if r.Phase != v1alpha1.BuildSucceeded || r.FailedStep != "" || r.Message != "" {
		t.Fatalf("result %+v\nlog:\n%s", r, out.String())
	}
	if got := phases(r); got != "greet=Succeeded/0 multi=Succeeded/0" {
		t.Fatalf("steps %s", got)
	}
	log := out.String()
	for _, want := range []string{
		"[greet] + echo \"$GREETING from $PWD\"; echo to-stderr >&2\n",
		"[greet] hello from " + dir + "\n",
		"[greet] to-stderr\n",
		"[multi] + printf 'no newline' ...\n",
		"[multi] no newline",
		"[multi] succeeded (exit 0) in ",
		"[agent] build succeeded in ",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestFirstFailureStopsTheRest(t *testing.T) {
	dir := workspace(t, "fail.yaml")
	var out syncBuffer
	r := RunFile(context.Background(), ".homeostat-ci.yaml", Options{Dir: dir, Env: os.Environ(), Out: &out})
	if r.Phase != v1alpha1.BuildFailed || r.FailedStep != "broken" || r.Message != "step broken: exit code 3" {
		t.Fatalf("result %+v", r)
	}
	if got := phases(r); got != "first=Succeeded/0 broken=Failed/3 never=Skipped/-" {
		t.Fatalf("steps %s", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "never-ran")); !os.IsNotExist(err) {
		t.Fatalf("the step after the failure ran")
	}
	if !strings.Contains(out.String(), "[broken] about to fail\n[broken] failed (exit 3) in ") {
		t.Fatalf("log:\n%s", out.String())
	}
}

// TestTimeoutKillsTheProcessGroup proves a timeout kills not only the
// step's shell but what it started in the background.
func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	dir := workspace(t, "timeout.yaml")
	var out syncBuffer
	start := time.Now()
	r := RunFile(context.Background(), ".homeostat-ci.yaml", Options{Dir: dir, Env: os.Environ(), Out: &out})
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("the run took %s despite a 1s timeout", took)
	}
	if r.Phase != v1alpha1.BuildFailed || r.FailedStep != "hang" || r.Message != "step hang: timed out after 1s" {
		t.Fatalf("result %+v\nlog:\n%s", r, out.String())
	}
	if got := phases(r); got != "hang=Failed/137 after=Skipped/-" {
		t.Fatalf("steps %s", got)
	}
	pidText, err := os.ReadFile(filepath.Join(dir, "child.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidText)))
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("background child %d of the timed-out step still runs", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processAlive is false for a pid that is gone or a zombie waiting for a
// parent that is not us.
func processAlive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func TestPauseWaitsForResume(t *testing.T) {
	dir := workspace(t, "pause.yaml")
	resume := filepath.Join(t.TempDir(), "resume")
	paused := filepath.Join(t.TempDir(), "paused")
	var out syncBuffer
	done := make(chan Result, 1)
	go func() {
		done <- RunFile(context.Background(), ".homeostat-ci.yaml", Options{Dir: dir, Env: os.Environ(), Out: &out,
			Resume: FileResumer{Path: resume, Interval: 20 * time.Millisecond}, ResumeHint: "echo true > " + resume, PausedFile: paused})
	}()
	waitFor(t, &out, "[debug] paused until resumed")
	if b, err := os.ReadFile(paused); err != nil || string(b) != "debug\n" {
		t.Fatalf("paused file while paused: %q %v", b, err)
	}
	// The workspace stays in place while paused, and the next step waits.
	if _, err := os.Stat(filepath.Join(dir, "before.txt")); err != nil {
		t.Fatalf("workspace while paused: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "after.txt")); !os.IsNotExist(err) {
		t.Fatalf("the step after the pause ran before resume")
	}
	// An empty file is what the downward API shows without the annotation.
	if err := os.WriteFile(resume, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		t.Fatalf("an empty resume file released the pause: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	if err := os.WriteFile(resume, []byte("true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.Phase != v1alpha1.BuildSucceeded || phases(r) != "before=Succeeded/0 debug=Succeeded/0 after=Succeeded/0" {
			t.Fatalf("result %+v %s", r, phases(r))
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("not resumed; log:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "after.txt")); err != nil {
		t.Fatalf("the step after the pause did not run: %v", err)
	}
	if _, err := os.Stat(paused); !os.IsNotExist(err) {
		t.Fatalf("the paused file outlived the pause: %v", err)
	}
}

func TestPauseTimesOut(t *testing.T) {
	dir := workspace(t, "pause.yaml")
	data, _ := os.ReadFile(filepath.Join(dir, ".homeostat-ci.yaml"))
	data = bytes.Replace(data, []byte("timeout: 1m"), []byte("timeout: 300ms"), 1)
	if err := os.WriteFile(filepath.Join(dir, ".homeostat-ci.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := RunFile(context.Background(), ".homeostat-ci.yaml", Options{Dir: dir, Env: os.Environ(), Out: &syncBuffer{},
		Resume: FileResumer{Path: filepath.Join(dir, "no-such-file"), Interval: 20 * time.Millisecond}})
	if r.Phase != v1alpha1.BuildFailed || r.FailedStep != "debug" || r.Message != "step debug: timed out after 300ms" {
		t.Fatalf("result %+v", r)
	}
	if got := phases(r); got != "before=Succeeded/0 debug=Failed/1 after=Skipped/-" {
		t.Fatalf("steps %s", got)
	}
}

func TestBadStepsFileFailsWithFileAndLine(t *testing.T) {
	dir := workspace(t, "bad.yaml")
	var out syncBuffer
	r := RunFile(context.Background(), ".homeostat-ci.yaml", Options{Dir: dir, Env: os.Environ(), Out: &out})
	want := ".homeostat-ci.yaml:6: steps[1].pause: must be true or false\n.homeostat-ci.yaml:5: steps[1].run: required (or pause: true)"
	if r.Phase != v1alpha1.BuildFailed || r.Message != want || len(r.Steps) != 0 {
		t.Fatalf("result %+v", r)
	}
	if !strings.Contains(out.String(), "[agent] .homeostat-ci.yaml:6: steps[1].pause: must be true or false\n") {
		t.Fatalf("log:\n%s", out.String())
	}
}

func waitFor(t *testing.T, out *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log never showed %q:\n%s", s, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestInterruptStopsTheStep: a pod being deleted (SIGTERM to the agent) or
// Ctrl-C on a local run stops the step, and says so rather than "timeout".
func TestInterruptStopsTheStep(t *testing.T) {
	dir := workspace(t, "timeout.yaml")
	data, _ := os.ReadFile(filepath.Join(dir, ".homeostat-ci.yaml"))
	if err := os.WriteFile(filepath.Join(dir, ".homeostat-ci.yaml"), bytes.Replace(data, []byte("timeout: 1s"), []byte("timeout: 1h"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan Result, 1)
	go func() { done <- RunFile(ctx, ".homeostat-ci.yaml", Options{Dir: dir, Env: os.Environ(), Out: &out}) }()
	waitFor(t, &out, "[hang] started")
	cancel()
	select {
	case r := <-done:
		if r.Phase != v1alpha1.BuildFailed || r.Message != "step hang: stopped: the agent was interrupted" || phases(r) != "hang=Failed/137 after=Skipped/-" {
			t.Fatalf("result %+v %s", r, phases(r))
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the step was not stopped:\n%s", out.String())
	}
}
