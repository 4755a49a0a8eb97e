package ci

import (
	"fmt"

	"homeostat.dev/homeostat/operators/ci/steps"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// RefusedSecrets checks a steps file's secretEnv against the pipeline's
// spec.secrets: a build of branch may read a Secret only when the Pipeline
// lists it with a pattern matching that branch. The steps file is written
// by anyone who can push; the Pipeline is reviewed in the GitOps
// repository, so it alone decides. Each refusal is a problem at the
// variable's line, naming the secret and the branch, never a value.
func RefusedSecrets(p *v1alpha1.Pipeline, branch, file string, f *steps.File) []steps.Problem {
	var out []steps.Problem
	for _, se := range f.SecretEnv {
		if secretAllowed(p.Spec.Secrets, se.Secret, branch) {
			continue
		}
		out = append(out, steps.Problem{File: file, Line: se.Line, Field: "secretEnv." + se.Name,
			Message: refusal(p, se.Secret, branch)})
	}
	return out
}

func secretAllowed(allowed []v1alpha1.PipelineSecret, name, branch string) bool {
	for _, a := range allowed {
		// An empty list would mean "main" to MatchBranch; here it means no branch.
		if a.Name == name && branch != "" && len(a.Branches) > 0 && MatchBranch(a.Branches, branch) {
			return true
		}
	}
	return false
}

func refusal(p *v1alpha1.Pipeline, secret, branch string) string {
	for _, a := range p.Spec.Secrets {
		if a.Name == secret {
			return fmt.Sprintf("secret %q refused: pipeline %s allows it only on branches %v, not on %q (spec.secrets)", secret, p.Name, a.Branches, branch)
		}
	}
	return fmt.Sprintf("secret %q refused: pipeline %s does not list it in spec.secrets", secret, p.Name)
}
