package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/operators/ci"
	"homeostat.dev/homeostat/operators/ci/buildlog"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// newCIShipLogCommand is the build pod's log sidecar: it holds the store's
// credentials, which the agent's container (running the repository's own
// code) never sees.
func newCIShipLogCommand() *cobra.Command {
	var s3 s3Flags
	var file, namespace, build string
	var interval time.Duration
	cmd := &cobra.Command{
		Use:    "ship-log",
		Short:  "Send a build's log to the object store while it runs (a build pod's sidecar)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			store, err := openStoreRetrying(ctx, func(ctx context.Context) (*backup.S3, error) { return s3.open(ctx, cmd.Flags()) })
			if err != nil {
				return err
			}
			s := &buildlog.Shipper{Store: store, Namespace: namespace, Build: build, File: file, Interval: interval,
				Logf: func(format string, args ...any) { slog.Warn("ship build log", "error", fmt.Sprintf(format, args...)) }}
			s.Run(ctx)
			// Stopped: the agent is done. Write the final object in the
			// grace period the pod gives its sidecars.
			final, cancel := context.WithTimeout(context.Background(), 25*time.Second)
			defer cancel()
			if err := s.Finish(final); err != nil {
				return fmt.Errorf("store the final log of %s/%s: %w", namespace, build, err)
			}
			return nil
		},
	}
	s3.bind(cmd.Flags())
	cmd.Flags().StringVar(&file, "file", "", "the log file the agent writes")
	cmd.Flags().StringVar(&namespace, "namespace", "", "the build's namespace")
	cmd.Flags().StringVar(&build, "build", "", "the build's name")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "time between shipments while the build runs")
	return cmd
}

// openStoreRetrying opens the store, trying again every few seconds while
// it cannot be reached, until ctx ends.
func openStoreRetrying(ctx context.Context, open func(context.Context) (*backup.S3, error)) (*backup.S3, error) {
	for {
		s, err := open(ctx)
		if err == nil {
			return s, nil
		}
		var usage usageError
		if errors.As(err, &usage) {
			return nil, err
		}
		slog.Warn("log store not reachable; retrying", "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(3 * time.Second):
		}
	}
}

// printStoredLog writes the log a build left in its pipeline's store.
func printStoredLog(ctx context.Context, c client.Client, b *v1alpha1.Build, w io.Writer) error {
	var p v1alpha1.Pipeline
	if err := c.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.Pipeline.Name}, &p); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("build %s: its log is at %s, but pipeline %s (which says how to reach the store) is gone", b.Name, b.Status.LogURL, b.Spec.Pipeline.Name)
		}
		return fmt.Errorf("pipeline of build %s: %w", b.Name, err)
	}
	if p.Spec.Logs == nil {
		return fmt.Errorf("build %s: pipeline %s keeps no logs (spec.logs)", b.Name, p.Name)
	}
	cfg, err := ci.LogStoreConfig(ctx, c, &p)
	if err != nil {
		return err
	}
	store, err := backup.Open(ctx, cfg)
	if err != nil {
		return err
	}
	return buildlog.Read(ctx, store, b.Namespace, b.Name, w)
}
