package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"homeostat.dev/homeostat/sync/source"
)

func init() { register(newGitCommand) }

func newGitCommand() *cobra.Command {
	git := &cobra.Command{
		Use:   "git",
		Short: "Git operations with homeostat's credentials handling (used by CI build pods)",
	}
	git.AddCommand(newGitCloneCommand())
	return git
}

func newGitCloneCommand() *cobra.Command {
	var url, commit, dir, secretDir string
	cmd := &cobra.Command{
		Use:   "clone --url URL --commit SHA --dir DIR [--secret-dir DIR]",
		Short: "Check out one exact commit into a directory",
		Long: `Check out one exact commit (a full hash) into DIR, as a CI build's init
container does. Credentials never come from flags: --secret-dir is a mounted
Secret (files named username, password, bearerToken, identity, known_hosts,
ca.crt), and HOMEOSTAT_GIT_USERNAME, _PASSWORD, _BEARER_TOKEN, _IDENTITY,
_KNOWN_HOSTS and _CA_CRT may set the same keys (the directory wins).
An SSH URL needs known_hosts: host keys are always checked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if url == "" || commit == "" || dir == "" {
				return usageError{errors.New("--url, --commit and --dir are required")}
			}
			data := source.SecretDataFromEnv(os.LookupEnv)
			if secretDir != "" {
				fromDir, err := source.ReadSecretDir(secretDir)
				if err != nil {
					return err
				}
				maps.Copy(data, fromDir)
			}
			auth, err := source.AuthFromSecret(data)
			if err != nil {
				return fmt.Errorf("git credentials: %w", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := source.Clone(ctx, url, commit, dir, auth); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "checked out %s into %s\n", commit, dir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "", "repository URL (https://, ssh://, file:// or a path); credentials in it are never printed")
	f.StringVar(&commit, "commit", "", "the full commit hash to check out")
	f.StringVar(&dir, "dir", "", "directory to check out into (absent or empty)")
	f.StringVar(&secretDir, "secret-dir", "", "directory of secret files named like the Secret's keys")
	return cmd
}
