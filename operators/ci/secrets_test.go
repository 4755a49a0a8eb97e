package ci

import (
	"testing"

	"homeostat.dev/homeostat/operators/ci/steps"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func TestRefusedSecrets(t *testing.T) {
	p := &v1alpha1.Pipeline{}
	p.Name = "shop"
	p.Spec.Secrets = []v1alpha1.PipelineSecret{
		{Name: "deploy", Branches: []string{"main", "release/*"}},
		{Name: "empty"},
	}
	file := func(secrets ...string) *steps.File {
		f := &steps.File{}
		for i, s := range secrets {
			f.SecretEnv = append(f.SecretEnv, steps.SecretEnv{Name: "V", Secret: s, Key: "k", Line: 4 + i})
		}
		return f
	}
	cases := []struct {
		name, branch string
		f            *steps.File
		want         []string
	}{
		{"no secrets", "feature/x", file(), nil},
		{"listed on main", "main", file("deploy"), nil},
		{"listed by glob", "release/1.2", file("deploy"), nil},
		{"branch not allowed", "feature/x", file("deploy"),
			[]string{`ci.yaml:4: secretEnv.V: secret "deploy" refused: pipeline shop allows it only on branches [main release/*], not on "feature/x" (spec.secrets)`}},
		{"a build without a branch", "", file("deploy"),
			[]string{`ci.yaml:4: secretEnv.V: secret "deploy" refused: pipeline shop allows it only on branches [main release/*], not on "" (spec.secrets)`}},
		{"not listed", "main", file("deploy", "db-admin"),
			[]string{`ci.yaml:5: secretEnv.V: secret "db-admin" refused: pipeline shop does not list it in spec.secrets`}},
		{"listed without branches", "main", file("empty"),
			[]string{`ci.yaml:4: secretEnv.V: secret "empty" refused: pipeline shop allows it only on branches [], not on "main" (spec.secrets)`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := RefusedSecrets(p, c.branch, "ci.yaml", c.f)
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i].Error() != c.want[i] {
					t.Errorf("got  %s\nwant %s", got[i].Error(), c.want[i])
				}
			}
		})
	}
}
