package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"homeostat.dev/homeostat/deploy"
	"homeostat.dev/homeostat/render"
	"homeostat.dev/homeostat/render/schema"
)

func init() { register(newValidateCommand) }

func newValidateCommand() *cobra.Command {
	var path, crds string
	cmd := &cobra.Command{
		Use:   "validate [--path P] [--crds DIR] [REPO_DIR]",
		Short: "Check every rendered object against its kind's OpenAPI schema, offline",
		Long: `Validate renders --path of REPO_DIR (default: the git repository around the
current directory) as render does, and checks every object against the
OpenAPI schema of its kind, with no cluster: unknown fields, wrong types,
missing required fields and enum or pattern violations are printed as
FILE:LINE: message on stderr. Built-in kinds use the schemas of Kubernetes
` + schema.KubernetesVersion() + `, embedded in the binary; custom kinds use the CRDs in the
rendered set, homeostat's own, and those under --crds DIR. Kinds with no
schema are listed as skipped.

Exit codes: 0 valid, 1 problems, 2 usage error.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("validate takes at most one REPO_DIR, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := "."
			if len(args) == 1 {
				root = args[0]
			} else if top, _, err := repoTree("."); err == nil {
				root = top
			}
			if info, err := os.Stat(root); err != nil || !info.IsDir() {
				return usageError{fmt.Errorf("REPO_DIR %s is not a folder", root)}
			}
			fsys := os.DirFS(root)
			res := render.RenderPath(fsys, path)
			printWarnings(cmd.ErrOrStderr(), res.Warnings)
			if len(res.Problems) > 0 {
				printProblems(cmd.ErrOrStderr(), res.Problems)
				return withCode(exitFailure, errors.New(problemCount(len(res.Problems))))
			}
			problems, skipped := schemaCheckWith(crds)(fsys, res.Objects)
			printProblems(cmd.ErrOrStderr(), problems)
			if len(skipped) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "no schema, not validated: %s\n", strings.Join(skipped, ", "))
			}
			if len(problems) > 0 {
				return withCode(exitFailure, fmt.Errorf("%d of %d objects checked: %d problems", len(res.Objects), len(res.Objects), len(problems)))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d objects valid\n", len(res.Objects))
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "path", ".", "folder to render, from the repository root")
	cmd.Flags().StringVar(&crds, "crds", "", "folder of CustomResourceDefinition manifests for custom kinds")
	return cmd
}

// schemaCheckWith is the schema check validate and diff --base run: the
// built-in kinds, homeostat's own CRDs, and the CRDs under crdDir.
func schemaCheckWith(crdDir string) func(fs.FS, []render.Object) ([]render.Problem, []string) {
	return func(fsys fs.FS, objs []render.Object) ([]render.Problem, []string) {
		v, err := schema.New()
		if err != nil {
			return []render.Problem{{File: "(embedded schemas)", Message: err.Error()}}, nil
		}
		var problems []render.Problem
		problems = append(problems, addCRDs(v, deploy.CRDs, "(homeostat CRDs)")...)
		if crdDir != "" {
			problems = append(problems, addCRDs(v, os.DirFS(crdDir), crdDir)...)
		}
		if len(problems) > 0 {
			return problems, nil
		}
		return v.Check(fsys, objs)
	}
}

// addCRDs teaches the validator every CRD found in a folder.
func addCRDs(v *schema.Validator, fsys fs.FS, name string) []render.Problem {
	objs, problems := render.Render(fsys)
	for i := range problems {
		problems[i].File = strings.TrimSuffix(name, "/") + "/" + problems[i].File
	}
	for _, o := range objs {
		if o.Object.GetKind() != "CustomResourceDefinition" {
			continue
		}
		if err := v.AddCRD(o.Object); err != nil {
			problems = append(problems, render.Problem{File: name + "/" + o.Source.File, Line: max(o.Source.Line, 1), Message: err.Error()})
		}
	}
	return problems
}
