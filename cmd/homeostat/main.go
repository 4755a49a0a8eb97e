// Command homeostat is the one binary of homeostat: the GitOps reconciler, its
// operators, the PostgreSQL instance manager, the backup tool and the CI agent.
// Each subcommand lives in its own file and only parses flags and calls the
// package that does the work.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// exitError carries a specific exit code up to main without printing twice.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// withCode makes a command end with the given exit code; a nil err exits
// silently with that code (as `diff` does when it found differences).
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// usageError marks bad flags or arguments: exit code 2.
type usageError struct{ error }

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "homeostat",
		Short:         "A pull-based GitOps reconciler with PostgreSQL and CI operators",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	addKubeFlags(root)
	for _, add := range subcommands {
		root.AddCommand(add())
	}
	return root
}

// subcommands is filled by each command file's init, so that adding a command
// never touches this file.
var subcommands []func() *cobra.Command

func register(f func() *cobra.Command) { subcommands = append(subcommands, f) }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRootCommand()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ue usageError
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "error:", ee.err)
		}
		return ee.code
	case errors.As(err, &ue), isCobraUsage(err):
		fmt.Fprintln(os.Stderr, "error:", err)
		return exitUsage
	default:
		fmt.Fprintln(os.Stderr, "error:", err)
		return exitFailure
	}
}
