package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
	"homeostat.dev/homeostat/sync/controller"
	"homeostat.dev/homeostat/sync/source"
)

func init() { register(newSyncCommand) }

// defaultSyncNamespace holds Syncs and Snapshots the CLI creates.
const defaultSyncNamespace = "homeostat-system"

// syncScheme knows the core and homeostat kinds.
func syncScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

// kubeClients connects to the cluster: a client for homeostat's own kinds
// and the sync Engine.
func kubeClients() (client.Client, *hsync.Engine, error) {
	return kubeClientsWith(hsync.Options{})
}

// kubeClientsWith is kubeClients with Engine options (a long-running
// `homeostat sync` watches).
func kubeClientsWith(opts hsync.Options) (client.Client, *hsync.Engine, error) {
	cfg, err := restConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig: %w", err)
	}
	eng, err := hsync.New(cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: syncScheme(), Mapper: eng.Mapper()})
	if err != nil {
		return nil, nil, fmt.Errorf("client for %s: %w", cfg.Host, err)
	}
	return c, eng, nil
}

// defaultCacheDir is where git caches live for the CLI.
func defaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "homeostat", "git")
	}
	return filepath.Join(os.TempDir(), "homeostat-git")
}

type syncFlags struct {
	repo, ref, path, name, namespace, targetNamespace, secret, cacheDir string
	wait, prune, once, allowMassPrune                                   bool
	interval, timeout                                                   time.Duration
	// set tells which flags were given on the command line: only those
	// change an existing Sync.
	set func(flag string) bool
}

func newSyncCommand() *cobra.Command {
	var f syncFlags
	cmd := &cobra.Command{
		Use:   "sync --repo URL [--ref R] [--path P] [--name N] [--namespace NS] --once",
		Short: "Sync a git repository path to the cluster from the command line",
		Long: `Sync creates or updates the Sync object NAME in NAMESPACE (created if
missing), so that its inventory and snapshots live in the cluster, then runs
a sync in this process: fetch, render, apply, prune, wait, snapshot. It
prints the change set and exits 0 on success, 1 on failure. Without --once
it syncs again every --interval until interrupted. On an existing Sync only
--repo and the flags you give change its spec; the rest (and fields with no
flag, such as verify or serviceAccountName) keep their values.

--ref is a branch, "tags/NAME" for a tag, or a 40-character commit hash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.repo == "" {
				return usageError{fmt.Errorf("--repo is required")}
			}
			f.set = cmd.Flags().Changed
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runSync(ctx, cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.repo, "repo", "", "repository URL: https://, ssh://, git@host:path or file://")
	fl.StringVar(&f.ref, "ref", "", `branch (default "main"), "tags/NAME" or a commit hash`)
	fl.StringVar(&f.path, "path", "./", "path inside the repository to render")
	fl.StringVar(&f.name, "name", "", "name of the Sync object (default: the repository's name)")
	fl.StringVarP(&f.namespace, "namespace", "n", defaultSyncNamespace, "namespace of the Sync object and its snapshots")
	fl.StringVar(&f.targetNamespace, "target-namespace", "", "namespace for namespaced objects that name none (default: --namespace)")
	fl.StringVar(&f.secret, "secret", "", "name of a Secret in --namespace holding git credentials")
	fl.StringVar(&f.cacheDir, "cache-dir", defaultCacheDir(), "where fetched repositories are cached")
	fl.BoolVar(&f.wait, "wait", true, "wait for applied objects to be healthy")
	fl.BoolVar(&f.prune, "prune", true, "delete objects that left git")
	fl.BoolVar(&f.once, "once", false, "sync once and exit")
	fl.BoolVar(&f.allowMassPrune, "allow-mass-prune", false, "let the first sync prune more than spec.pruneLimit (or half of the inventory) allows")
	fl.DurationVar(&f.interval, "interval", time.Minute, "time between syncs without --once")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "timeout of one sync, waiting for health included")
	cmd.AddCommand(newSyncResumeCommand())
	return cmd
}

func runSync(ctx context.Context, cmd *cobra.Command, f syncFlags) error {
	c, eng, err := kubeClientsWith(hsync.Options{Watch: !f.once})
	if err != nil {
		return withCode(exitFailure, err)
	}
	defer eng.Close()
	if f.name == "" {
		f.name = nameFromURL(f.repo)
	}
	s, err := ensureSync(ctx, c, f)
	if err != nil {
		return withCode(exitFailure, err)
	}
	cfg, err := restConfig()
	if err != nil {
		return withCode(exitFailure, err)
	}
	runner := &controller.Runner{
		Client: c, Engine: eng, Impersonate: controller.NewImpersonator(cfg),
		Source:         controller.GitSource{Fetcher: &source.Fetcher{CacheDir: f.cacheDir}, Client: c},
		AllowMassPrune: f.allowMassPrune,
	}
	trigger := controller.TriggerManual
	for {
		o, err := runner.SyncLocked(ctx, s, trigger, controller.Holder("cli"), f.timeout)
		var dep *controller.DependencyError
		switch {
		case errors.As(err, &dep) && !f.once:
			// As the controller does: wait for the dependencies.
			fmt.Fprintln(cmd.ErrOrStderr(), "waiting:", err)
			if !sleepCtx(ctx, f.interval) {
				return nil
			}
			continue
		case err != nil:
			return withCode(exitFailure, err)
		}
		runner.AllowMassPrune = false // one sync only
		printOutcome(cmd, s, o)
		if f.once {
			if o.Err != nil {
				return withCode(exitFailure, o.Err)
			}
			return nil
		}
		if o.Err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "error:", o.Err)
		}
		if !sleepCtx(ctx, f.interval) {
			return nil
		}
		trigger = controller.TriggerInterval
	}
}

// sleepCtx waits d, or less if ctx ends (then it returns false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func printOutcome(cmd *cobra.Command, s *v1alpha1.Sync, o controller.Outcome) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "sync %s/%s revision %s\n", s.Namespace, s.Name, o.Revision.Name)
	if len(o.Changes.Changes) > 0 {
		fmt.Fprintln(out, o.Changes.String())
	}
	for _, h := range o.Health {
		fmt.Fprintf(out, "unhealthy %s: %s\n", h.Ref, h.Err)
	}
	if o.Snapshot != "" {
		fmt.Fprintf(out, "snapshot %s\n", o.Snapshot)
	}
}

// ensureSync creates the namespace and the Sync, or updates the Sync's spec.
func ensureSync(ctx context.Context, c client.Client, f syncFlags) (*v1alpha1.Sync, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create namespace %s: %w", f.namespace, err)
	}
	spec := v1alpha1.SyncSpec{
		URL: f.repo, Path: f.path, Ref: parseRef(f.ref),
		Interval: &metav1.Duration{Duration: f.interval}, Timeout: &metav1.Duration{Duration: f.timeout},
		Prune: &f.prune, Wait: &f.wait, TargetNamespace: f.targetNamespace,
	}
	if f.secret != "" {
		spec.SecretRef = &v1alpha1.LocalObjectReference{Name: f.secret}
	}
	s := &v1alpha1.Sync{}
	err := c.Get(ctx, client.ObjectKey{Namespace: f.namespace, Name: f.name}, s)
	switch {
	case apierrors.IsNotFound(err):
		s = &v1alpha1.Sync{ObjectMeta: metav1.ObjectMeta{Namespace: f.namespace, Name: f.name}, Spec: spec}
		if err := c.Create(ctx, s); err != nil {
			return nil, fmt.Errorf("create sync %s/%s: %w", f.namespace, f.name, err)
		}
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("get sync %s/%s: %w", f.namespace, f.name, err)
	}
	if s.Spec.Suspend {
		return nil, fmt.Errorf("sync %s/%s is suspended (a rollback?): run `homeostat sync resume %s -n %s` first", f.namespace, f.name, f.name, f.namespace)
	}
	base := s.DeepCopy()
	s.Spec = overlaySpec(s.Spec, spec, f.set)
	if err := c.Patch(ctx, s, client.MergeFrom(base)); err != nil {
		return nil, fmt.Errorf("update sync %s/%s: %w", f.namespace, f.name, err)
	}
	return s, nil
}

// overlaySpec is an existing Sync's spec with --repo and the flags given on
// the command line applied. Everything else keeps what the Sync has — the
// fields no flag sets (verify, serviceAccountName, pruneLimit, force,
// history, dependsOn) and the flags left at their defaults — so that a CLI
// sync of a Sync the controller also runs changes only what was asked, and
// never drops signature verification, the impersonated ServiceAccount or a
// prune limit on the way.
func overlaySpec(have, flags v1alpha1.SyncSpec, set func(flag string) bool) v1alpha1.SyncSpec {
	out := *have.DeepCopy()
	out.URL = flags.URL
	fields := map[string]func(){
		"ref":              func() { out.Ref = flags.Ref },
		"path":             func() { out.Path = flags.Path },
		"secret":           func() { out.SecretRef = flags.SecretRef },
		"interval":         func() { out.Interval = flags.Interval },
		"timeout":          func() { out.Timeout = flags.Timeout },
		"prune":            func() { out.Prune = flags.Prune },
		"wait":             func() { out.Wait = flags.Wait },
		"target-namespace": func() { out.TargetNamespace = flags.TargetNamespace },
	}
	for flag, apply := range fields {
		if set != nil && set(flag) {
			apply()
		}
	}
	return out
}

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// parseRef reads --ref: a commit hash, "tags/NAME" or "refs/tags/NAME", or a branch.
func parseRef(r string) *v1alpha1.GitRef {
	switch {
	case r == "":
		return nil
	case commitRE.MatchString(r):
		return &v1alpha1.GitRef{Commit: r}
	case strings.HasPrefix(r, "refs/tags/"):
		return &v1alpha1.GitRef{Tag: strings.TrimPrefix(r, "refs/tags/")}
	case strings.HasPrefix(r, "tags/"):
		return &v1alpha1.GitRef{Tag: strings.TrimPrefix(r, "tags/")}
	}
	return &v1alpha1.GitRef{Branch: strings.TrimPrefix(r, "refs/heads/")}
}

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// nameFromURL makes a Sync name from a repository URL: its last path element.
func nameFromURL(u string) string {
	u = strings.TrimSuffix(strings.TrimSuffix(u, "/"), ".git")
	if i := strings.LastIndexAny(u, "/:"); i >= 0 {
		u = u[i+1:]
	}
	n := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(u), "-"), "-")
	if n == "" {
		return "default"
	}
	if len(n) > 50 {
		n = n[:50]
	}
	return n
}

func newSyncResumeCommand() *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "resume NAME",
		Short: "Resume a suspended (for example rolled back) Sync and sync it at once",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("resume takes exactly one Sync NAME")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := kubeClients()
			if err != nil {
				return withCode(exitFailure, err)
			}
			s := &v1alpha1.Sync{}
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: namespace, Name: args[0]}, s); err != nil {
				return withCode(exitFailure, fmt.Errorf("sync %s/%s: %w", namespace, args[0], err))
			}
			if err := controller.Resume(cmd.Context(), c, s); err != nil {
				return withCode(exitFailure, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sync %s/%s resumed\n", namespace, args[0])
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", defaultSyncNamespace, "namespace of the Sync")
	return cmd
}
