// Package agent runs a build's steps as real processes: in order, each in its
// own process group with `sh -c`, output streamed line by line with the
// step's name in front, the first failure stopping the rest and the build's
// timeout killing whatever still runs. The same code runs inside a build pod
// (`homeostat ci agent`) and on a laptop (`homeostat ci run`), so a broken
// pipeline can be debugged without a cluster.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"homeostat.dev/homeostat/operators/ci/steps"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Step phases, as they appear in a Build's status.
const (
	StepSucceeded = "Succeeded"
	StepFailed    = "Failed"
	StepSkipped   = "Skipped"
)

// Result is how a run went. It is what the agent writes as the pod's
// termination message and what the Build controller copies into the status.
type Result struct {
	// Phase is Succeeded or Failed.
	Phase string `json:"phase"`
	// Steps hold one entry per step of the file, in order; those after a
	// failure are Skipped.
	Steps []v1alpha1.StepStatus `json:"steps,omitempty"`
	// FailedStep is the step that failed the run, if one did.
	FailedStep string `json:"failedStep,omitempty"`
	// Message explains a failure: a bad steps file, a timeout, an exit code.
	Message string `json:"message,omitempty"`
	// Duration of the whole run.
	Duration string `json:"duration,omitempty"`
}

// Resumer releases a paused step.
type Resumer interface {
	// Wait blocks until the build is resumed (nil) or ctx ends (its error).
	Wait(ctx context.Context) error
}

// Options configure one run.
type Options struct {
	// Dir is the workspace the steps run in.
	Dir string
	// Env is the environment the steps start from (os.Environ() usually);
	// the file's env is added on top.
	Env []string
	// Out receives every step's output and the agent's own lines, each
	// prefixed with "[step] ".
	Out io.Writer
	// Resume releases pause steps; with none, a pause waits for the timeout.
	Resume Resumer
	// ResumeHint tells a person how to resume a pause, printed when one starts.
	ResumeHint string
	// PausedFile, when set, exists exactly while a pause step waits. In a
	// pod, a readiness probe looks for it, so the pod's readiness (and the
	// Build's phase, Paused) shows that a person may exec in now.
	PausedFile string
	// Mask are secret values: they are written as *** wherever the log
	// and the result would show them.
	Mask []string
}

// masked returns opts with Out masking its values, once.
func (o Options) masked() Options {
	if len(o.Mask) > 0 {
		o.Out = newMasker(o.Out, o.Mask)
		o.Mask = nil
	}
	return o
}

// RunFile reads and validates the steps file at dir/file and runs it. A bad
// file is a failed Result naming the file and line, not an error: the build
// failed because of what its author wrote.
func RunFile(ctx context.Context, file string, opts Options) Result {
	mask := opts.Mask
	opts = opts.masked()
	r := runFile(ctx, file, opts)
	r.Message = MaskString(r.Message, mask)
	return r
}

func runFile(ctx context.Context, file string, opts Options) Result {
	data, err := os.ReadFile(filepath.Join(opts.Dir, file))
	if err != nil {
		r := Result{Phase: v1alpha1.BuildFailed, Message: fmt.Sprintf("read steps file: %v", err)}
		_, _ = fmt.Fprintf(opts.Out, "[agent] %s\n", r.Message)
		return r
	}
	f, problems := steps.Parse(file, data)
	if problems != nil {
		r := Result{Phase: v1alpha1.BuildFailed, Message: steps.Format(problems)}
		for _, p := range problems {
			_, _ = fmt.Fprintf(opts.Out, "[agent] %s\n", p.Error())
		}
		return r
	}
	return run(ctx, f, opts)
}

// Run runs the steps of f in order until one fails or the file's timeout
// passes; a timeout kills the running step's whole process group.
func Run(ctx context.Context, f *steps.File, opts Options) Result {
	mask := opts.Mask
	opts = opts.masked()
	r := run(ctx, f, opts)
	r.Message = MaskString(r.Message, mask)
	return r
}

func run(ctx context.Context, f *steps.File, opts Options) Result {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, f.Timeout)
	defer cancel()
	env := append(append([]string{}, opts.Env...), "CI=true", "HOMEOSTAT_CI=true")
	for _, e := range f.Env {
		env = append(env, e.Name+"="+e.Value)
	}
	res := Result{Phase: v1alpha1.BuildSucceeded}
	for _, s := range f.Steps {
		if res.Phase == v1alpha1.BuildFailed {
			res.Steps = append(res.Steps, v1alpha1.StepStatus{Name: s.Name, Phase: StepSkipped})
			continue
		}
		st, msg := runStep(ctx, s, env, opts, f.Timeout)
		res.Steps = append(res.Steps, st)
		if st.Phase == StepFailed {
			res.Phase, res.FailedStep, res.Message = v1alpha1.BuildFailed, s.Name, msg
		}
	}
	res.Duration = round(time.Since(start)).String()
	_, _ = fmt.Fprintf(opts.Out, "[agent] build %s in %s\n", strings.ToLower(res.Phase), res.Duration)
	return res
}

func runStep(ctx context.Context, s steps.Step, env []string, opts Options, timeout time.Duration) (v1alpha1.StepStatus, string) {
	start := time.Now()
	out := newPrefixWriter(opts.Out, s.Name)
	defer out.Flush()
	var code int32
	var msg string
	if s.Pause {
		code, msg = pause(ctx, s, out, opts)
	} else {
		code, msg = execute(ctx, s, env, opts.Dir, out)
	}
	switch {
	case code == 0:
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		msg = fmt.Sprintf("step %s: timed out after %s", s.Name, timeout)
	case ctx.Err() != nil:
		msg = fmt.Sprintf("step %s: stopped: the agent was interrupted", s.Name)
	}
	d := round(time.Since(start)).String()
	st := v1alpha1.StepStatus{Name: s.Name, Phase: StepSucceeded, ExitCode: &code, Duration: d}
	if code != 0 {
		st.Phase = StepFailed
	}
	out.Flush()
	_, _ = fmt.Fprintf(out, "%s (exit %d) in %s\n", strings.ToLower(st.Phase), code, d)
	return st, msg
}

// execute runs one step's script. The step gets its own process group so
// that a timeout (or the agent being stopped) kills everything it started,
// not just the shell.
func execute(ctx context.Context, s steps.Step, env []string, dir string, out io.Writer) (int32, string) {
	_, _ = fmt.Fprintf(out, "+ %s\n", firstLine(s.Run))
	cmd := exec.CommandContext(ctx, "sh", "-c", s.Run)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A background child that keeps the output pipe open must not hold the
	// build after the group is gone.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	// Kill what the step left running in the background even when it
	// succeeded: the next step starts from a clean process table.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, ""
	case errors.As(err, &exit):
		code := int32(exit.ExitCode())
		if code < 0 { // killed by a signal
			code = 128 + int32(exit.Sys().(syscall.WaitStatus).Signal())
		}
		return code, fmt.Sprintf("step %s: exit code %d", s.Name, code)
	default:
		return 127, fmt.Sprintf("step %s: %v", s.Name, err)
	}
}

func pause(ctx context.Context, s steps.Step, out io.Writer, opts Options) (int32, string) {
	deadline, _ := ctx.Deadline()
	hint := opts.ResumeHint
	if hint == "" {
		hint = "resume it"
	}
	_, _ = fmt.Fprintf(out, "paused until resumed or until the timeout at %s: %s\n", deadline.UTC().Format(time.RFC3339), hint)
	if opts.PausedFile != "" {
		if err := os.WriteFile(opts.PausedFile, []byte(s.Name+"\n"), 0o644); err != nil {
			_, _ = fmt.Fprintf(out, "cannot mark the pause in %s: %v\n", opts.PausedFile, err)
		}
		defer func() { _ = os.Remove(opts.PausedFile) }()
	}
	if opts.Resume == nil {
		<-ctx.Done()
		return 1, ""
	}
	if err := opts.Resume.Wait(ctx); err != nil {
		return 1, fmt.Sprintf("step %s: %v", s.Name, err)
	}
	_, _ = fmt.Fprintln(out, "resumed")
	return 0, ""
}

// FileResumer resumes when the file at Path holds "true". In a pod, Path is a
// downward-API file that mirrors the pod's resume annotation; locally it is
// a plain file a person writes.
type FileResumer struct {
	Path string
	// Interval between looks at the file; one second when zero.
	Interval time.Duration
}

var _ Resumer = FileResumer{}

// Wait polls the file until it says true or ctx ends.
func (r FileResumer) Wait(ctx context.Context) error {
	every := r.Interval
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if b, err := os.ReadFile(r.Path); err == nil && strings.TrimSpace(string(b)) == "true" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
