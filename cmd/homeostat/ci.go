package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/operators/ci"
	"homeostat.dev/homeostat/operators/ci/agent"
	"homeostat.dev/homeostat/operators/ci/steps"
	"homeostat.dev/homeostat/render/api/v1alpha1"
	"homeostat.dev/homeostat/sync/webhook"
)

func init() {
	register(newCICommand)
	controllerSetups = append(controllerSetups, setupCI)
	pushHandlers = append(pushHandlers, ciPushHandler)
}

// ciPipelines is the running Pipeline controller, for the push handler.
var ciPipelines *ci.PipelineReconciler

// setupCI adds the Pipeline and Build controllers. Build pods copy homeostat
// from $HOMEOSTAT_IMAGE (the deploy base sets it to the controller's image).
func setupCI(mgr ctrl.Manager) error {
	image := os.Getenv("HOMEOSTAT_IMAGE")
	if image == "" {
		image = "ghcr.io/homeostat/homeostat:" + version
	}
	ciPipelines = &ci.PipelineReconciler{Client: mgr.GetClient()}
	if err := ciPipelines.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setup pipeline controller: %w", err)
	}
	b := &ci.BuildReconciler{Client: mgr.GetClient(), Pod: ci.PodOptions{Image: image}, Recorder: mgr.GetEventRecorder("homeostat-ci")}
	if err := b.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setup build controller: %w", err)
	}
	return nil
}

// ciPushHandler polls, at once, the Pipelines of a pushed repository.
func ciPushHandler(ctrl.Manager) webhook.Handler {
	return webhook.HandlerFunc(func(ctx context.Context, e webhook.PushEvent) error {
		if ciPipelines == nil {
			return nil
		}
		_, err := ciPipelines.Trigger(ctx, e.RepoURLs)
		return err
	})
}

func newCICommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ci",
		Short: "Run CI steps locally, and inspect, resume and re-run builds",
	}
	cmd.AddCommand(newCIRunCommand(), newCIAgentCommand(), newCIPausedCommand(), newCIResumeCommand(), newCIRerunCommand(), newCILogsCommand(), newCIShipLogCommand())
	return cmd
}

func newCIRunCommand() *cobra.Command {
	var file, resumeFile string
	cmd := &cobra.Command{
		Use:   "run [DIR]",
		Short: "Run a repository's CI steps on this machine",
		Long: `Run the steps file of DIR (default: the current directory) here, with the
same agent a build pod runs: steps in order in DIR, output prefixed by step,
the first failure stopping the rest, the file's timeout killing what runs.
Services are not started locally (start them yourself on localhost);
secretEnv variables are taken from this environment. A pause step waits
until the resume file holds "true" (homeostat ci resume --file FILE).
Exit code 0 when every step passed, 1 otherwise.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			if resumeFile == "" {
				resumeFile = filepath.Join(os.TempDir(), fmt.Sprintf("homeostat-ci-resume-%d", os.Getpid()))
				defer func() { _ = os.Remove(resumeFile) }()
			}
			return runLocal(cmd, abs, file, resumeFile)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", steps.DefaultFile, "steps file, relative to DIR")
	cmd.Flags().StringVar(&resumeFile, "resume-file", "", "file whose content \"true\" resumes a pause (default: a fresh file in the temp dir)")
	return cmd
}

// runLocal warns about what a laptop run cannot do, then runs the agent.
func runLocal(cmd *cobra.Command, dir, file, resumeFile string) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	data, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return fmt.Errorf("steps file: %w", err)
	}
	f, problems := steps.Parse(file, data)
	if problems != nil {
		for _, p := range problems {
			_, _ = fmt.Fprintln(errOut, p.Error())
		}
		return withCode(exitFailure, fmt.Errorf("%s: %d problem(s)", file, len(problems)))
	}
	for _, s := range f.Services {
		_, _ = fmt.Fprintf(errOut, "warning: service %s (%s) is not started locally; start it yourself on localhost\n", s.Name, s.Image)
	}
	for _, s := range f.SecretEnv {
		if _, ok := os.LookupEnv(s.Name); !ok {
			_, _ = fmt.Fprintf(errOut, "warning: secretEnv %s (secret %s, key %s) is not set in this environment\n", s.Name, s.Secret, s.Key)
		}
	}
	var secretNames []string
	for _, s := range f.SecretEnv {
		secretNames = append(secretNames, s.Name)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res := agent.Run(ctx, f, agent.Options{
		Dir: dir, Env: os.Environ(), Out: out, Mask: envValues(secretNames),
		Resume:     agent.FileResumer{Path: resumeFile},
		ResumeHint: "homeostat ci resume --file " + resumeFile,
	})
	printSummary(errOut, res)
	if res.Phase != v1alpha1.BuildSucceeded {
		return withCode(exitFailure, errors.New(res.Message))
	}
	return nil
}

func printSummary(w io.Writer, r agent.Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "STEP\tRESULT\tEXIT\tDURATION")
	for _, s := range r.Steps {
		code := "-"
		if s.ExitCode != nil {
			code = fmt.Sprint(*s.ExitCode)
		}
		dur := s.Duration
		if dur == "" {
			dur = "-"
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Phase, code, dur)
	}
	_ = tw.Flush()
}

func newCIAgentCommand() *cobra.Command {
	var dir, file, resumeFile, resultFile, pausedFile string
	var maskEnv []string
	var logFile string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a build's steps inside its pod (the build container's command)",
		Long: `Agent is the command of a build pod's main container. It runs the steps
file in the workspace, streams each step's output prefixed by its name,
waits at pause steps until the resume file (a downward-API view of the pod's
homeostat.dev/resume annotation) holds "true", and writes its result as JSON
to --result-file, the container's termination message, where the Build
controller reads it. Exit code 0 when the build passed, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			if logFile != "" {
				// The log sidecar ships this file to the store.
				f, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
				if err != nil {
					return withCode(exitFailure, fmt.Errorf("open log file: %w", err))
				}
				defer func() { _ = f.Close() }()
				out = io.MultiWriter(out, f)
			}
			res := agent.RunFile(ctx, file, agent.Options{
				Dir: dir, Env: os.Environ(), Out: out,
				Resume:     agent.FileResumer{Path: resumeFile},
				ResumeHint: "homeostat ci resume " + os.Getenv("HOMEOSTAT_BUILD"),
				PausedFile: pausedFile,
				Mask:       envValues(maskEnv),
			})
			if resultFile != "" {
				if err := os.WriteFile(resultFile, agent.Encode(res, agent.MaxResultSize), 0o644); err != nil {
					return withCode(exitFailure, fmt.Errorf("write result to %s: %w", resultFile, err))
				}
			}
			if res.Phase != v1alpha1.BuildSucceeded {
				return withCode(exitFailure, nil)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "the workspace the steps run in")
	cmd.Flags().StringVar(&file, "file", steps.DefaultFile, "steps file, relative to --dir")
	cmd.Flags().StringVar(&resumeFile, "resume-file", "/etc/homeostat/podinfo/resume", "file whose content \"true\" resumes a pause")
	cmd.Flags().StringVar(&resultFile, "result-file", "", "where to write the JSON result (the pod's termination message path)")
	cmd.Flags().StringVar(&pausedFile, "paused-file", "", "file that exists while a pause step waits (for the readiness probe)")
	cmd.Flags().StringSliceVar(&maskEnv, "mask-env", nil, "environment variables whose values are secrets, written as *** in the log")
	cmd.Flags().StringVar(&logFile, "log-file", "", "also write the log to this file (for the log sidecar)")
	return cmd
}

// envValues are the values of the named environment variables, for masking.
func envValues(names []string) []string {
	var out []string
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok {
			out = append(out, v)
		}
	}
	return out
}

// newCIPausedCommand is the build container's readiness probe: images need
// not have a shell or test(1), so the agent's own binary checks the file.
func newCIPausedCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "paused FILE",
		Short:  "Exit 0 while the agent waits at a pause step (a readiness probe)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(args[0]); err != nil {
				return withCode(exitFailure, nil)
			}
			return nil
		},
	}
}

func newCIResumeCommand() *cobra.Command {
	var namespace, file string
	cmd := &cobra.Command{
		Use:   "resume BUILD | --file FILE",
		Short: "Release a build paused at a pause step",
		Long: `Resume sets spec.resume on Build BUILD; the controller passes it to the
build pod, whose agent then goes on with the step after the pause. With
--file, it resumes a local "homeostat ci run" instead, by writing "true" to
the resume file that run printed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file != "" {
				if len(args) != 0 {
					return usageError{errors.New("give BUILD or --file, not both")}
				}
				return os.WriteFile(file, []byte("true\n"), 0o644)
			}
			if len(args) != 1 {
				return usageError{errors.New("BUILD is required (or --file for a local run)")}
			}
			c, ns, err := ciClient(namespace)
			if err != nil {
				return err
			}
			b := &v1alpha1.Build{}
			b.Namespace, b.Name = ns, args[0]
			patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"resume":true}}`))
			if err := c.Patch(cmd.Context(), b, patch); err != nil {
				return fmt.Errorf("resume build %s/%s: %w", ns, args[0], err)
			}
			_, _ = fmt.Fprintf(cmd.OutOrStdout(), "build %s resumed\n", args[0])
			return nil
		},
	}
	addNamespaceFlag(cmd, &namespace)
	cmd.Flags().StringVar(&file, "file", "", "resume file of a local `homeostat ci run`")
	return cmd
}

func newCIRerunCommand() *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "rerun BUILD",
		Short: "Build the same commit again, as a new Build",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := ciClient(namespace)
			if err != nil {
				return err
			}
			var b v1alpha1.Build
			if err := c.Get(cmd.Context(), types.NamespacedName{Namespace: ns, Name: args[0]}, &b); err != nil {
				return fmt.Errorf("get build %s/%s: %w", ns, args[0], err)
			}
			again := ci.RerunOf(&b)
			if err := c.Create(cmd.Context(), again); err != nil {
				return fmt.Errorf("create rerun of %s/%s: %w", ns, args[0], err)
			}
			_, _ = fmt.Fprintf(cmd.OutOrStdout(), "build %s created (commit %s)\n", again.Name, b.Spec.Commit)
			return nil
		},
	}
	addNamespaceFlag(cmd, &namespace)
	return cmd
}

func newCILogsCommand() *cobra.Command {
	var namespace string
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs BUILD",
		Short: "Print a build's log (its agent container's output)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := ciClient(namespace)
			if err != nil {
				return err
			}
			var b v1alpha1.Build
			if err := c.Get(cmd.Context(), types.NamespacedName{Namespace: ns, Name: args[0]}, &b); err != nil {
				return fmt.Errorf("get build %s/%s: %w", ns, args[0], err)
			}
			if b.Status.Pod == "" {
				msg := fmt.Sprintf("build %s has no pod (phase %s)", b.Name, orDash(b.Status.Phase))
				if b.Status.Message != "" {
					msg += ": " + b.Status.Message
				}
				return errors.New(msg)
			}
			return printBuildLog(cmd.Context(), c, &b, follow, cmd.OutOrStdout())
		},
	}
	addNamespaceFlag(cmd, &namespace)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing while the build runs")
	return cmd
}

// printBuildLog prints the agent container's log from the pod while it
// exists, else (the pod is gone, or no node serves its log any more) the
// copy the pipeline's log store holds: the same bytes either way.
func printBuildLog(ctx context.Context, c client.Client, b *v1alpha1.Build, follow bool, w io.Writer) error {
	cfg, err := restConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	pod, err := cs.CoreV1().Pods(b.Namespace).Get(ctx, b.Status.Pod, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && b.Status.LogURL != "":
		return printStoredLog(ctx, c, b, w)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("build %s: pod %s is gone, and with it the log (the pipeline keeps no logs: spec.logs)", b.Name, b.Status.Pod)
	case err != nil:
		return fmt.Errorf("pod of build %s: %w", b.Name, err)
	}
	if pod.Spec.NodeName == "" {
		// The API server answers an empty log for a pod no node has
		// taken yet; say so instead of printing nothing.
		return fmt.Errorf("build %s: pod %s is not scheduled yet (phase %s), so it has no log", b.Name, pod.Name, orDash(string(pod.Status.Phase)))
	}
	req := cs.CoreV1().Pods(b.Namespace).GetLogs(b.Status.Pod, &corev1.PodLogOptions{Container: "agent", Follow: follow})
	stream, err := req.Stream(ctx)
	if err != nil && b.Status.LogURL != "" && finishedBuild(b) {
		// A finished build's node may be gone while its pod object stays.
		return printStoredLog(ctx, c, b, w)
	}
	if err != nil {
		return fmt.Errorf("logs of build %s (pod %s): %w", b.Name, b.Status.Pod, err)
	}
	defer func() { _ = stream.Close() }()
	_, err = io.Copy(w, stream)
	return err
}

func finishedBuild(b *v1alpha1.Build) bool {
	return b.Status.Phase == v1alpha1.BuildSucceeded || b.Status.Phase == v1alpha1.BuildFailed
}

func addNamespaceFlag(cmd *cobra.Command, ns *string) {
	cmd.Flags().StringVarP(ns, "namespace", "n", "", "namespace of the build (default: the kubeconfig context's)")
}

// ciClient connects to the cluster and picks the namespace: the flag, else
// the kubeconfig context's, else "default".
func ciClient(namespace string) (client.Client, string, error) {
	cfg, err := restConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: syncScheme()})
	if err != nil {
		return nil, "", err
	}
	if namespace == "" {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if kubeconfig != "" {
			rules.ExplicitPath = kubeconfig
		}
		namespace, _, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).Namespace()
		if err != nil || strings.TrimSpace(namespace) == "" {
			namespace = "default"
		}
	}
	return c, namespace, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
