package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/operators/postgres"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func init() {
	register(newPGCommand)
	controllerSetups = append(controllerSetups, setupPostgres)
}

// envPostgresOperator set to "off" leaves the Postgres and Backup
// controllers out of `homeostat controller`.
const envPostgresOperator = "HOMEOSTAT_POSTGRES_OPERATOR"

// setupPostgres adds the Postgres and Backup controllers to the manager. The
// image the PostgreSQL pods copy homeostat from is $HOMEOSTAT_IMAGE (the
// deploy base sets it to the controller's own image).
func setupPostgres(mgr ctrl.Manager) error {
	if os.Getenv(envPostgresOperator) == "off" {
		// make demo runs this operator itself, beside its stand-in for a
		// node, which alone knows where the local instances listen.
		return nil
	}
	o := postgres.Options{HomeostatImage: os.Getenv("HOMEOSTAT_IMAGE")}
	if o.HomeostatImage == "" {
		o.HomeostatImage = "ghcr.io/homeostat/homeostat:" + version
	}
	rec := mgr.GetEventRecorder("homeostat-postgres")
	pg := &postgres.PostgresReconciler{Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Recorder: rec, Options: o}
	if err := pg.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setup postgres controller: %w", err)
	}
	b := &postgres.BackupReconciler{Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Recorder: rec, Options: o}
	if err := b.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setup backup controller: %w", err)
	}
	return nil
}

func newPGCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pg",
		Short: "Operate Postgres clusters run by homeostat",
	}
	cmd.AddCommand(newPGSwitchoverCommand(), newPGStatusCommand(), newPGPromoteCommand())
	return cmd
}

func newPGSwitchoverCommand() *cobra.Command {
	var namespace, to string
	cmd := &cobra.Command{
		Use:   "switchover NAME",
		Short: "Promote a replica of Postgres NAME and retire the current primary",
		Long: `Switchover asks the operator to stop the primary of Postgres NAME cleanly
(so every WAL record reaches the replicas), promote the most advanced ready
replica (or --to INSTANCE), repoint NAME-rw and NAME-ro, and restart the
old primary as a standby of the new one (no re-clone). A target that has not
received everything the old primary wrote is not promoted (FailoverUnsafe;
see pg promote --force). It returns once the request is recorded;
watch it with: kubectl get pg NAME -w`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, pg, err := getPostgres(cmd.Context(), namespace, args[0])
			if err != nil {
				return err
			}
			if pg.Spec.Instances < 2 {
				return fmt.Errorf("postgres %s/%s has no replica to switch over to", namespace, args[0])
			}
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{postgres.AnnotationSwitchover: to}}})
			if err := c.Patch(cmd.Context(), pg, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return fmt.Errorf("request switchover of %s/%s: %w", namespace, args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "switchover of %s/%s requested (primary now %s)\n", namespace, args[0], pg.Status.Primary)
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace of the Postgres")
	cmd.Flags().StringVar(&to, "to", "", "instance to promote (default: the most advanced ready replica)")
	return cmd
}

func newPGPromoteCommand() *cobra.Command {
	var namespace, to string
	var force bool
	cmd := &cobra.Command{
		Use:   "promote NAME --force [--to INSTANCE]",
		Short: "Promote a replica of Postgres NAME although the operator judged it unsafe (FailoverUnsafe)",
		Long: `Promote asks the operator to promote a replica of Postgres NAME (--to
INSTANCE, or the most advanced ready replica) at once, without the checks
that hold an automatic failover or a switchover back: that enough replicas
answer to be sure one holds every acknowledged commit, and that a
switchover's target has caught up. Commits acknowledged only by the replicas
that do not answer may be lost; --force says you accept that. A primary that
still answers is stopped first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				return usageError{fmt.Errorf("promote overrides the operator's safety checks and may lose acknowledged commits: pass --force")}
			}
			c, pg, err := getPostgres(cmd.Context(), namespace, args[0])
			if err != nil {
				return err
			}
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{postgres.AnnotationForcePromote: to}}})
			if err := c.Patch(cmd.Context(), pg, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return fmt.Errorf("request promotion in %s/%s: %w", namespace, args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "forced promotion in %s/%s requested (primary now %s)\n", namespace, args[0], pg.Status.Primary)
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace of the Postgres")
	cmd.Flags().StringVar(&to, "to", "", "instance to promote (default: the most advanced ready replica)")
	cmd.Flags().BoolVar(&force, "force", false, "promote although it may lose acknowledged commits")
	return cmd
}

// getPostgres reads Postgres namespace/name with a client for the current
// kubeconfig, which the pg commands then use.
func getPostgres(ctx context.Context, namespace, name string) (client.Client, *v1alpha1.Postgres, error) {
	cfg, err := restConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: syncScheme()})
	if err != nil {
		return nil, nil, err
	}
	pg := &v1alpha1.Postgres{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, pg); err != nil {
		return nil, nil, fmt.Errorf("postgres %s/%s: %w", namespace, name, err)
	}
	return c, pg, nil
}
