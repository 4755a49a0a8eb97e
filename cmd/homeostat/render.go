package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"homeostat.dev/homeostat/render"
)

func init() { register(newRenderCommand) }

func newRenderCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "render PATH",
		Short: "Print the objects a repository tree renders to; touches no cluster",
		Long: `Render reads a repository tree (plain YAML, kustomize folders and the
homeostat kinds App, Postgres and Pipeline) and prints every object it
describes, in the order sync applies them. PATH is built within the git
repository around it: a kustomization may use ../../apps/prod anywhere in
the repository, and files are named from its root. A tree with problems
prints each as FILE:LINE: message on stderr and exits 1; nothing is printed
on stdout. kustomize's deprecation notes are printed as warnings.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("render takes exactly one PATH, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			write := render.WriteYAML
			switch output {
			case "yaml":
			case "json":
				write = render.WriteJSON
			default:
				return usageError{fmt.Errorf("--output must be yaml or json, not %q", output)}
			}
			res, err := renderDir(args[0])
			if err != nil {
				return withCode(exitFailure, fmt.Errorf("render %w", err))
			}
			printWarnings(cmd.ErrOrStderr(), res.Warnings)
			if len(res.Problems) > 0 {
				printProblems(cmd.ErrOrStderr(), res.Problems)
				return withCode(exitFailure, errors.New(problemCount(len(res.Problems))))
			}
			objs := res.Objects
			return write(cmd.OutOrStdout(), objs)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	return cmd
}

func problemCount(n int) string {
	if n == 1 {
		return "1 problem; nothing rendered"
	}
	return fmt.Sprintf("%d problems; nothing rendered", n)
}

func printProblems(w io.Writer, ps []render.Problem) {
	for _, p := range ps {
		fmt.Fprintln(w, p.Error())
	}
}

func printWarnings(w io.Writer, ps []render.Problem) {
	for _, p := range ps {
		fmt.Fprintln(w, "warning: "+p.Error())
	}
}
