package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"homeostat.dev/homeostat/deploy"
)

func init() {
	register(newInstallCommand)
	register(newUninstallCommand)
	register(newBootstrapCommand)
}

func newInstallCommand() *cobra.Command {
	var image string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "install [--image REF] [--dry-run]",
		Short: "Install the CRDs, RBAC and controller into the cluster (server-side apply)",
		Long: `Install applies the same manifests as "kubectl apply -k deploy/" — embedded
in this binary — with server-side apply. --dry-run shows what would change
and writes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, eng, err := kubeClients()
			if err != nil {
				return withCode(exitFailure, err)
			}
			cs, err := deploy.Install(cmd.Context(), eng, image, dryRun)
			fmt.Fprintln(cmd.OutOrStdout(), cs.String())
			if err != nil {
				return withCode(exitFailure, fmt.Errorf("install: %w", err))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&image, "image", deploy.DefaultImage, "controller image; also what PostgreSQL and CI pods copy the homeostat binary from")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only show what would change")
	return cmd
}

func newUninstallCommand() *cobra.Command {
	var withCRDs bool
	cmd := &cobra.Command{
		Use:   "uninstall [--crds]",
		Short: "Remove the controller and its RBAC; keep CRDs, custom resources and volumes",
		Long: `Uninstall deletes what install applied, except the CRDs and the
homeostat-system namespace: deleting a CRD deletes every object of its kind,
so --crds must ask for it. Volumes of PostgreSQL clusters are never deleted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, eng, err := kubeClients()
			if err != nil {
				return withCode(exitFailure, err)
			}
			cs, err := deploy.Uninstall(cmd.Context(), eng, withCRDs)
			fmt.Fprintln(cmd.OutOrStdout(), cs.String())
			if err != nil {
				return withCode(exitFailure, fmt.Errorf("uninstall: %w", err))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&withCRDs, "crds", false, "also delete the CRDs, and with them every homeostat object in the cluster")
	return cmd
}

func newBootstrapCommand() *cobra.Command {
	var image string
	f := syncFlags{namespace: defaultSyncNamespace, wait: true, prune: true}
	cmd := &cobra.Command{
		Use:   "bootstrap --repo URL [--path P] [--ref R] [--secret NAME]",
		Short: "Install homeostat, then make the cluster sync itself from a repository",
		Long: `Bootstrap installs homeostat (as "install" does) and creates the first Sync,
in homeostat-system, pointing at your repository. From then on the
controller keeps the cluster in step with git: commit to change it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.repo == "" {
				return usageError{fmt.Errorf("--repo is required")}
			}
			c, eng, err := kubeClients()
			if err != nil {
				return withCode(exitFailure, err)
			}
			cs, err := deploy.Install(cmd.Context(), eng, image, false)
			fmt.Fprintln(cmd.OutOrStdout(), cs.String())
			if err != nil {
				return withCode(exitFailure, fmt.Errorf("install: %w", err))
			}
			if f.name == "" {
				f.name = nameFromURL(f.repo)
			}
			s, err := ensureSync(cmd.Context(), c, f)
			if err != nil {
				return withCode(exitFailure, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Sync %s/%s follows %s; watch it with:\n  kubectl get syncs,snapshots -n %s\n", s.Namespace, s.Name, s.Spec.URL, s.Namespace)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&image, "image", deploy.DefaultImage, "controller image")
	fl.StringVar(&f.repo, "repo", "", "repository URL: https://, ssh://, git@host:path or file://")
	fl.StringVar(&f.ref, "ref", "", `branch (default "main"), "tags/NAME" or a commit hash`)
	fl.StringVar(&f.path, "path", "./", "path inside the repository to render")
	fl.StringVar(&f.name, "name", "", "name of the Sync (default: the repository's name)")
	fl.StringVar(&f.secret, "secret", "", "name of a Secret in homeostat-system holding git credentials")
	fl.DurationVar(&f.interval, "interval", time.Minute, "time between syncs")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "timeout of one sync")
	return cmd
}
