package ci

import (
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"homeostat.dev/homeostat/internal/golden"
	"homeostat.dev/homeostat/operators/ci/steps"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// TestBuildPodGolden pins the whole pod a build runs in.
func TestBuildPodGolden(t *testing.T) {
	f, problems := steps.Parse(".homeostat-ci.yaml", []byte(goodSteps))
	if problems != nil {
		t.Fatal(steps.Format(problems))
	}
	cases := []struct {
		name   string
		secret *v1alpha1.LocalObjectReference
		file   string
		logs   *v1alpha1.PipelineLogs
	}{
		{"pod-with-credentials", &v1alpha1.LocalObjectReference{Name: "shop-git"}, "ci/build.yaml", nil},
		{"pod-public-repo", nil, "", nil},
		{"pod-with-log-store", nil, "", &v1alpha1.PipelineLogs{S3: v1alpha1.S3Store{Endpoint: "minio.ci:9000", Bucket: "logs", Path: "shop",
			Insecure: true, SecretRef: v1alpha1.LocalObjectReference{Name: "s3-logs"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &v1alpha1.Pipeline{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "ci"},
				Spec: v1alpha1.PipelineSpec{Repo: "https://git.example.com/acme/shop.git", SecretRef: c.secret, File: c.file, Logs: c.logs}}
			b := NewBuild(p, "main", "0123456789abcdef0123456789abcdef01234567")
			b.UID = "build-uid"
			got, err := yaml.Marshal(BuildPod(b, p, f, PodOptions{Image: "ghcr.io/homeostat/homeostat:v0.1.0"}))
			if err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, filepath.Join("testdata", c.name+".yaml"), got)
		})
	}
}
