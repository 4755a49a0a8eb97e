// Package ci is the CI operator: the Pipeline controller polls a watched
// repository and makes one Build per new commit per branch; the Build
// controller turns a Build into a pod that runs `homeostat ci agent`, reads
// the agent's result back and sends notifications. The pod spec builder and
// the naming rules are pure functions, tested without a cluster.
package ci

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Labels on Builds and their pods.
const (
	LabelPipeline = "homeostat.dev/pipeline"
	LabelBuild    = "homeostat.dev/build"
	LabelRerunOf  = "homeostat.dev/rerun-of"
	// AnnotationResume on a build pod is mirrored into the agent's resume
	// file by the downward API; "true" releases a paused step.
	AnnotationResume = "homeostat.dev/resume"
)

// maxName keeps Build names usable as pod names and label values.
const maxName = 63

var notSlug = regexp.MustCompile(`[^a-z0-9]+`)

// slug makes a branch name fit a Kubernetes name: "release/1.2" -> "release-1-2".
func slug(s string) string {
	return strings.Trim(notSlug.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// BuildName is the deterministic name of the build of commit on branch of a
// pipeline: <pipeline>-<branch>-<7 hex digits>. Being deterministic is what
// keeps a restarted controller (or two racing polls) from building a commit
// twice: the second create fails with AlreadyExists.
func BuildName(pipeline, branch, commit string) string {
	sha := commit
	if len(sha) > 7 {
		sha = sha[:7]
	}
	name := strings.Trim(pipeline+"-"+slug(branch), "-")
	if len(name)+1+len(sha) > maxName || slug(branch) == "" {
		// Too long (or a branch with no usable characters): shorten, and
		// keep a hash of the full pair so two long branch names sharing a
		// prefix still get different builds.
		sum := sha256.Sum256([]byte(pipeline + "\x00" + branch))
		h := hex.EncodeToString(sum[:])[:6]
		keep := maxName - len(sha) - len(h) - 2
		if len(name) > keep {
			name = strings.TrimRight(name[:keep], "-")
		}
		name += "-" + h
	}
	return name + "-" + sha
}

// LabelValue shortens s to a valid label value, keeping it unique with a hash.
func LabelValue(s string) string {
	if len(s) <= maxName {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return strings.TrimRight(s[:maxName-7], "-._") + "-" + hex.EncodeToString(sum[:])[:6]
}

// MatchBranch reports whether a branch is watched: it equals one of the
// patterns or matches it as a glob ("release/*"). No patterns means "main".
func MatchBranch(patterns []string, branch string) bool {
	if len(patterns) == 0 {
		patterns = []string{"main"}
	}
	for _, p := range patterns {
		if ok, err := path.Match(p, branch); (err == nil && ok) || p == branch {
			return true
		}
	}
	return false
}

// NormalizeRepo reduces a repository URL to host/path, lowercased and
// without ".git", so a push webhook's https URL matches a Pipeline's ssh
// URL of the same repository.
func NormalizeRepo(u string) string {
	s := strings.ToLower(strings.TrimSpace(u))
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	} else if at := strings.Index(s, "@"); at >= 0 && strings.Contains(s[at:], ":") {
		// scp-like git@host:owner/repo
		s = strings.Replace(s, ":", "/", 1)
	}
	if at := strings.Index(s, "@"); at >= 0 && at < strings.Index(s+"/", "/") {
		s = s[at+1:]
	}
	s = strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git")
	// Default ports say nothing about which repository it is.
	for _, p := range []string{":443/", ":22/", ":80/"} {
		s = strings.Replace(s, p, "/", 1)
	}
	return s
}

// NewBuild is the Build a pipeline makes for a commit on a branch.
func NewBuild(p *v1alpha1.Pipeline, branch, commit string) *v1alpha1.Build {
	return &v1alpha1.Build{
		ObjectMeta: metav1.ObjectMeta{
			Name:      BuildName(p.Name, branch, commit),
			Namespace: p.Namespace,
			Labels: map[string]string{
				LabelPipeline:           LabelValue(p.Name),
				v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue,
			},
			OwnerReferences: []metav1.OwnerReference{ownerRef(p)},
		},
		Spec: v1alpha1.BuildSpec{
			Pipeline: v1alpha1.LocalObjectReference{Name: p.Name},
			Repo:     p.Spec.Repo,
			Branch:   branch,
			Commit:   commit,
		},
	}
}

// RerunOf is a new Build of the same commit as b, for `homeostat ci rerun`.
// Its name is generated (a rerun is a deliberate duplicate), and it keeps
// b's owner so history limits and deletion treat it like any other build.
func RerunOf(b *v1alpha1.Build) *v1alpha1.Build {
	base := b.Name
	if i := strings.Index(base, "-rerun-"); i > 0 {
		base = base[:i]
	}
	if len(base) > maxName-12 {
		base = strings.TrimRight(base[:maxName-12], "-")
	}
	labels := map[string]string{}
	for k, v := range b.Labels {
		labels[k] = v
	}
	labels[LabelRerunOf] = LabelValue(b.Name)
	spec := b.Spec
	spec.Resume = false
	return &v1alpha1.Build{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    base + "-rerun-",
			Namespace:       b.Namespace,
			Labels:          labels,
			OwnerReferences: b.OwnerReferences,
		},
		Spec: spec,
	}
}

func ownerRef(p *v1alpha1.Pipeline) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "Pipeline",
		Name: p.Name, UID: p.UID, BlockOwnerDeletion: &t,
	}
}
