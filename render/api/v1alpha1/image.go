package v1alpha1

import (
	"regexp"
	"strings"
)

// imageTagMajor is a tag that starts with a PostgreSQL version: "16",
// "16.4", "16.4-bookworm", "9.6-alpine".
var imageTagMajor = regexp.MustCompile(`^(\d+)(?:\.(\d+))?(?:[.\-_].*)?$`)

// ImageMajor is the PostgreSQL major version an image's tag names
// ("postgres:16.4" is 16, "postgres:9.6.24" is 9.6), or "" when the tag
// does not say (latest, a digest, no tag): a spec.image whose tag names
// another major than spec.version is refused before any pod runs it,
// since its binaries could not open the cluster's data directory.
func ImageMajor(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return ""
	}
	m := imageTagMajor.FindStringSubmatch(image[i+1:])
	if m == nil {
		return ""
	}
	if len(m[1]) == 1 && m[2] != "" {
		return m[1] + "." + m[2]
	}
	return m[1]
}
