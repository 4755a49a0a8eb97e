package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
)

func init() { register(newDiffCommand) }

// exitDiffError is kubectl diff's code for "something went wrong" (1 means
// "differences found").
const exitDiffError = 2

func newDiffCommand() *cobra.Command {
	var syncName, namespace, targetNamespace, output string
	var off offlineFlags
	cmd := &cobra.Command{
		Use:   "diff PATH | diff --base REF [--head REF] [--path P] [REPO_DIR]",
		Short: "Show what a sync of PATH would change in the live cluster, or what a pull request changes with no cluster",
		Long: `Diff renders PATH as render does, asks the live cluster with server-side
dry-run what applying it would do, and prints the objects that would be
created or changed (a unified diff each, managed fields and status left out,
Secret values masked). With --sync, objects in that Sync's inventory that
PATH no longer renders are listed as pruned, and the diff is computed with
the Sync's labels and target namespace.

With --base, diff needs no cluster and never reads a kubeconfig: it renders
--path at the base revision and at --head (the working tree when --head is
omitted) straight from the git objects of REPO_DIR (default: the repository
around the current directory), checks the head's objects against their
OpenAPI schemas as validate does (--crds DIR for custom kinds), and prints
what was added, changed and removed.

Exit codes follow kubectl diff: 0 no differences, 1 differences, 2 error
(a head that does not render or breaks a schema prints its FILE:LINE
problems).
--output markdown prints a summary fit for a pull-request comment (cut to
GitHub's 65,536 characters with a note); --output json (with --base) is for
machines.`,
		Args: func(_ *cobra.Command, args []string) error {
			if off.base != "" {
				if len(args) > 1 {
					return usageError{fmt.Errorf("diff --base takes at most one REPO_DIR, got %d arguments", len(args))}
				}
				return nil
			}
			if off.head != "" || off.path != "" {
				return usageError{errors.New("--head and --path need --base")}
			}
			if len(args) != 1 {
				return usageError{fmt.Errorf("diff takes exactly one PATH, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if off.base != "" {
				return runOfflineDiff(cmd, off, output, args)
			}
			if output != "text" && output != "markdown" {
				return usageError{fmt.Errorf("--output must be text or markdown, not %q", output)}
			}
			res, err := renderDir(args[0])
			if err != nil {
				return withCode(exitDiffError, fmt.Errorf("render %w", err))
			}
			printWarnings(cmd.ErrOrStderr(), res.Warnings)
			if len(res.Problems) > 0 {
				printProblems(cmd.ErrOrStderr(), res.Problems)
				return withCode(exitDiffError, errors.New(problemCount(len(res.Problems))))
			}
			objs := res.Objects
			c, eng, err := kubeClients()
			if err != nil {
				return withCode(exitDiffError, err)
			}
			t := hsync.Target{DefaultNamespace: targetNamespace}
			var inv hsync.Inventory
			if syncName != "" {
				if t, inv, err = syncTarget(cmd.Context(), c, namespace, syncName); err != nil {
					return withCode(exitDiffError, err)
				}
			}
			if t.DefaultNamespace == "" {
				t.DefaultNamespace = "default"
			}
			cs, err := eng.Plan(cmd.Context(), t, objs, inv)
			if err != nil {
				return withCode(exitDiffError, err)
			}
			if output == "markdown" {
				writeMarkdownDiff(cmd.OutOrStdout(), cs)
			} else {
				writeTextDiff(cmd.OutOrStdout(), cs)
			}
			if n := cs.Count(hsync.Failed); n > 0 {
				return withCode(exitDiffError, fmt.Errorf("dry-run failed for %d object(s)", n))
			}
			if cs.Changed() {
				return withCode(exitFailure, nil)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&syncName, "sync", "", "name of the Sync whose inventory tells what would be pruned")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", defaultSyncNamespace, "namespace of the --sync Sync")
	cmd.Flags().StringVar(&targetNamespace, "target-namespace", "", `namespace for objects that name none, without --sync (default "default")`)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, markdown or (with --base) json")
	off.register(cmd)
	return cmd
}

func writeTextDiff(w io.Writer, cs hsync.ChangeSet) {
	for _, c := range cs.Sorted().Changes {
		if c.Action == hsync.Unchanged {
			continue
		}
		fmt.Fprintf(w, "%s %s", c.Action, c.Ref)
		if c.Source.File != "" {
			fmt.Fprintf(w, " (%s)", c.Source)
		}
		if c.Err != "" {
			fmt.Fprintf(w, ": %s", c.Err)
		}
		fmt.Fprintln(w)
		if c.Diff != "" {
			fmt.Fprint(w, c.Diff)
		}
	}
	fmt.Fprintln(w, planSummary(cs))
}

func planSummary(cs hsync.ChangeSet) string {
	s := fmt.Sprintf("%d to create, %d to change, %d to prune, %d unchanged",
		cs.Count(hsync.Created), cs.Count(hsync.Configured), cs.Count(hsync.Pruned), cs.Count(hsync.Unchanged))
	if n := cs.Count(hsync.Failed); n > 0 {
		s += fmt.Sprintf(", %d failed", n)
	}
	return s
}

// writeMarkdownDiff prints a pull-request comment: a summary table and one
// collapsed diff per object.
func writeMarkdownDiff(w io.Writer, cs hsync.ChangeSet) {
	fmt.Fprintf(w, "### homeostat diff\n\n**%s**\n\n", planSummary(cs))
	if !cs.Changed() && cs.Count(hsync.Failed) == 0 {
		fmt.Fprintln(w, "No changes.")
		return
	}
	fmt.Fprintln(w, "| action | object | source |")
	fmt.Fprintln(w, "|---|---|---|")
	sorted := cs.Sorted().Changes
	for _, c := range sorted {
		if c.Action == hsync.Unchanged {
			continue
		}
		fmt.Fprintf(w, "| %s | `%s` | %s |\n", c.Action, c.Ref, mdEscape(c.Source.String()+errSuffix(c.Err)))
	}
	fmt.Fprintln(w)
	for _, c := range sorted {
		if c.Diff == "" {
			continue
		}
		fmt.Fprintf(w, "<details><summary>%s <code>%s</code></summary>\n\n```diff\n%s```\n</details>\n\n",
			c.Action, c.Ref, strings.ReplaceAll(c.Diff, "```", "` ` `"))
	}
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " " + e
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// syncTarget reads the Sync a diff compares against: whom it applies for
// and what it owns (empty, not nil, so pruned objects are listed).
func syncTarget(ctx context.Context, c client.Client, namespace, name string) (hsync.Target, hsync.Inventory, error) {
	s := &v1alpha1.Sync{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
		return hsync.Target{}, nil, fmt.Errorf("sync %s/%s: %w", namespace, name, err)
	}
	t := hsync.Target{Name: s.Name, Namespace: s.Namespace, DefaultNamespace: s.Spec.TargetNamespace}
	if t.DefaultNamespace == "" {
		t.DefaultNamespace = s.Namespace
	}
	inv, err := hsync.SyncInventory(s.Status)
	if err != nil {
		return t, nil, fmt.Errorf("sync %s/%s: %w", namespace, name, err)
	}
	if inv == nil {
		inv = hsync.Inventory{}
	}
	return t, inv, nil
}
