package agent

import (
	"strings"
	"testing"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func TestEncodeFitsTheTerminationMessage(t *testing.T) {
	code := int32(2)
	var many []v1alpha1.StepStatus
	for i := 0; i < 200; i++ {
		many = append(many, v1alpha1.StepStatus{Name: "step-with-a-long-name-" + strings.Repeat("x", 10), Phase: StepSucceeded, ExitCode: new(int32), Duration: "1.5s"})
	}
	many = append(many, v1alpha1.StepStatus{Name: "bad", Phase: StepFailed, ExitCode: &code})
	cases := []struct {
		name string
		in   Result
		want func(Result) bool
	}{
		{"small stays whole", Result{Phase: v1alpha1.BuildSucceeded, Steps: many[:2], Duration: "3s"},
			func(r Result) bool { return len(r.Steps) == 2 && r.Duration == "3s" }},
		{"long message is cut", Result{Phase: v1alpha1.BuildFailed, Message: strings.Repeat("m", 10000), FailedStep: "bad", Steps: many[200:]},
			func(r Result) bool {
				return strings.HasSuffix(r.Message, " ...") && r.FailedStep == "bad" && len(r.Steps) == 1
			}},
		{"many steps keep the failed one", Result{Phase: v1alpha1.BuildFailed, FailedStep: "bad", Steps: many},
			func(r Result) bool {
				return len(r.Steps) == 1 && r.Steps[0].Name == "bad" && r.Message == "200 step results omitted; see the build log"
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := Encode(c.in, MaxResultSize)
			if len(b) > MaxResultSize {
				t.Fatalf("%d bytes", len(b))
			}
			r, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if r.Phase != c.in.Phase || !c.want(r) {
				t.Fatalf("decoded %+v", r)
			}
		})
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "not json", `{"steps":[]}`} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%q) gave no error", in)
		}
	}
}
