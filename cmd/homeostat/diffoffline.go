package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"homeostat.dev/homeostat/sync/review"
)

// offlineFlags are diff's flags for comparing two revisions with no cluster.
type offlineFlags struct {
	base, head, path, crds string
}

func (f *offlineFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.base, "base", "", "compare with no cluster: the base revision (branch, tag, commit, HEAD~1)")
	fl.StringVar(&f.head, "head", "", "with --base: the head revision (default: the working tree)")
	fl.StringVar(&f.path, "path", "", "with --base: the folder to render at both revisions, from the repository root (default: all of it)")
	fl.StringVar(&f.crds, "crds", "", "with --base: folder of CustomResourceDefinition manifests for the schema check of custom kinds")
}

// runOfflineDiff is `homeostat diff --base`: it never builds a Kubernetes
// client, so it reads no kubeconfig.
func runOfflineDiff(cmd *cobra.Command, f offlineFlags, output string, args []string) error {
	write := map[string]func(*cobra.Command, review.Report) error{
		"text": func(c *cobra.Command, r review.Report) error { return review.WriteText(c.OutOrStdout(), r) },
		"markdown": func(c *cobra.Command, r review.Report) error {
			return review.WriteMarkdown(c.OutOrStdout(), r, review.CommentLimit)
		},
		"json": func(c *cobra.Command, r review.Report) error { return review.WriteJSON(c.OutOrStdout(), r) },
	}[output]
	if write == nil {
		return usageError{fmt.Errorf("--output must be text, markdown or json, not %q", output)}
	}
	o := review.Options{Base: f.base, Head: f.head, Path: f.path, Check: schemaCheckWith(f.crds)}
	if len(args) == 1 {
		o.RepoDir = args[0]
	}
	rep, err := review.Run(o)
	printWarnings(cmd.ErrOrStderr(), rep.Warnings)
	var re *review.RenderError
	if errors.As(err, &re) {
		printProblems(cmd.ErrOrStderr(), re.Problems)
	}
	if err != nil {
		return withCode(exitDiffError, err)
	}
	if err := write(cmd, rep); err != nil {
		return withCode(exitDiffError, err)
	}
	if len(rep.Changes) > 0 {
		return withCode(exitFailure, nil)
	}
	return nil
}
