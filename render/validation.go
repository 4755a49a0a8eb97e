package render

import (
	"path"
	"regexp"
	"strings"

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// checker collects the problems of one document, so validation code reads as
// a list of rules rather than a cascade of ifs.
type checker struct {
	d        *document
	problems []Problem
}

func (c *checker) add(p fieldPath, format string, args ...interface{}) {
	c.problems = append(c.problems, c.d.problem(p, format, args...))
}

// errs adds one problem per message of a k8s.io validation function.
func (c *checker) errs(p fieldPath, value string, msgs []string) {
	for _, m := range msgs {
		c.add(p, "%q: %s", value, m)
	}
}

func (c *checker) required(p fieldPath, value string) bool {
	if value == "" {
		c.add(p, "required")
		return false
	}
	return true
}

func (c *checker) atLeast(p fieldPath, v, min int32) {
	if v < min {
		c.add(p, "must be at least %d, got %d", min, v)
	}
}

func (c *checker) between(p fieldPath, v, min, max int32) {
	if v < min || v > max {
		c.add(p, "must be between %d and %d, got %d", min, max, v)
	}
}

// quantity checks a resource quantity ("250m", "1Gi") that must be positive.
func (c *checker) quantity(p fieldPath, value string) {
	if value == "" {
		return
	}
	q, err := resource.ParseQuantity(value)
	if err != nil {
		c.add(p, "%q is not a quantity such as 250m, 1 or 256Mi", value)
		return
	}
	if q.Sign() <= 0 {
		c.add(p, "%q must be greater than zero", value)
	}
}

// storageSize is the CRD's pattern for Storage.Size; ParseQuantity alone
// would also accept "1e3" and "0.5m", which make no sense for a volume.
var storageSize = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$`)

func (c *checker) storage(p fieldPath, value string) {
	if !c.required(p, value) {
		return
	}
	if !storageSize.MatchString(value) {
		c.add(p, "%q is not a size such as 10Gi", value)
		return
	}
	c.quantity(p, value)
}

func (c *checker) cron(p fieldPath, value string) {
	if value == "" {
		return
	}
	if _, err := cron.ParseStandard(value); err != nil {
		c.add(p, "%q is not a cron schedule (five fields, as \"0 3 * * *\"): %v", value, err)
	}
}

func (c *checker) glob(p fieldPath, value string) {
	if value == "" {
		c.add(p, "must not be empty")
		return
	}
	if _, err := path.Match(value, ""); err != nil {
		c.add(p, "%q is not a valid pattern: %v", value, err)
	}
}

func (c *checker) envName(p fieldPath, name string) {
	c.errs(p, name, validation.IsEnvVarName(name))
}

func (c *checker) domain(p fieldPath, name string) {
	if strings.HasPrefix(name, "*.") {
		c.errs(p, name, validation.IsWildcardDNS1123Subdomain(name))
		return
	}
	c.errs(p, name, validation.IsDNS1123Subdomain(name))
}

// Image references follow the grammar of github.com/distribution/reference:
// [registry[:port]/]path[:tag][@digest], with a lowercase path.
var (
	imageDomain = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?`
	imagePath   = `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
	imageName   = `(?:` + imageDomain + `/)?` + imagePath + `(?:/` + imagePath + `)*`
	imageTag    = `[\w][\w.-]{0,127}`
	imageDigest = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}`
	imageRef    = regexp.MustCompile(`^(` + imageName + `)(?::` + imageTag + `)?(?:@` + imageDigest + `)?$`)
)

func (c *checker) image(p fieldPath, ref string) {
	if !c.required(p, ref) {
		return
	}
	m := imageRef.FindStringSubmatch(ref)
	switch {
	case m == nil && strings.ToLower(ref) != ref && imageRef.MatchString(strings.ToLower(ref)):
		c.add(p, "%q is not an image reference: the repository name must be lowercase", ref)
	case m == nil:
		c.add(p, "%q is not an image reference such as registry.example.com/team/app:1.2.3", ref)
	case len(m[1]) > 255:
		c.add(p, "%q is not an image reference: the name is longer than 255 characters", ref)
	}
}

// objectName checks metadata.name against the rule the kind's children need.
func (c *checker) objectName(name string, rule func(string) []string) {
	c.errs(field("metadata", "name"), name, rule(name))
}
