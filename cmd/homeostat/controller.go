package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	hsync "homeostat.dev/homeostat/sync"
	synccontroller "homeostat.dev/homeostat/sync/controller"
	"homeostat.dev/homeostat/sync/source"
	"homeostat.dev/homeostat/sync/webhook"
)

func init() { register(newControllerCommand) }

// controllerSetups lets other command files add their controllers (the
// operators) to the same manager: append in init().
var controllerSetups []func(mgr ctrl.Manager) error

// pushHandlers lets other command files receive verified webhook pushes (the
// CI operator triggers Pipelines): append in init(). The sync trigger is
// always registered.
var pushHandlers []func(mgr ctrl.Manager) webhook.Handler

type controllerFlags struct {
	metricsAddr, probeAddr, webhookAddr, webhookSecretFile, cacheDir string
	leaderElect                                                      bool
	leaderNamespace                                                  string
	concurrency                                                      int
}

func newControllerCommand() *cobra.Command {
	var f controllerFlags
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the in-cluster manager: the sync loop, the operators and the webhook receiver",
		Long: `Controller reconciles every Sync on its spec.interval (and at once when its
spec or its homeostat.dev/sync-at annotation changes), runs the operators'
controllers in the same manager, and receives GitHub, GitLab and Gitea push
webhooks on --webhook-addr at /hook: a push verified with the secret
(--webhook-secret-file or $HOMEOSTAT_WEBHOOK_SECRET) syncs every Sync of
the pushed repository at once. Metrics are served for Prometheus on
--metrics-addr, /healthz and /readyz on --health-addr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runController(ctrl.SetupSignalHandler(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.metricsAddr, "metrics-addr", ":8080", "address of the Prometheus metrics endpoint (0 disables)")
	fl.StringVar(&f.probeAddr, "health-addr", ":8081", "address of the /healthz and /readyz probes")
	fl.StringVar(&f.webhookAddr, "webhook-addr", ":9292", "address of the push webhook receiver (empty disables)")
	fl.StringVar(&f.webhookSecretFile, "webhook-secret-file", "", "file holding the webhook secret, read on every push so it may be created or rotated while running (default: $HOMEOSTAT_WEBHOOK_SECRET)")
	fl.StringVar(&f.cacheDir, "cache-dir", "/tmp/homeostat/git", "where fetched repositories are cached")
	fl.BoolVar(&f.leaderElect, "leader-elect", false, "elect a leader so that only one replica acts")
	fl.StringVar(&f.leaderNamespace, "leader-election-namespace", "", "namespace of the leader lease (default: the pod's namespace)")
	fl.IntVar(&f.concurrency, "concurrency", 4, "Syncs reconciled at once")
	return cmd
}

func runController(ctx context.Context, f controllerFlags) error {
	log := logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, nil))
	ctrl.SetLogger(log)
	cfg, err := restConfig()
	if err != nil {
		return withCode(exitFailure, fmt.Errorf("kubeconfig: %w", err))
	}
	mgr, err := ctrl.NewManager(cfg, scopeCache(ctrl.Options{
		Scheme:                  syncScheme(),
		Metrics:                 metricsserver.Options{BindAddress: f.metricsAddr},
		HealthProbeBindAddress:  f.probeAddr,
		LeaderElection:          f.leaderElect,
		LeaderElectionID:        "homeostat-controller",
		LeaderElectionNamespace: f.leaderNamespace,
	}))
	if err != nil {
		return withCode(exitFailure, fmt.Errorf("create manager: %w", err))
	}
	if err := setupSync(mgr, f); err != nil {
		return withCode(exitFailure, err)
	}
	for _, setup := range controllerSetups {
		if err := setup(mgr); err != nil {
			return withCode(exitFailure, err)
		}
	}
	if f.webhookAddr != "" {
		if err := setupWebhook(mgr, f, log); err != nil {
			return withCode(exitFailure, err)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return withCode(exitFailure, err)
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return withCode(exitFailure, err)
	}
	log.Info("starting controller", "version", version, "leaderElection", f.leaderElect)
	if err := mgr.Start(ctx); err != nil {
		return withCode(exitFailure, err)
	}
	return nil
}

// setupSync adds the Sync reconciler.
func setupSync(mgr ctrl.Manager, f controllerFlags) error {
	eng, err := hsync.New(mgr.GetConfig(), hsync.Options{Watch: true})
	if err != nil {
		return err
	}
	leases, err := client.New(mgr.GetConfig(), client.Options{Scheme: syncScheme()})
	if err != nil {
		return err
	}
	r := &synccontroller.Reconciler{
		Client:   mgr.GetClient(),
		Leases:   leases,
		Recorder: mgr.GetEventRecorder("homeostat-sync"),
		Runner: &synccontroller.Runner{
			Client: mgr.GetClient(), Engine: eng, Impersonate: synccontroller.NewImpersonator(mgr.GetConfig()),
			Source: synccontroller.GitSource{Fetcher: &source.Fetcher{CacheDir: f.cacheDir}, Client: mgr.GetAPIReader()},
			Log:    mgr.GetLogger().WithName("sync"),
		},
	}
	return r.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: f.concurrency})
}

// setupWebhook serves the push receiver as a manager runnable.
func setupWebhook(mgr ctrl.Manager, f controllerFlags, log logr.Logger) error {
	secret, err := webhookSecret(f.webhookSecretFile)
	if err != nil {
		return err
	}
	if len(secret()) == 0 {
		log.Info("push webhook receiver refuses every push until its secret exists", "secretFile", f.webhookSecretFile)
	}
	rc := &webhook.Receiver{SecretFunc: secret, Log: log.WithName("webhook"),
		Handlers: []webhook.Handler{synccontroller.PushTrigger{Client: mgr.GetClient()}}}
	for _, h := range pushHandlers {
		rc.Handlers = append(rc.Handlers, h(mgr))
	}
	mux := http.NewServeMux()
	mux.Handle("/hook", rc)
	mux.Handle("/hook/", rc)
	srv := &http.Server{Addr: f.webhookAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return mgr.Add(everyReplica(func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("webhook receiver on %s: %w", f.webhookAddr, err)
		}
		return nil
	}))
}

// everyReplica is a runnable that runs without holding the leader lease:
// any replica may receive a push (the Service routes to any), since all it
// does is annotate Syncs for the leader to act on.
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (everyReplica) NeedLeaderElection() bool { return false }

var _ manager.LeaderElectionRunnable = everyReplica(nil)

// webhookSecret says where the receiver gets its secret. A file is read on
// every request: the deploy base mounts the homeostat-webhook Secret
// optionally, and the kubelet updates the file when the Secret is created or
// rotated, so that takes effect without a restart; while the file is
// missing or empty every push is refused. Without a file the environment is
// read once, and an empty secret is refused at start: an open receiver would
// let anyone trigger syncs.
func webhookSecret(file string) (func() []byte, error) {
	if file != "" {
		if _, err := readSecretFile(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("webhook secret: %w", err)
		}
		return func() []byte {
			b, _ := readSecretFile(file)
			return b
		}, nil
	}
	s := []byte(strings.TrimSpace(os.Getenv("HOMEOSTAT_WEBHOOK_SECRET")))
	if len(s) == 0 {
		return nil, errors.New("webhook receiver needs a secret: --webhook-secret-file or $HOMEOSTAT_WEBHOOK_SECRET (or --webhook-addr= to disable it)")
	}
	return func() []byte { return s }, nil
}

func readSecretFile(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	return bytes.TrimSpace(b), err
}
