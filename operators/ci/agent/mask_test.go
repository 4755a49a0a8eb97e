package agent

import (
	"context"
	"strings"
	"testing"

	"homeostat.dev/homeostat/operators/ci/steps"
)

func TestMaskString(t *testing.T) {
	cases := []struct {
		name, in string
		values   []string
		want     string
	}{
		{"no values", "token s3cr3t", nil, "token s3cr3t"},
		{"every occurrence", "[a] s3cr3t and s3cr3t\n", []string{"s3cr3t"}, "[a] *** and ***\n"},
		{"longest first", "[a] abcdef\n", []string{"abc", "abcdef"}, "[a] ***\n"},
		{"each line of a multi-line value", "[a] line-one\n[a] line-two\n", []string{"line-one\nline-two\n"}, "[a] ***\n[a] ***\n"},
		{"blank values are ignored", "[a] x\n", []string{"", " \n "}, "[a] x\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := MaskString(c.in, c.values); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestRunMasksSecretsInLogAndResult: a step that prints its secret, and
// fails with it in its name of an exit, shows *** in the log and result.
func TestRunMasksSecretsInLogAndResult(t *testing.T) {
	const secret = "hunter2-very-secret"
	f, problems := steps.Parse("ci.yaml", []byte("image: x\nsteps:\n  - {name: leak, run: 'echo token=$TOKEN; echo $TOKEN >&2; exit 3'}\n"))
	if problems != nil {
		t.Fatal(steps.Format(problems))
	}
	var log syncBuffer
	res := Run(context.Background(), f, Options{Dir: t.TempDir(), Env: []string{"PATH=/usr/bin:/bin", "TOKEN=" + secret}, Out: &log, Mask: []string{secret}})
	if strings.Contains(log.String(), secret) || strings.Contains(string(Encode(res, MaxResultSize)), secret) {
		t.Fatalf("secret leaked:\n%s\n%+v", log.String(), res)
	}
	if !strings.Contains(log.String(), "[leak] token=***\n") || !strings.Contains(log.String(), "[leak] ***\n") {
		t.Fatalf("log:\n%s", log.String())
	}
}
