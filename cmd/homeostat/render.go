package main

import (
	"errors"
	"fmt"
	"os"

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
describes, in the order sync applies them. A tree with problems prints each
as FILE:LINE: message on stderr and exits 1; nothing is printed on stdout.`,
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
			root := args[0]
			info, err := os.Stat(root)
			if err != nil {
				return withCode(exitFailure, fmt.Errorf("render %s: %w", root, err))
			}
			if !info.IsDir() {
				return withCode(exitFailure, fmt.Errorf("render %s: not a directory", root))
			}
			objs, problems := render.Render(os.DirFS(root))
			if len(problems) > 0 {
				for _, p := range problems {
					fmt.Fprintln(cmd.ErrOrStderr(), p.Error())
				}
				return withCode(exitFailure, errors.New(problemCount(len(problems))))
			}
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
