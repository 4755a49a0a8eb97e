package source

import (
	"strings"

	"github.com/go-git/go-git/v5/plumbing/object"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Ref picks what to fetch: Commit, then Tag, then Branch (default "main").
type Ref = v1alpha1.GitRef

// DefaultBranch is followed when a Ref names nothing.
const DefaultBranch = "main"

// Revision is one fetched commit and where its tree is on disk.
type Revision struct {
	// Ref is the branch or tag that was asked for ("main", "v1.2.0"), or ""
	// for a bare commit.
	Ref string
	// Commit is the full commit hash.
	Commit string
	// Message is the first line of the commit message.
	Message string
	// Author is "Name <email>".
	Author string
	// Dir is the checked-out tree (no .git inside). It stays in place until
	// the second-next successful Fetch with the same key.
	Dir string
}

// String is Flux's revision format: "main@sha1:<hash>", or "sha1:<hash>"
// for a bare commit, as status fields and snapshots print it.
func (r Revision) String() string {
	if r.Ref == "" {
		return "sha1:" + r.Commit
	}
	return r.Ref + "@sha1:" + r.Commit
}

// refName is how a Ref is shown: the branch or tag, or "" for a bare commit.
func refName(ref Ref) string {
	switch {
	case ref.Tag != "" && ref.Commit == "":
		return ref.Tag
	case ref.Branch != "":
		return ref.Branch
	case ref.Commit != "":
		return ""
	}
	return DefaultBranch
}

func revisionOf(ref Ref, c *object.Commit, dir string) Revision {
	msg, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
	return Revision{
		Ref:     refName(ref),
		Commit:  c.Hash.String(),
		Message: strings.TrimSpace(msg),
		Author:  c.Author.Name + " <" + c.Author.Email + ">",
		Dir:     dir,
	}
}
