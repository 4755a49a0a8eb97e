package ci

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/operators/ci/steps"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func BenchmarkBuildPod(b *testing.B) {
	f, problems := steps.Parse(".homeostat-ci.yaml", []byte(goodSteps))
	if problems != nil {
		b.Fatal(problems)
	}
	p := &v1alpha1.Pipeline{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "ci"},
		Spec: v1alpha1.PipelineSpec{Repo: "https://git.example.com/acme/shop.git", SecretRef: &v1alpha1.LocalObjectReference{Name: "git"}}}
	build := NewBuild(p, "release/1.2", "0123456789abcdef0123456789abcdef01234567")
	for b.Loop() {
		_ = BuildPod(build, p, f, PodOptions{Image: "homeostat:v1"})
	}
}
