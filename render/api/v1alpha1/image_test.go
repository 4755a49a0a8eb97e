package v1alpha1

import "testing"

func TestImageMajor(t *testing.T) {
	for image, want := range map[string]string{
		"postgres:16.4":          "16",
		"postgres:16":            "16",
		"postgres:15.8-bookworm": "15",
		"ghcr.io/cloudnative-pg/postgresql:17.2-1": "17",
		"registry:5000/postgres:14":                "14",
		"postgres:9.6.24":                          "9.6",
		"postgres:9.6-alpine":                      "9.6",
		"postgres:latest":                          "",
		"postgres":                                 "",
		"registry:5000/postgres":                   "",
		"postgres@sha256:0123abcd":                 "",
		"postgres:16.4@sha256:0123abcd":            "16",
		"postgres:bookworm-16":                     "",
	} {
		if got := ImageMajor(image); got != want {
			t.Errorf("ImageMajor(%q) = %q, want %q", image, got, want)
		}
	}
}
